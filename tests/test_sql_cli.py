"""``mcp-state query`` and ``mcp-state schema``: the SQL engine from the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from sql_support import CANARIES, dump, seeded_db_path

from mcp_state.cli import main


@pytest.fixture
def seeded(tmp_path):
    """The seeded database at the default place, ``$DATA_DIR/state/system.duckdb``."""
    return seeded_db_path(tmp_path / "data")


def test_query_prints_a_table(seeded, capsys):
    assert main(["query", "SELECT id, role FROM users ORDER BY id"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["|", "id", "|", "role", "|"]
    assert "| u1  | admin " in out and "_4 rows in" in out


def test_query_json_limit_and_db(seeded, tmp_path, capsys):
    assert main(["query", "--db", str(seeded), "--json", "--limit", "2", "SELECT * FROM range(5)"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["rows"] == [[0], [1]] and result["truncated"] is True and result["limit"] == 2


def test_a_refused_statement_is_a_clean_error_and_changes_nothing(seeded, capsys):
    before = dump(seeded)
    assert main(["query", "DELETE FROM users"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        "mcp-state query: error: only read-only statements are allowed, and this is a DELETE"
    )
    assert "Traceback" not in err
    assert main(["query", "SELECT * FROM main.users"]) == 1
    assert not any(c in capsys.readouterr().err for c in CANARIES)
    assert dump(seeded) == before


def test_a_missing_database_is_an_error_and_is_not_created(tmp_path, capsys):
    target = tmp_path / "nowhere" / "state.duckdb"
    assert main(["query", "--db", str(target), "SELECT 1"]) == 1
    assert "no database at" in capsys.readouterr().err
    assert not target.exists() and not target.parent.exists()


def test_schema_lists_tables_and_one_table_as_json(seeded, capsys):
    assert main(["schema"]) == 0
    out = capsys.readouterr().out
    assert "### audit_log" in out and "### users" in out and "password_hash" not in out
    assert main(["schema", "users", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [t["name"] for t in result["tables"]] == ["users"]
    assert main(["schema", "passwords"]) == 1
    assert "no table 'passwords'" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["query", "schema"])
def test_every_sql_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "--db PATH" in out and "--json" in out and "example:" in out


@pytest.mark.parametrize("limit", ["0", "10001", "ten"])
def test_a_bad_limit_is_a_usage_error(limit, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["query", "--limit", limit, "SELECT 1"])
    assert exited.value.code == 2
    assert "--limit" in capsys.readouterr().err


def test_the_installed_command_runs_end_to_end(seeded, tmp_path):
    env = {**os.environ, "DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run(
        [sys.executable, "-m", "mcp_state", "query", "SELECT count(*) AS n FROM knowledge_items"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "| 4 " in done.stdout
