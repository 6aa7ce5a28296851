"""Many processes on one PostgreSQL database: 4 ``mcp-state serve`` processes (stdio, an MCP
client each) and 2 Python-API processes, 500 mixed operations each on the same rows (votes on
the same items, the first sync of the same new tables, audit rows, grants): exact final counts,
no error. (On a DuckDB file the same load runs from one process at a time: the check of the
counts is run there with one process, so that the expected counts are the code's, not a guess.)"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mcp_state.db import Database
from mcp_state.gateway import Gateway

HELPER = Path(__file__).resolve().parent / "helpers" / "pg_load.py"
sys.path.insert(0, str(HELPER.parent))
import pg_load  # noqa: E402


def run_load(db_location: str, mcp: int, api: int, n: int) -> list[dict]:
    with Database(db_location, idle_release=None) as db:
        pg_load.seed(db)
    return pg_load.run_processes(db_location, ["mcp"] * mcp + ["api"] * api, n, timeout=120)


def counts(db_location: str) -> dict[str, int]:
    with Database(db_location, idle_release=None) as db:
        g = Gateway(db)
        return {
            table: int(g.fetch_value(f"SELECT count(*) FROM {table}")) for table in pg_load.expected(1, 0, 4)
        }


def votes_per_item(db_location: str) -> set[int]:
    with Database(db_location, idle_release=None) as db:
        rows = Gateway(db).fetch_all("SELECT item_id, sum(vote) AS up FROM knowledge_votes GROUP BY item_id")
    return {int(r["up"]) for r in rows}


@pytest.mark.slow
def test_the_expected_counts_hold_for_one_process_on_a_file(tmp_path):
    location = str(tmp_path / "state.duckdb")
    reports = run_load(location, mcp=1, api=0, n=12)
    assert [r["errors"] for r in reports] == [0], reports
    assert counts(location) == pg_load.expected(1, 0, 12)


@pytest.mark.slow
def test_four_servers_and_two_api_processes_keep_exact_counts(pg_url):
    reports = run_load(pg_url, mcp=4, api=2, n=500)
    assert [r["errors"] for r in reports] == [0] * 6, [r["first_errors"] for r in reports]
    assert counts(pg_url) == pg_load.expected(4, 2, 500)
    assert votes_per_item(pg_url) == {pg_load.USERS}  # every user's +1 on every item, once
