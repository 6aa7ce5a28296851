"""The audit archive is queryable by SQL: ``audit_archive`` holds the rows ``mcp-state audit archive``
moved to Parquet files (read by the server, never by the worker), ``audit_all`` the live and the
archived rows together; a missing or empty archive folder is an empty table, not an error."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import duckdb
import pytest
from recovery_support import cli
from sql_support import CANARIES, make_server, replay, result_text, seeded_db_path, with_client

from mcp_state.archive import ARCHIVE_ENV, archive_audit, archive_folder
from mcp_state.db import Database
from mcp_state.sql import hardened_database
from mcp_state.sql.snapshot import Snapshot

COUNTS = (
    "SELECT (SELECT count(*) FROM audit_archive), (SELECT count(*) FROM audit_log), "
    "(SELECT count(*) FROM audit_all)"
)


def archived_db(tmp_path: Path, before: str = "2026-03-21") -> tuple[Path, Path]:
    """The seeded database with its audit rows before ``before`` archived to the default folder."""
    path = seeded_db_path(tmp_path / "data")
    with Database(path, idle_release=None) as db:  # as `mcp-state audit archive` opens it
        folder = archive_folder(path)
        assert folder is not None
        result = archive_audit(db, datetime.fromisoformat(before), folder)
    assert result["rows"] == 3 and folder == path.parent / "archive" / "audit"
    return path, folder


def test_archived_rows_are_queried_with_sql_query_and_refreshed_when_files_change(tmp_path, monkeypatch):
    monkeypatch.delenv(ARCHIVE_ENV, raising=False)
    path, folder = archived_db(tmp_path)
    extra = folder / "audit-000000000100-000000000100.parquet"

    async def body(client):
        first = await client.call_tool("sql_query", {"sql": COUNTS})
        archived = await client.call_tool(
            "sql_query", {"sql": "SELECT id, params->>'$.item' FROM audit_archive ORDER BY seq"}
        )
        combined = await client.call_tool("sql_query", {"sql": "SELECT list(id ORDER BY seq) FROM audit_all"})
        # A new archive file (another archive run) counts at the next call. Its second row is
        # still live too (an archive run stopped before deleting it): audit_all counts it once.
        conn = duckdb.connect()
        conn.execute(
            "COPY (SELECT 'a99' AS id, TIMESTAMP '2026-01-01' AS timestamp, 'u9' AS user_id, 'vote' AS action, "
            "'k9' AS resource, '{}'::JSON AS params, 'ok' AS result, 1 AS duration_ms, 100::BIGINT AS seq "
            "UNION ALL SELECT 'a05', TIMESTAMP '2026-03-21 11:30:00', 'u3', 'vote', 'k1', '{}', 'ok', 4, 5) "
            f"TO '{extra}' (FORMAT parquet)"
        )
        conn.close()
        refreshed = await client.call_tool("sql_query", {"sql": COUNTS})
        return first, archived, combined, refreshed

    first, archived, combined, refreshed = with_client(make_server(path), body)
    assert first.structured_content["rows"] == [[3, 7, 10]]
    assert archived.structured_content["rows"] == [["a01", "k1"], ["a02", "k2"], ["a03", "k1"]]
    assert combined.structured_content["rows"] == [[[f"a{i:02d}" for i in range(1, 11)]]]  # live and archived
    assert refreshed.structured_content["rows"] == [[5, 7, 11]]


def test_the_archive_shows_only_the_audit_views_columns_and_no_secret(tmp_path, monkeypatch):
    path = seeded_db_path(tmp_path / "data")
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    monkeypatch.setenv(ARCHIVE_ENV, str(folder))  # the variable points the server elsewhere
    # A file with a column the audit view does not have, holding a secret: never shown.
    conn = duckdb.connect()
    conn.execute(
        "COPY (SELECT 'a50' AS id, TIMESTAMP '2026-01-02' AS timestamp, 'u1' AS user_id, 'login' AS action, "
        "NULL AS resource, '{\"password\": \"***\"}'::JSON AS params, 'ok' AS result, 3 AS duration_ms, "
        f"50::BIGINT AS seq, '{CANARIES[0]}' AS password_hash) TO '{folder / 'audit-000000000050-000000000050.parquet'}' "
        "(FORMAT parquet)"
    )
    conn.close()

    async def body(client):
        rows = await client.call_tool("sql_query", {"sql": "SELECT * FROM audit_archive"})
        whole = await client.call_tool("sql_query", {"sql": "SELECT to_json(a) FROM audit_archive a"})
        schema = await client.call_tool("sql_schema", {"table": "audit_archive"})
        refused = await client.call_tool(
            "sql_query", {"sql": f"SELECT * FROM read_parquet('{folder}/audit-*.parquet')"}
        )
        return rows, whole, schema, refused

    rows, whole, schema, refused = with_client(make_server(path), body)
    columns = [c["name"] for c in rows.structured_content["columns"]]
    assert columns == [
        "id",
        "timestamp",
        "user_id",
        "action",
        "resource",
        "params",
        "result",
        "duration_ms",
        "seq",
    ]
    assert rows.structured_content["rows"][0][0] == "a50"
    for result in (rows, whole, schema):
        assert not any(canary in result_text(result) for canary in CANARIES)
    table = schema.structured_content["tables"][0]
    assert table["name"] == "audit_archive" and "audit archive" in table["description"]
    assert [c["name"] for c in table["columns"]] == columns and table["columns"][0]["description"]
    assert refused.is_error and "cannot read files" in result_text(refused)


@pytest.mark.parametrize("make_folder", [False, True])
def test_a_missing_or_empty_archive_folder_is_an_empty_table(tmp_path, monkeypatch, make_folder):
    monkeypatch.delenv(ARCHIVE_ENV, raising=False)
    path = seeded_db_path(tmp_path / "data")
    folder = archive_folder(path)
    assert folder is not None and not folder.exists()
    if make_folder:
        folder.mkdir(parents=True)

    async def body(client):
        counts = await client.call_tool("sql_query", {"sql": COUNTS})
        listed = await client.call_tool("sql_schema", {})
        return counts, listed

    counts, listed = with_client(make_server(path), body)
    assert not counts.is_error and counts.structured_content["rows"] == [[0, 10, 10]]
    names = [t["name"] for t in listed.structured_content["tables"]]
    assert {"audit_archive", "audit_all", "audit_log"} <= set(names)


def test_a_damaged_archive_file_is_named_and_a_link_is_not_followed(tmp_path, monkeypatch):
    monkeypatch.delenv(ARCHIVE_ENV, raising=False)
    path, folder = archived_db(tmp_path)
    outside = tmp_path / "outside.parquet"
    conn = duckdb.connect()
    conn.execute(f"COPY (SELECT 'x1' AS id, 7::BIGINT AS seq) TO '{outside}' (FORMAT parquet)")
    conn.close()
    (folder / "audit-000000000007-000000000007.parquet").symlink_to(outside)

    async def body(client):
        linked = await client.call_tool("sql_query", {"sql": "SELECT count(*) FROM audit_archive"})
        (folder / "audit-000000000009-000000000009.parquet").write_bytes(b"not parquet")
        damaged = await client.call_tool("sql_query", {"sql": "SELECT count(*) FROM audit_archive"})
        other = await client.call_tool("sql_query", {"sql": "SELECT count(*) FROM users"})
        return linked, damaged, other

    linked, damaged, other = with_client(make_server(path), body)
    assert linked.structured_content["rows"] == [[3]]  # the link is not read
    assert damaged.is_error and f"the audit archive in {folder} could not be read" in result_text(damaged)
    assert "audit-*.parquet file out of that folder" in result_text(damaged)
    assert other.structured_content["rows"] == [[4]]  # a statement not naming the archive is not hurt


@pytest.mark.slow
def test_another_process_archives_between_two_chunks_of_a_copy(tmp_path, monkeypatch):
    """The copy lets go of the file between chunks when another process asks (here
    `mcp-state audit archive`, which deletes rows the copy had read); the copy starts again
    and ends equal to the table."""
    monkeypatch.delenv(ARCHIVE_ENV, raising=False)
    monkeypatch.setattr("mcp_state.sql.snapshot.CHUNK_ROWS", 3)
    path = seeded_db_path(tmp_path / "data")
    with hardened_database(path, idle_release=None) as db:
        copy = Snapshot(db).changes({}, frozenset({"audit_log"}))
        requests = [next(copy)]
        while requests[-1]["op"] != "load" or requests[-1]["parts"][0] == b"[]":
            requests.append(next(copy))
        assert db.is_open  # the file is open, no operation in flight: the other process asks for it
        started = time.monotonic()
        done = cli(
            "audit",
            "archive",
            "--before",
            "2026-03-21",
            "--db",
            str(path),
            env={"MCP_STATE_LOCK_TIMEOUT": "5"},
        )
        waited = time.monotonic() - started
        assert done.returncode == 0 and "Archived 3 audit rows" in done.stdout, done.stderr
        requests += list(copy)
        loads = [r["replace"] for r in requests if r["op"] == "load" and r["table"] == "audit_log"]
        assert loads == [True, True, True, False, False]  # declared, first chunk, then all again
        copied = replay(requests[:-1])["audit_log"]
        with db.session() as cursor:
            assert copied == cursor.execute("SELECT * FROM redacted.audit_log ORDER BY ALL").fetchall()
    assert len(copied) == 7 and waited < 5
