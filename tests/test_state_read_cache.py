"""The read cache of ``Database(read_cache=N)`` never answers with stale data.

Lookups by key (``Repository._get``) may be answered from the cache. Every test checks that
the cache is on (``db.caching``) where it matters, so that a pass means the cache was in play.
DuckDB only: on PostgreSQL the cache is off (other processes write at any time).
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mcp_state.db import Database, connect
from mcp_state.gateway import Gateway
from mcp_state.repositories import KnowledgeRepository, SyncStateRepository


@pytest.fixture
def db(tmp_path: Path):
    database = Database(tmp_path / "state.duckdb", idle_release=None, read_cache=64)
    yield database
    database.close()


def rows_of(db: Database, table_id: str = "orders") -> int | None:
    state = SyncStateRepository(db).get_table_state(table_id)
    return None if state is None else state["rows"]


def record(source, rows: int, table_id: str = "orders") -> None:  # type: ignore[no-untyped-def]
    SyncStateRepository(source).update_sync(table_id, rows=rows, file_size_bytes=1, hash=str(rows))


def test_a_lookup_is_cached_and_a_write_through_the_repository_shows_at_once(db):
    assert rows_of(db) is None  # "no row" is an answer too, and is cached
    record(db, 1)
    assert rows_of(db) == 1
    assert db.caching and db._cache
    for n in range(2, 6):
        record(db, n)
        assert rows_of(db) == n


def test_writes_through_another_gateway_or_a_raw_session_show_at_once(db):
    record(db, 1)
    assert rows_of(db) == 1
    record(Gateway(db), 2)
    assert rows_of(db) == 2
    with db.session() as cursor:
        cursor.execute("UPDATE sync_state SET rows = 3 WHERE table_id = 'orders'")
    assert rows_of(db) == 3
    assert db.caching


def test_an_open_transaction_is_never_cached_and_a_rollback_leaves_no_trace(db):
    record(db, 1)
    assert rows_of(db) == 1
    gateway = Gateway(db)
    seen_elsewhere: list[int | None] = []

    class Undo(Exception):
        pass

    with pytest.raises(Undo), gateway.transaction():
        record(gateway, 2)
        assert SyncStateRepository(gateway).get_table_state("orders")["rows"] == 2  # its own write
        reader = threading.Thread(target=lambda: seen_elsewhere.append(rows_of(db)))
        reader.start()
        reader.join()
        raise Undo
    assert seen_elsewhere == [1]  # other threads see the committed row while the write is open
    assert rows_of(db) == 1
    with gateway.transaction():
        record(gateway, 4)
    assert rows_of(db) == 4


def test_a_changed_answer_does_not_change_the_cached_one(db):
    knowledge = KnowledgeRepository(db)
    knowledge.create("k1", "Title", "Content", "metrics", tags=["a"])
    first = knowledge.get_by_id("k1")
    first["tags"].append("changed")
    first["title"] = "changed"
    again = knowledge.get_by_id("k1")
    assert again["tags"] == ["a"] and again["title"] == "Title"


def test_no_stale_read_after_release_and_another_process_writing(tmp_path):
    path = tmp_path / "state.duckdb"
    db = Database(path, idle_release=None, read_cache=64)
    try:
        record(db, 1)
        assert rows_of(db) == 1
        assert db.release()
        code = (
            "import sys; from mcp_state.db import Database; from mcp_state.repositories import SyncStateRepository\n"
            "db = Database(sys.argv[1], idle_release=None)\n"
            "SyncStateRepository(db).update_sync('orders', rows=2, file_size_bytes=1, hash='2'); db.close()"
        )
        done = subprocess.run(
            [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        assert db.caching
        assert rows_of(db) == 2
    finally:
        db.close()


def test_no_stale_read_after_an_idle_release(tmp_path):
    path = tmp_path / "state.duckdb"
    db = Database(path, idle_release=0.05, read_cache=64)
    try:
        record(db, 1)
        assert rows_of(db) == 1
        deadline = threading.Event()
        for _ in range(200):  # the reaper closes the file once it is idle
            if not db.is_open:
                break
            deadline.wait(0.05)
        assert not db.is_open
        code = (
            "import sys; from mcp_state.db import Database; from mcp_state.repositories import SyncStateRepository\n"
            "db = Database(sys.argv[1], idle_release=None)\n"
            "SyncStateRepository(db).update_sync('orders', rows=7, file_size_bytes=1, hash='7'); db.close()"
        )
        done = subprocess.run(
            [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        assert rows_of(db) == 7
    finally:
        db.close()


def test_across_threads_a_reader_sees_every_write_acknowledged_before_its_read(db):
    """A writer thread records 1, 2, 3...; after each commit returns it tells the readers, and
    each reader must then see at least that value (never an older cached one)."""
    record(db, 0)
    acknowledged = [0]
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[str] = []

    def writer() -> None:
        for n in range(1, 150):
            record(db, n)
            with lock:
                acknowledged[0] = n
        stop.set()

    def reader() -> None:
        last = 0
        while not stop.is_set() or last < 149:
            with lock:
                floor = acknowledged[0]
            seen = rows_of(db)
            if seen is None or seen < floor or seen < last:
                errors.append(f"read {seen} after {floor} was acknowledged (last read {last})")
                return
            last = seen

    threads = [threading.Thread(target=writer, daemon=True)]
    threads += [threading.Thread(target=reader, daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[0]
    assert not any(t.is_alive() for t in threads), "a reader never saw the last write"
    assert rows_of(db) == 149
    assert db.caching


def test_the_cache_is_bounded(tmp_path):
    db = Database(tmp_path / "state.duckdb", idle_release=None, read_cache=2)
    try:
        for name in ("a", "b", "c"):
            record(db, 1, name)
        for name in ("a", "b", "c", "a"):
            assert rows_of(db, name) == 1
        assert len(db._cache) == 2
    finally:
        db.close()


def test_ways_around_the_database_turn_the_cache_off(tmp_path):
    for make_raw in (
        lambda db, path: db.cursor(),
        lambda db, path: db.open(),
        lambda db, path: connect(path),
    ):
        path = tmp_path / f"s{id(make_raw)}.duckdb"
        db = Database(path, idle_release=None, read_cache=64)
        try:
            record(db, 1)
            assert rows_of(db) == 1 and db.caching
            raw = make_raw(db, path)  # same process, same instance: its writes are not seen...
            raw.execute("UPDATE sync_state SET rows = 5 WHERE table_id = 'orders'")
            assert not db.caching
            assert rows_of(db) == 5  # ...so the cache is off for good
            if raw is not db._conn:
                raw.close()
        finally:
            db.close()


def test_off_by_default(tmp_path):
    db = Database(tmp_path / "state.duckdb", idle_release=None)
    try:
        record(db, 1)
        assert rows_of(db) == 1
        assert not db.caching and not db._cache
    finally:
        db.close()


def test_the_server_caches_lookups_and_answers_a_read_after_a_write_with_the_write(tmp_path):
    import anyio
    from mcp import Client

    from mcp_state.server import ServerSettings, build_server

    async def body() -> None:
        server = build_server(
            ServerSettings(db_path=str(tmp_path / "s.duckdb"), actor="t", idle_release=None)
        )
        async with Client(server) as client:
            for n in range(5):
                done = await client.call_tool(
                    "record_sync", {"table_id": "orders", "rows": n, "file_size_bytes": 1, "hash": "h"}
                )
                assert not done.is_error
                for _ in range(2):  # the second read of each is a cached one
                    got = await client.call_tool("get_sync_state", {"table_id": "orders"})
                    assert got.structured_content["rows"] == n

    anyio.run(body)
