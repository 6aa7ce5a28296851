"""The state layer on PostgreSQL: exact results under concurrency, retried collisions, migrations
taken in turns, and what is refused (a newer schema, an unreachable server) said in one line.

Concurrency here is real: threads of one process each get their own pooled connection (no
process write lock on PostgreSQL), and "several connections" means several ``Database``
objects, each with its own pool, as separate processes would have.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from pg_support import with_database

from mcp_state import schema, schema_pg
from mcp_state.db import Database
from mcp_state.errors import (
    DatabaseUnavailableError,
    InvalidArgumentError,
    SchemaError,
    TransientConflictError,
)
from mcp_state.gateway import Gateway
from mcp_state.migrations import apply_migrations, get_schema_version
from mcp_state.postgres import PostgresDatabase, connect, shown_url
from mcp_state.repositories import (
    KnowledgeRepository,
    PendingCodeRepository,
    SyncSettingsRepository,
    SyncStateRepository,
    UserRepository,
)
from mcp_state.schema import LATEST_VERSION, Migration

THREADS = 8


def _all(fn: Callable[[int], Any], n: int = THREADS) -> list[Any]:
    """``fn(0..n-1)`` on ``n`` threads released at once; their results (any error re-raised)."""
    start = threading.Barrier(n)

    def run(i: int) -> Any:
        start.wait()
        return fn(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


@pytest.fixture
def dbs(pg_state_url):
    """Two Databases on one PostgreSQL database: two pools, as two processes would have."""
    first, second = Database(pg_state_url), Database(pg_state_url)
    yield first, second
    first.close()
    second.close()


def test_a_postgresql_url_gives_the_postgresql_database_without_its_password(pg_state_url):
    db = Database(pg_state_url)
    try:
        assert isinstance(db, PostgresDatabase) and db.dialect.name == "postgresql"
        assert db.caching is False
        password = psycopg.conninfo.conninfo_to_dict(pg_state_url)["password"]
        assert db.path.endswith(pg_state_url.split("@", 1)[1]) and f":{password}@" not in db.path
        assert shown_url("postgresql://u:p%40ss@h/d?password=x&sslmode=require") == (
            "postgresql://u@h/d?password=***&sslmode=require"
        )
    finally:
        db.close()


def test_concurrent_upserts_of_one_new_key_are_exact(dbs):
    def upsert(i: int) -> Any:
        db = dbs[i % 2]
        SyncSettingsRepository(db).set(
            "u1", "sales", enabled=i % 2 == 0, table_mode="selected", tables=[str(i)]
        )
        return SyncStateRepository(db).record("orders", rows=i)

    results = _all(upsert)
    assert len(results) == THREADS  # no conflict reached a caller
    rows = Gateway(dbs[0]).fetch_all("SELECT * FROM user_sync_settings")
    assert len(rows) == 1
    assert Gateway(dbs[0]).fetch_value("SELECT count(*) FROM sync_state") == 1
    assert SyncStateRepository(dbs[0]).count_history(table_id="orders") == THREADS


def test_votes_are_exact_under_concurrency(dbs):
    KnowledgeRepository(dbs[0]).create("k1", "Churn", "How churn is measured", "metrics")

    def vote(i: int) -> Any:
        repo = KnowledgeRepository(dbs[i % 2])
        repo.vote("k1", f"user{i}", 1 if i % 4 else -1)
        return repo.vote("k1", "same-voter", 1 if i % 2 else -1)  # one voter, many concurrent changes

    _all(vote)
    counts = KnowledgeRepository(dbs[1]).get_votes("k1")
    same = _vote_of(dbs[0], "same-voter")  # one row, whichever change came last
    assert counts["upvotes"] - (same > 0) == sum(1 for i in range(THREADS) if i % 4)
    assert counts["downvotes"] - (same < 0) == sum(1 for i in range(THREADS) if not i % 4)


def _vote_of(db: Database, user: str) -> int:
    return int(Gateway(db).fetch_value("SELECT vote FROM knowledge_votes WHERE user_id = ?", [user]))


def test_one_time_codes_are_consumed_exactly_once(dbs):
    codes = PendingCodeRepository(dbs[0])
    for n in range(20):
        codes.create_code(f"code-{n}", chat_id=1000 + n)

    def consume(i: int) -> list[int]:
        repo = PendingCodeRepository(dbs[i % 2])
        return [got["chat_id"] for n in range(20) if (got := repo.verify_code(f"code-{n}")) is not None]

    won = [chat for chats in _all(consume) for chat in chats]
    assert sorted(won) == [1000 + n for n in range(20)]  # every code once, none twice


def test_concurrent_creates_of_one_email_let_exactly_one_win(dbs):
    def create(i: int) -> str:
        try:
            UserRepository(dbs[i % 2]).create(f"u{i}", "same@example.com", f"User {i}")
            return "created"
        except Exception as exc:  # the losers: a conflict, said as one
            return type(exc).__name__

    outcomes = _all(create)
    assert outcomes.count("created") == 1
    assert set(outcomes) == {"created", "ConflictError"}


def test_a_real_deadlock_is_retried_and_both_units_finish(pg_state_url):
    # A short deadlock_timeout (superuser setting, per connection) keeps the test fast.
    url = pg_state_url + ("&" if "?" in pg_state_url else "?") + "options=-c%20deadlock_timeout%3D50ms"
    db = Database(url)
    gateway = Gateway(db)
    for key in ("a", "b"):
        gateway.execute("INSERT INTO sync_state (table_id, rows) VALUES (?, 0)", [key])
    attempts: list[int] = []
    both_hold_one = threading.Barrier(2)

    def unit(first: str, second: str) -> None:
        attempts.append(1)
        with gateway.transaction():
            gateway.execute("UPDATE sync_state SET rows = rows + 1 WHERE table_id = ?", [first])
            if len(attempts) <= 2:  # the first two tries meet here; a retry runs alone
                both_hold_one.wait(timeout=10)
            gateway.execute("UPDATE sync_state SET rows = rows + 1 WHERE table_id = ?", [second])

    try:
        with ThreadPoolExecutor(2) as pool:
            done = [pool.submit(gateway.retrying, unit, *order) for order in (("a", "b"), ("b", "a"))]
            for future in done:
                future.result()
        assert len(attempts) == 3  # one of the two was chosen as the deadlock victim, and ran again
        rows = {r["table_id"]: r["rows"] for r in gateway.fetch_all("SELECT table_id, rows FROM sync_state")}
        assert rows == {"a": 2, "b": 2}

        # Outside ``retrying`` (or inside a caller's transaction) the collision is the caller's to handle.
        with pytest.raises(TransientConflictError, match="deadlock"):
            attempts.clear()
            with ThreadPoolExecutor(2) as pool:
                for future in [pool.submit(unit, *order) for order in (("a", "b"), ("b", "a"))]:
                    future.result()
    finally:
        db.close()


def test_migrations_are_applied_once_by_concurrent_openers(pg_url):
    def open_one(_: int) -> int:
        with Database(pg_url) as db:
            return int(Gateway(db).fetch_value("SELECT max(version) FROM schema_version"))

    assert _all(open_one, 4) == [LATEST_VERSION] * 4
    with psycopg.connect(pg_url) as conn:
        versions = [row[0] for row in conn.execute("SELECT version FROM schema_version ORDER BY version")]
    assert versions == list(range(1, LATEST_VERSION + 1))


def test_a_database_newer_than_the_code_is_refused(pg_url):
    with Database(pg_url) as db:
        Gateway(db).execute("INSERT INTO schema_version (version) VALUES (?)", [LATEST_VERSION + 1])
    with pytest.raises(SchemaError, match=f"schema version {LATEST_VERSION + 1}, newer than this mcp-state"):
        Database(pg_url).open()


def test_a_failing_migration_is_rolled_back_whole(pg_url, monkeypatch):
    good = Migration(LATEST_VERSION + 1, "a good one", "")
    broken = Migration(LATEST_VERSION + 2, "a broken one", "")
    monkeypatch.setattr(schema, "MIGRATIONS", (*schema.MIGRATIONS, good, broken))
    monkeypatch.setitem(schema_pg.MIGRATIONS, good.version, "CREATE TABLE extra_good (x INTEGER);")
    # DDL and a data change first, then a failure: PostgreSQL rolls back all of it, DDL included.
    monkeypatch.setitem(
        schema_pg.MIGRATIONS,
        broken.version,
        "CREATE TABLE extra_broken (x INTEGER); ALTER TABLE users ADD COLUMN nickname VARCHAR; "
        "INSERT INTO no_such_table VALUES (1);",
    )
    conn = connect(pg_url)
    try:
        with pytest.raises(SchemaError, match=f"stays at version {good.version}"):
            apply_migrations(conn, target=broken.version)
        assert get_schema_version(conn) == good.version
        names = {r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        assert "extra_good" in names and "extra_broken" not in names
        assert "nickname" not in UserRepository(conn).create("u1", "a@b.c", "A")
    finally:
        conn.close()


@pytest.mark.parametrize("problem", ["refused", "password", "malformed", "malformed-param"])
def test_an_unreachable_server_is_one_line_without_the_password(pg_state_url, problem):
    if problem == "refused":
        url = "postgresql://someone:s3cr3t-pw@127.0.0.1:1/state"
    elif problem == "malformed":  # libpq's reason repeats the token it could not read
        url = "postgresql://someone:s3cr3t%zz@127.0.0.1:1/state"
    elif problem == "malformed-param":
        url = "postgresql://someone@127.0.0.1:1/state?password=s3cr3t%zz"
    else:
        user = pg_state_url.split("://", 1)[1].split(":", 1)[0]
        url = with_database(pg_state_url.replace("://" + user + ":", "://" + user + ":s3cr3t-pw-", 1), "x")
    db = Database(url)
    with pytest.raises(DatabaseUnavailableError) as info:
        db.open()
    message = str(info.value)
    assert "\n" not in message and "s3cr3t" not in message
    assert message.startswith("cannot connect to the PostgreSQL database postgresql://")
    expected = {"refused": "refused", "password": "password authentication failed"}
    assert expected.get(problem, "invalid percent-encoded token") in message


def test_timestamps_are_utc_whatever_the_session_zone(pg_state_url):
    # A server or role whose zone is Tokyo: mcp-state's sessions still run in UTC, and the
    # column defaults store UTC even for rows another program inserts from a Tokyo session.
    url = pg_state_url + ("&" if "?" in pg_state_url else "?") + "options=-c%20TimeZone%3DAsia/Tokyo"
    db = Database(url)
    try:
        gateway = Gateway(db)
        assert gateway.fetch_value("SELECT current_setting('TimeZone')") == "UTC"
        with psycopg.connect(url, autocommit=True) as other:
            assert other.execute("SELECT current_setting('TimeZone')").fetchone() == ("Asia/Tokyo",)
            other.execute("INSERT INTO audit_log (id, action) VALUES ('tokyo', 'x')")
        gateway.execute("INSERT INTO audit_log (id, action) VALUES ('ours', 'x')")
        now = datetime.now(UTC)
        for stamp in gateway.fetch_all("SELECT timestamp FROM audit_log"):
            assert abs(stamp["timestamp"] - now) < timedelta(minutes=5)
        given = datetime(2024, 6, 1, 21, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
        SyncStateRepository(db).record("t", synced_at=given)
        assert SyncStateRepository(db).get_last_sync("t") == datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
        assert gateway.fetch_value("SELECT now()").utcoffset() == timedelta(0)
    finally:
        db.close()


def test_writes_of_another_database_move_the_marks_and_reach_its_watchers(dbs):
    watcher, writer = dbs
    heard: list[frozenset[str] | None] = []
    watcher.watch(heard.append)  # starts listening
    assert watcher._listening.wait(5)
    heard.clear()
    before = watcher.write_marks()
    assert before is not None
    UserRepository(watcher).create("u0", "z@example.com", "Z")  # its own write: marked, not heard
    UserRepository(writer).create("u1", "a@example.com", "A")
    KnowledgeRepository(writer).create("k1", "T", "C", "c")
    for _ in range(100):
        if len(heard) >= 2:
            break
        threading.Event().wait(0.05)
    assert heard == [frozenset({"users"}), frozenset({"knowledge_items", "knowledge_words"})]
    now = watcher.write_marks()
    assert now is not None and now[1]["users"] == before[1].get("users", 0) + 2


def test_placeholders_leave_literals_and_percent_signs_alone(dbs):
    db = dbs[0]  # PostgreSQL's cursor adapter turns ? into %s (DuckDB takes ? itself)
    row = Gateway(db).fetch_one(
        "SELECT '?' AS q, /* ?% */ 'x%' AS pct, ? AS given, 10 % 3 AS rest -- 5%?", ["v"]
    )
    assert row == {"q": "?", "pct": "x%", "given": "v", "rest": 1}
    KnowledgeRepository(db).create("k1", "Growth of 50% in a year?", "body", "metrics")
    KnowledgeRepository(db).create("k2", "Growth of 50 in a year", "body", "metrics")
    assert [i["id"] for i in KnowledgeRepository(db).search("50%")] == ["k1"]


def test_the_pages_example_prints_what_it_says(pg_state_url, tmp_path):
    """docs/postgres.md, "Choosing it in Python": runs as shown, printing what its comments say."""
    page = (Path(__file__).resolve().parent.parent / "docs" / "postgres.md").read_text()
    code = re.search(r"```python\n(.*?)```", page, re.DOTALL).group(1)  # type: ignore[union-attr]
    expected = [line.split("#", 1)[1].strip() for line in code.splitlines() if line.startswith("print(")]
    env = dict(os.environ, MCP_STATE_DATABASE_URL=pg_state_url, TZ="Asia/Tokyo")
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == expected


def test_a_read_only_database_reads_and_refuses_writes(pg_state_url):
    with Database(pg_state_url) as db:
        UserRepository(db).create("u1", "a@example.com", "A")
    reader = Database(pg_state_url, read_only=True)
    try:
        assert UserRepository(reader).get_by_id("u1")["email"] == "a@example.com"
        with pytest.raises(DatabaseUnavailableError, match="read-only"):
            UserRepository(reader).create("u2", "b@example.com", "B")
        assert UserRepository(reader).count() == 1
    finally:
        reader.close()


@pytest.mark.parametrize("value", ["0", "ten", "-1"])
def test_a_pool_size_that_is_not_a_count_is_refused(monkeypatch, value):
    monkeypatch.setenv("MCP_STATE_PG_POOL_MAX", value)
    with pytest.raises(InvalidArgumentError, match="MCP_STATE_PG_POOL_MAX must be a whole number"):
        Database("postgresql://someone@127.0.0.1:1/state")  # refused before any connection


def test_every_migration_has_its_postgresql_text():
    missing = [m.version for m in schema.MIGRATIONS if not m.postgres]
    assert not missing, (
        f"migrations {missing} have no PostgreSQL text: add them to mcp_state/schema_pg.MIGRATIONS "
        "(port(duckdb_text) converts plain DDL; write what DuckDB says differently by hand)"
    )
