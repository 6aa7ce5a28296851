"""Many threads on shared rows: exact final counts, no errors.

8 threads x 500 mixed operations (votes, upserts of one sync state, one-time code
verification, audit inserts, reads), once through a ``Database`` and once through a raw
DuckDB connection shared by every thread (as the seed passes one to its repositories), and
through a PostgreSQL ``Database`` (fewer operations: each thread has a connection of its own).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from mcp_state.db import Database, get_system_db
from mcp_state.errors import ConflictError
from mcp_state.repositories import (
    AuditRepository,
    KnowledgeRepository,
    PendingCodeRepository,
    SyncStateRepository,
    UserRepository,
)

THREADS = 8
OPS = 500
ITEMS = ["k0", "k1", "k2"]
USERS_PER_THREAD = 4


def _vote_plan(thread: int, ops: int) -> dict[tuple[str, str], int]:
    """The last vote each of this thread's users casts on each item (what the table must hold)."""
    final: dict[tuple[str, str], int] = {}
    for i in range(0, ops, 5):
        final[(ITEMS[i % len(ITEMS)], f"t{thread}-u{i % USERS_PER_THREAD}")] = 1 if (i // 5) % 3 else -1
    return final


def _run_mixed_workload(source: Any, ops: int = OPS, pause_every: int = 0) -> None:
    codes_total = ops // 5  # every thread tries every code once, in the same order
    knowledge = KnowledgeRepository(source)
    for item in ITEMS:
        knowledge.create(item, f"title {item}", "content", "c")
    codes = PendingCodeRepository(source)
    for n in range(codes_total):
        codes.create_code(f"C{n}", chat_id=1000 + n)

    start = threading.Barrier(THREADS)
    pause = threading.Barrier(THREADS)
    errors: list[BaseException] = []
    won: list[tuple[str, int]] = []
    won_lock = threading.Lock()

    def worker(t: int) -> None:
        k = KnowledgeRepository(source)
        s = SyncStateRepository(source)
        c = PendingCodeRepository(source)
        a = AuditRepository(source)
        try:
            start.wait()
            for i in range(ops):
                if pause_every and i % pause_every == 0:
                    pause.wait()  # every thread idle at once: room for the idle release
                    time.sleep(0.02)
                op = i % 5
                if op == 0:
                    k.vote(ITEMS[i % len(ITEMS)], f"t{t}-u{i % USERS_PER_THREAD}", 1 if (i // 5) % 3 else -1)
                elif op == 1:
                    s.update_sync("shared", rows=t * ops + i, file_size_bytes=i, hash=f"{t}:{i}")
                elif op == 2:
                    code = f"C{i // 5}"
                    got = c.verify_code(code)
                    if got is not None:
                        with won_lock:
                            won.append((code, got["chat_id"]))
                elif op == 3:
                    a.log(user_id=f"t{t}", action="op", resource="shared", params={"i": i})
                else:
                    votes = k.get_votes(ITEMS[i % len(ITEMS)])
                    assert 0 <= votes["upvotes"] + votes["downvotes"] <= THREADS * USERS_PER_THREAD
                    state = s.get_table_state("shared")
                    assert state is None or state["hash"].count(":") == 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a worker hung"
    assert errors == []

    # Votes: every (item, user) pair holds exactly the thread's last vote.
    expected: dict[tuple[str, str], int] = {}
    for t in range(THREADS):
        expected.update(_vote_plan(t, ops))
    for item in ITEMS:
        want = Counter(v for (i, _), v in expected.items() if i == item)
        assert knowledge.get_votes(item) == {"upvotes": want[1], "downvotes": want[-1]}
        stored = {(v["item_id"], v["user_id"]): v["vote"] for v in knowledge.list_votes(item)}
        assert stored == {key: v for key, v in expected.items() if key[0] == item}

    # One sync state row, one history row per upsert, and the state is the newest history row.
    sync = SyncStateRepository(source)
    upserts = THREADS * len(range(1, ops, 5))
    assert sync.count_states() == 1
    assert sync.count_history("shared") == upserts
    newest = sync.get_sync_history("shared", limit=1)[0]
    state = sync.get_table_state("shared")
    assert state is not None and state["rows"] == newest["rows"]
    assert len({h["rows"] for h in sync.get_sync_history("shared", limit=None)}) == upserts

    # Codes: each one verified by exactly one of the 8 threads, with its own chat id.
    assert sorted(won) == sorted((f"C{n}", 1000 + n) for n in range(codes_total))
    assert PendingCodeRepository(source).count() == 0

    # Audit: every insert is there once.
    audit = AuditRepository(source)
    assert audit.count(action="op") == THREADS * len(range(3, ops, 5))
    seqs = [e["seq"] for e in audit.query(limit=None)]
    assert len(set(seqs)) == len(seqs)
    # Newest first by time agrees with commit order: stamps are taken under the write lock.
    assert seqs == sorted(seqs, reverse=True)


@pytest.mark.slow
def test_mixed_threads_through_database(tmp_path):
    db = Database(tmp_path / "state.duckdb", idle_release=None)
    try:
        _run_mixed_workload(db)
    finally:
        db.close()


@pytest.mark.slow
def test_mixed_threads_through_postgres(pg_state_url):
    """No process write lock on PostgreSQL: the threads' transactions really overlap (row locks,
    ``ON CONFLICT`` upserts, retried deadlocks), and every count is still exact."""
    db = Database(pg_state_url)
    try:
        _run_mixed_workload(db, ops=150)
    finally:
        db.close()


@pytest.mark.slow
def test_mixed_threads_through_a_shared_raw_connection():
    conn = get_system_db()
    try:
        _run_mixed_workload(conn)
    finally:
        conn.close()


@pytest.mark.slow
def test_mixed_threads_while_the_database_is_released_and_reopened(tmp_path):
    """Idle release racing with work must neither fail an operation nor lose a write."""
    opens: list[int] = []
    db = Database(tmp_path / "state.duckdb", idle_release=0.001, on_open=lambda conn: opens.append(1))
    try:
        _run_mixed_workload(db, ops=100, pause_every=20)
    finally:
        db.close()
    assert len(opens) > 1, "the file was never released during the run; the race was not exercised"


def _concurrently(n: int, fn: Callable[[], Any]) -> tuple[list[Any], list[BaseException]]:
    barrier = threading.Barrier(n)
    results: list[Any] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run() -> None:
        try:
            barrier.wait()
            value = fn()
            with lock:
                results.append(value)
        except BaseException as exc:
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results, errors


@pytest.mark.parametrize("attempt", range(20))
def test_two_concurrent_verifies_of_one_code_exactly_one_succeeds(tmp_path, attempt):
    db = Database(tmp_path / "state.duckdb", idle_release=None)
    try:
        PendingCodeRepository(db).create_code("ONCE", chat_id=42)
        results, errors = _concurrently(2, lambda: PendingCodeRepository(db).verify_code("ONCE"))
    finally:
        db.close()
    assert errors == []
    assert len(results) == 2
    assert [r["chat_id"] for r in results if r is not None] == [42]


def test_concurrent_creates_of_one_email_exactly_one_wins(tmp_path):
    db = Database(tmp_path / "state.duckdb", idle_release=None)
    try:
        results, errors = _concurrently(
            8, lambda: UserRepository(db).create(f"u{threading.get_ident()}", "same@x.io", "Same")
        )
        assert len(results) == 1
        assert len(errors) == 7 and all(isinstance(e, ConflictError) for e in errors)
        assert UserRepository(db).count() == 1
    finally:
        db.close()
