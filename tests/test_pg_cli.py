"""The commands on PostgreSQL: which database a command uses (``--db``, ``MCP_STATE_DATABASE_URL``,
the default file), the password never shown, the file-only commands refusing a URL in one line,
and ``serve``, ``migrate``, ``export`` and ``token`` on a PostgreSQL database."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from docs_support import SAMPLE as SAMPLE_DATA
from server_support import contents

from mcp_state.cli import main
from mcp_state.db import Database
from mcp_state.launch import password_note, serve_command
from mcp_state.legacy import LAYOUT_FILES
from mcp_state.repositories.tokens import TokenRepository, token_file
from mcp_state.schema import LATEST_VERSION
from mcp_state.sharing import database_location, default_db_path, shown_location

URL = "postgresql://mcp:s3cret-pw@db.example.com:5432/state"


def test_db_wins_then_the_url_variable_then_the_default_file(monkeypatch):
    assert database_location(None) == str(default_db_path())
    monkeypatch.setenv("MCP_STATE_DATABASE_URL", URL)
    assert database_location(None) == URL
    assert database_location("other.duckdb") == "other.duckdb"
    monkeypatch.setenv("MCP_STATE_DATABASE_URL", "state.duckdb")
    with pytest.raises(Exception, match="must be a URL starting with postgresql://"):
        database_location(None)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (URL, "postgresql://mcp@db.example.com:5432/state"),
        ("postgres://u:p%40ss@h/db?sslmode=require", "postgres://u@h/db?sslmode=require"),
        ("postgresql://h/db?password=x&sslmode=require", "postgresql://h/db?password=***&sslmode=require"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
    ],
)
def test_a_url_is_shown_without_its_password(url, shown):
    assert shown_location(url) == shown


def test_the_client_snippet_leaves_the_password_out_and_says_where_it_comes_from():
    command = serve_command(URL)
    assert "s3cret-pw" not in " ".join(command) and command[-1] == shown_location(URL)
    assert "PGPASSWORD" in password_note(URL)[0]
    assert password_note("postgresql://mcp@h/db") == [] and password_note("x.duckdb") == []


@pytest.mark.parametrize(
    ("argv", "instead"),
    [
        (["backup", "--to", "b/"], "pg_dump"),
        (["restore", "--from", "b.duckdb"], "pg_restore"),
        (["recover"], "PostgreSQL recovers from a crash by itself"),
        (["audit", "archive", "--before", "90d", "--to", "a/"], "mcp-state copy --from URL --to FILE"),
    ],
)
def test_file_only_commands_answer_one_line_on_postgresql(argv, instead, capsys, monkeypatch):
    monkeypatch.setenv("MCP_STATE_DATABASE_URL", URL)  # the variable counts like --db
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"mcp-state {argv[0]}") and instead in err and err.count("\n") == 1
    assert "s3cret-pw" not in err and "postgresql://mcp@db.example.com:5432/state" in err


def test_migrate_the_sample_into_postgresql_and_export_it_again(pg_state_url, tmp_path, capsys):
    """The legacy migration reaches PostgreSQL through a temporary file (and ``copy``): the same rows
    as a migration into a file; the export of either writes the same files."""
    file = str(tmp_path / "state.duckdb")
    assert main(["migrate", "--data-dir", str(SAMPLE_DATA), "--db", file]) == 0
    assert main(["migrate", "--data-dir", str(SAMPLE_DATA), "--db", pg_state_url]) == 0
    out = capsys.readouterr().out
    assert f"-> {shown_location(pg_state_url)}" in out
    assert contents(pg_state_url, skip=("schema_version",)) == contents(file, skip=("schema_version",))
    assert main(["export", "--to", str(tmp_path / "from-pg"), "--db", pg_state_url]) == 0
    assert main(["export", "--to", str(tmp_path / "from-file"), "--db", file]) == 0
    for name in LAYOUT_FILES:  # the same values (JSONB keeps an object's keys in its own order)
        theirs = tmp_path / "from-file" / name
        if theirs.exists():
            assert parsed(tmp_path / "from-pg" / name) == parsed(theirs), name


def parsed(path: Path) -> object:
    text = path.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()] if path.suffix == ".jsonl" else json.loads(text)


def test_tokens_on_postgresql_live_in_the_database(pg_state_url, capsys, monkeypatch):
    monkeypatch.setenv("MCP_STATE_DATABASE_URL", pg_state_url)
    assert main(["token", "create", "--actor", "ana", "--scope", "read"]) == 0
    token = capsys.readouterr().out.strip()
    assert main(["token", "list", "--json", "--db", pg_state_url]) == 0
    (listed,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    with Database(pg_state_url, idle_release=None) as db:
        assert TokenRepository(db).verify(token)["id"] == listed["id"]  # type: ignore[index]
    assert token_file(pg_state_url) is None  # no file beside a server's database: every process asks it


@pytest.mark.slow
def test_serve_names_the_database_without_its_password(pg_state_url):
    done = subprocess.run(
        [sys.executable, "-m", "mcp_state", "serve", "--db", pg_state_url, "--actor", "me"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    first = done.stderr.splitlines()[0]
    assert f"serving {shown_location(pg_state_url)} (47 tools" in first
    password = pg_state_url.split("@")[0].rsplit(":", 1)[-1]
    assert f":{password}@" not in done.stderr


def test_an_unreachable_server_is_one_line(capsys):
    assert main(["token", "list", "--db", "postgresql://nobody:pw@127.0.0.1:1/none"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "127.0.0.1" in err and "pw" not in err.replace("postgresql", "")


def test_demo_fills_a_postgresql_database_and_again_changes_nothing(pg_state_url, capsys):
    assert main(["demo", "--db", pg_state_url]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Loaded the sample state into {shown_location(pg_state_url)}: 2 users")
    assert f"serve --db {shown_location(pg_state_url)}" in out and "PGPASSWORD" in out
    assert main(["demo", "--db", pg_state_url]) == 0  # as into a file that holds it already
    assert "(28 entries, 0 written now)" in capsys.readouterr().out


def test_verify_on_postgresql_reads_every_table(pg_state_url, capsys):
    assert main(["demo", "--db", pg_state_url]) == 0
    capsys.readouterr()
    assert main(["verify", "--db", pg_state_url]) == 0
    out = capsys.readouterr().out.splitlines()
    # The same findings as on the sample file: its imported sync row without history is a note.
    assert out[0] == (
        "note: sync_state: table customers has no sync_history (imported: its last_sync predates the database)"
    )
    assert out[1].startswith(f"OK: {shown_location(pg_state_url)}: schema version {LATEST_VERSION}, ")
