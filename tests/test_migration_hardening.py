"""Migration and export against hostile input (issue 11, finding 9): secrets never printed,
paths taken literally, a key repeated inside an entry refused, timestamps outside years
1 to 9999 refused naming the entry, and an export that never follows a symbolic link."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from migration_support import dump, legacy_copy

from mcp_state.db import connect
from mcp_state.errors import MigrationError
from mcp_state.legacy import export_all, migrate, migrate_all


def test_a_repeated_one_time_code_is_refused_without_showing_it(tmp_path):
    data = legacy_copy(tmp_path, "data")
    codes = data / "notifications/pending_codes.json"
    codes.write_text(
        '{"K7Q2ZP": {"chat_id": 1, "created_at": "2026-03-27T07:55:00Z"},\n'
        ' "K7Q2ZP": {"chat_id": 2, "created_at": "2026-03-27T07:56:00Z"}}'
    )
    with pytest.raises(MigrationError) as caught:
        migrate_all(data)
    message = str(caught.value)
    assert "notifications/pending_codes.json, entry #2: duplicate code (a secret, not shown)" in message
    assert "K7Q2ZP" not in message
    report = migrate(data, skip_invalid=True, dry_run=True)
    assert all("K7Q2ZP" not in str(problem) for problem in report.skipped)


@pytest.mark.parametrize("name", ["d[a]", "s*x", "q?x", "~"])
def test_the_data_directory_is_taken_literally_not_as_a_glob(tmp_path, monkeypatch, name):
    legacy_copy(tmp_path, name)
    decoy = legacy_copy(tmp_path, "da" if name == "d[a]" else "decoy")
    (decoy / "auth/users.json").write_text('{"decoy@acme.com": {"name": "Decoy", "role": "viewer"}}')
    monkeypatch.chdir(tmp_path)  # a relative "~" must not become the home folder
    counts = migrate_all(name, db_path=tmp_path / "out.duckdb")
    assert counts["users"] == 2
    conn = connect(tmp_path / "out.duckdb", migrate=False)
    try:
        emails = {row[0] for row in conn.execute("SELECT email FROM users").fetchall()}
    finally:
        conn.close()
    assert emails == {"petr@acme.com", "jana@acme.com"}


@pytest.mark.parametrize(
    ("file", "text", "entry", "key"),
    [
        (
            "auth/users.json",
            '{"petr@acme.com": {"name": "Petr", "role": "admin", "role": "viewer"}}',
            "auth/users.json, petr@acme.com",
            '"role"',
        ),
        (
            "audit/audit.jsonl",
            '{"id": "a1", "timestamp": "2026-03-27T08:00:00Z", "action": "x", "action": "y"}\n',
            "audit/audit.jsonl, line 1 (id a1)",
            '"action"',
        ),
        (
            "notifications/sync_settings.json",
            '{"petr": {"datasets": {"sales": true}, "updated_at": "2026-03-27", "updated_at": "2026-03-28"}}',
            "notifications/sync_settings.json, petr/sales",
            '"updated_at"',
        ),
    ],
)
def test_a_key_repeated_inside_an_entry_is_refused(tmp_path, file, text, entry, key):
    data = legacy_copy(tmp_path, "data")
    (data / file).write_text(text)
    with pytest.raises(MigrationError) as caught:
        migrate_all(data)
    assert f"{entry}: the entry has the key {key} more than once; keep one of its values" in str(caught.value)
    assert not (data / "state/system.duckdb").exists()  # nothing written, no file left behind


@pytest.mark.parametrize(
    "stamp", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+05:00", "10000-01-01T00:00:00Z"]
)
def test_a_timestamp_outside_years_1_to_9999_is_refused_naming_the_entry(tmp_path, stamp):
    data = legacy_copy(tmp_path, "data")
    (data / "auth/users.json").write_text(
        json.dumps({"petr@acme.com": {"name": "Petr", "role": "admin", "created_at": stamp}})
    )
    with pytest.raises(MigrationError) as caught:
        migrate_all(data)
    assert (
        'auth/users.json, petr@acme.com: "created_at" must be an ISO 8601 date or time from year 1 to 9999'
        in str(caught.value)
    )


def test_the_last_instant_of_year_9999_is_kept(tmp_path):
    data = legacy_copy(tmp_path, "data")
    (data / "auth/users.json").write_text(
        '{"petr@acme.com": {"name": "Petr", "role": "admin", "created_at": "9999-12-31T23:59:59Z"}}'
    )
    assert migrate_all(data)["users"] == 1


@pytest.fixture
def migrated(tmp_path):
    data = legacy_copy(tmp_path, "data")
    migrate_all(data)
    return data / "state/system.duckdb"


@pytest.mark.parametrize("dangling", [False, True])
def test_export_refuses_a_linked_folder_and_writes_nothing_through_it(tmp_path, migrated, dangling):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    if not dangling:
        elsewhere.mkdir()
    (out / "auth").symlink_to(elsewhere)
    with pytest.raises(MigrationError) as caught:
        export_all(out, db_path=migrated)
    assert str(caught.value) == (
        f"{out / 'auth'} is a symbolic link; an export never follows links (the files hold secrets). "
        "Export into an empty (or new) directory."
    )
    assert not elsewhere.exists() or not any(elsewhere.iterdir())
    assert not any(path.is_file() for path in out.rglob("*"))


def test_export_refuses_a_link_in_place_of_a_file(tmp_path, migrated):
    out = tmp_path / "out"
    (out / "auth").mkdir(parents=True)
    (out / "auth/users.json").symlink_to(tmp_path / "stolen.json")
    with pytest.raises(
        MigrationError, match=r"auth/users\.json is a symbolic link; an export never follows links"
    ):
        export_all(out, db_path=migrated)
    assert not (tmp_path / "stolen.json").exists()


@pytest.mark.slow
def test_the_cli_reports_a_linked_export_folder_in_one_line(tmp_path, migrated):
    out = tmp_path / "out"
    out.mkdir()
    (out / "audit").symlink_to(tmp_path / "nowhere")
    done = subprocess.run(
        [sys.executable, "-m", "mcp_state", "export", "--to", str(out), "--db", str(migrated)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"mcp-state export: error: {out / 'audit'} is a symbolic link; an export never follows links "
        "(the files hold secrets). Export into an empty (or new) directory."
    ]


def test_an_export_still_round_trips(tmp_path, migrated):
    export_all(tmp_path / "out", db_path=migrated)
    migrate_all(tmp_path / "out", db_path=tmp_path / "again.duckdb")
    assert dump(tmp_path / "again.duckdb") == dump(migrated)
    modes = {oct(path.stat().st_mode & 0o777) for path in (tmp_path / "out").rglob("*") if path.is_file()}
    assert modes == {"0o600"}
    assert not [p for p in (tmp_path / "out").rglob(".*")]  # no temporary file left behind


@pytest.mark.slow
def test_a_folder_without_legacy_files_is_an_error_and_creates_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "mcp_state", "migrate", "--data-dir", str(tmp_path / "empty")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"mcp-state migrate: error: {tmp_path / 'empty'} holds none of the legacy files "
        "(src_data/metadata/sync_state.json, notifications/sync_settings.json, ...); nothing was written. "
        "Pass the folder that holds src_data/, notifications/, corporate-memory/, auth/ and audit/"
    ]
    assert list((tmp_path / "empty").iterdir()) == []
