"""Time, memory, row and size limits: runaway queries stop and the server keeps serving; huge
results stream; ``truncated`` is exact; output and SQL text are capped."""

from __future__ import annotations

import json
import os
import threading
import time

import anyio
import pytest
from sql_support import make_server, seeded_db_path, with_client

from mcp_state.errors import InvalidArgumentError, InvalidSQLError, QueryTimeoutError
from mcp_state.sql import SqlEngine, hardened_database
from mcp_state.sql.guard import MAX_SQL_CHARS

LIMIT = 1.0

RUNAWAYS = [
    "SELECT count(*) FROM range(1e13::BIGINT)",
    "SELECT sum(a.range * b.range) FROM range(1000000) a CROSS JOIN range(1000000) b",
    "WITH RECURSIVE spin(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM spin) SELECT count(*) FROM spin",
    "SELECT count(*) FROM range(1e12::BIGINT) r WHERE md5(r.range::VARCHAR) = 'never'",
]


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    path = seeded_db_path(tmp_path_factory.mktemp("limits") / "data")
    db = hardened_database(path, idle_release=None)
    engine = SqlEngine(db, timeout=LIMIT)
    engine.query("SELECT 1")  # the worker starts and copies the data
    yield engine
    engine.close()
    db.close()


def test_runaway_queries_stop_in_time_while_the_server_keeps_serving(tmp_path):
    path = seeded_db_path(tmp_path / "data")

    async def body(client):
        async with anyio.create_task_group() as tg:  # both workers start and copy the data
            for _ in range(2):
                tg.start_soon(client.call_tool, "sql_query", {"sql": "SELECT count(*) FROM range(30000000)"})
        outcomes = []
        for sql in RUNAWAYS:
            runaway: dict[str, object] = {}

            async def run_away(sql=sql, runaway=runaway):
                started = time.monotonic()
                runaway["result"] = await client.call_tool("sql_query", {"sql": sql})
                runaway["seconds"] = time.monotonic() - started

            async with anyio.create_task_group() as tg:
                tg.start_soon(run_away)
                await anyio.sleep(0.3)
                started = time.monotonic()
                quick = await client.call_tool("sql_query", {"sql": "SELECT count(*) FROM audit_log"})
                quick_seconds = time.monotonic() - started
                still_running = "result" not in runaway
            outcomes.append((sql, runaway, quick, quick_seconds, still_running))
        after = await client.call_tool("sql_query", {"sql": "SELECT 1 AS one"})
        return outcomes, after

    outcomes, after = with_client(make_server(path, timeout=LIMIT), body)
    for sql, runaway, quick, quick_seconds, still_running in outcomes:
        result = runaway["result"]
        assert result.is_error, sql
        assert "time limit" in result.content[0].text and "[timeout]" in result.content[0].text
        assert runaway["seconds"] <= LIMIT + 0.5, (sql, runaway["seconds"])
        # Another query was answered while the runaway was still running.
        assert still_running, sql
        assert not quick.is_error and quick.structured_content["rows"] == [[10]]
        assert quick_seconds < 0.5, quick_seconds
    assert after.structured_content["rows"] == [[1]]


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_a_hundred_million_rows_return_a_hundred_and_memory_stays_bounded(tmp_path):
    path = seeded_db_path(tmp_path / "data")
    peak = {"rss": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak["rss"] = max(peak["rss"], _rss_bytes())
            time.sleep(0.002)

    async def body(client):
        await client.call_tool("sql_query", {"sql": "SELECT 1"})  # warm: open, migrate, load the catalog
        baseline = _rss_bytes()
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.monotonic()
        narrow = await client.call_tool("sql_query", {"sql": "SELECT * FROM range(100000000)"})
        wide = await client.call_tool(
            "sql_query", {"sql": "SELECT range AS i, repeat('x', 200) || range AS s FROM range(100000000)"}
        )
        seconds = time.monotonic() - started
        stop.set()
        sampler.join()
        return baseline, narrow, wide, seconds

    baseline, narrow, wide, seconds = with_client(make_server(path), body)
    for result in (narrow, wide):
        assert not result.is_error
        data = result.structured_content
        assert data["row_count"] == 100 and len(data["rows"]) == 100 and data["truncated"] is True
        assert "more rows exist" in data["message"]
    assert narrow.structured_content["rows"][:3] == [[0], [1], [2]]
    assert seconds < 2.0, seconds
    # 10^8 BIGINTs alone are 800 MB; a streamed result stays far below that.
    assert peak["rss"] - baseline < 150 * 2**20, (peak["rss"] - baseline) / 2**20


@pytest.mark.parametrize(("limit", "truncated"), [(4, True), (5, False), (6, False), (1, True)])
def test_truncated_is_exact(engine, limit, truncated):
    result = engine.query("SELECT * FROM range(5)", limit)
    assert result["truncated"] is truncated
    assert result["rows"] == [[i] for i in range(min(limit, 5))]
    assert ("message" in result) is truncated


def test_output_is_capped_with_a_message_saying_how_to_narrow(engine):
    result = engine.query("SELECT range AS n, repeat('x', 1000) AS padding FROM range(500)", 500)
    assert result["truncated"] is True
    assert 40 <= result["row_count"] < 500
    assert len(json.dumps(result["rows"])) <= 50_000
    assert (
        "capped at 50,000 characters" in result["message"] and "fewer or shorter columns" in result["message"]
    )


def test_a_single_row_over_the_cap_returns_no_rows_but_says_why(engine):
    result = engine.query("SELECT repeat('x', 60000) AS huge")
    assert result["rows"] == [] and result["truncated"] is True and "capped" in result["message"]


@pytest.mark.parametrize("limit", [0, -1, 10_001, True, 2.5])
def test_limit_out_of_range_is_refused(engine, limit):
    with pytest.raises(InvalidArgumentError, match="from 1 to 10,000"):
        engine.query("SELECT 1", limit)


def test_sql_text_size_cap(engine):
    sql = "SELECT 1 AS n"
    at_cap = sql + " " * (MAX_SQL_CHARS - len(sql))
    assert engine.query(at_cap)["rows"] == [[1]]
    with pytest.raises(InvalidSQLError, match="over the 20,000-character limit"):
        engine.query(at_cap + " ")


def test_a_runaway_raises_a_timeout_error_and_the_engine_recovers(engine):
    started = time.monotonic()
    with pytest.raises(QueryTimeoutError, match="1 s time limit"):
        engine.query(RUNAWAYS[0])
    assert time.monotonic() - started <= LIMIT + 2.0  # slack for a loaded machine; unstopped, hours
    assert engine.query("SELECT 2 AS two")["rows"] == [[2]]


def test_a_query_over_the_memory_limit_fails_cleanly(tmp_path):
    path = seeded_db_path(tmp_path / "data")
    db = hardened_database(path, idle_release=None)
    try:
        engine = SqlEngine(db, timeout=10.0, memory_ceiling=256 * 2**20)
        with pytest.raises(InvalidSQLError, match="more memory than the SQL tool allows"):
            engine.query("SELECT list(range) FROM range(100000000)")
        assert engine.query("SELECT count(*) FROM users")["rows"] == [[4]]
    finally:
        db.close()
