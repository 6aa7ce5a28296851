"""``verify`` on PostgreSQL runs the same agreement checks as on a file, with the same findings:
each damage of ``test_recovery_verify_agreement`` (but the tokens file's, a file's only), done by
SQL on a PostgreSQL state written through the repositories, is named in one line."""

from __future__ import annotations

import psycopg
import pytest
from test_recovery_verify_agreement import DAMAGE, fill

from mcp_state.backup import verify_server
from mcp_state.cli import main
from mcp_state.db import Database
from mcp_state.schema import LATEST_VERSION

ON_BOTH = [case for case in DAMAGE if not case.startswith("token")]


@pytest.fixture
def state(pg_state_url: str) -> str:
    with Database(pg_state_url) as db:
        fill(db)
    return pg_state_url


def damage(url: str, *statements: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def test_a_state_written_through_the_repositories_agrees_with_itself(state):
    report = verify_server(state)
    assert report.problems == [] and report.notes == []
    assert report.schema_version == LATEST_VERSION
    assert report.rows["sync_history"] == 4 and report.rows["knowledge_votes"] == 2


@pytest.mark.parametrize("case", ON_BOTH)
def test_each_damage_is_named_in_one_line(state, case):
    statements, parts = DAMAGE[case]
    damage(state, *statements)
    report = verify_server(state)
    assert len(report.problems) == 1, report.problems
    assert all(part in report.problems[0] for part in parts), report.problems[0]
    assert "\n" not in report.problems[0]


def test_the_verify_command_exits_1_naming_what_is_wrong(state, capsys):
    damage(state, "DELETE FROM knowledge_words WHERE item_id = 'k1'", "DELETE FROM sync_history")
    assert main(["verify", "--db", state]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    errors = captured.err.splitlines()
    assert errors[0].startswith("mcp-state verify: error: sync_state: table jumpy (last_sync ")
    assert "knowledge_words: item k1 is indexed wrongly (" in captured.err
    assert all(line.startswith("mcp-state verify: error: ") for line in errors)
