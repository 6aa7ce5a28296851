"""The commands on PostgreSQL: which database a command uses (``--db``, ``MCP_STATE_DATABASE_URL``,
the default file), the password never shown, the file-only commands refusing a URL in one line,
and ``serve``, ``migrate``, ``export`` and ``token`` on a PostgreSQL database."""

from __future__ import annotations

import pytest

from mcp_state.cli import main
from mcp_state.launch import password_note, serve_command
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
        ("postgresql://h/db?password=x&sslmode=require", "postgresql://h/db?sslmode=require"),
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
        (["verify"], "mcp-state copy --from URL --to FILE"),
        (["audit", "archive", "--before", "90d", "--to", "a/"], "mcp-state copy --from URL --to FILE"),
    ],
)
def test_file_only_commands_answer_one_line_on_postgresql(argv, instead, capsys, monkeypatch):
    monkeypatch.setenv("MCP_STATE_DATABASE_URL", URL)  # the variable counts like --db
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"mcp-state {argv[0]}") and instead in err and err.count("\n") == 1
    assert "s3cret-pw" not in err and "postgresql://mcp@db.example.com:5432/state" in err
