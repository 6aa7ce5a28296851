"""The SQL engine keeps worker processes with copies of the data and the verdicts of accepted
statements: neither may change an answer, keep a refused statement running, hold the file, or
show stale data."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
from sql_support import seeded_db_path

from mcp_state.errors import InvalidSQLError, QueryTimeoutError
from mcp_state.gateway import Gateway
from mcp_state.sql import SqlEngine, hardened_database


@pytest.fixture
def db(tmp_path):
    database = hardened_database(seeded_db_path(tmp_path / "data"), idle_release=None)
    yield database
    database.close()


def count_users(engine: SqlEngine) -> int:
    return engine.query("SELECT count(*) FROM users")["rows"][0][0]


def test_a_write_after_a_query_shows_in_the_next_query(db):
    engine = SqlEngine(db)
    assert count_users(engine) == 4
    Gateway(db).execute(
        "INSERT INTO users (id, email, name, role) VALUES ('u9', 'nine@example.com', 'Nine', 'viewer')"
    )
    assert count_users(engine) == 5  # same thread, same kept cursor: a new transaction, a new snapshot


def test_a_refused_statement_stays_refused_and_an_accepted_one_keeps_its_answer(db):
    engine = SqlEngine(db)
    for _ in range(3):
        with pytest.raises(InvalidSQLError, match="not available"):
            engine.query("SELECT * FROM main.users")
        assert engine.query("SELECT id FROM users ORDER BY id")["rows"] == [["u1"], ["u2"], ["u3"], ["u4"]]


def test_the_next_query_after_a_timeout_runs_normally(db):
    engine = SqlEngine(db, timeout=0.3)
    for _ in range(2):
        with pytest.raises(QueryTimeoutError):
            engine.query("SELECT count(*) FROM range(1e13::BIGINT)")
        assert count_users(engine) == 4


def test_threads_each_get_their_own_cursor_and_right_answers(db):
    engine = SqlEngine(db)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(30):
                rows = engine.query(f"SELECT {n} * 1000 + {i} AS v, count(*) AS users FROM users")["rows"]
                assert rows == [[n * 1000 + i, 4]]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


def test_kept_cursors_do_not_keep_the_file_open(tmp_path):
    """Idle release closes the root, and with it every kept cursor: another process gets in."""
    path = seeded_db_path(tmp_path / "data")
    db = hardened_database(path, idle_release=None)
    try:
        engine = SqlEngine(db)
        assert count_users(engine) == 4
        assert db.release()
        opened = subprocess.run(
            [sys.executable, "-c", "import duckdb, sys; duckdb.connect(sys.argv[1]).close()", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert opened.returncode == 0, opened.stderr
        assert count_users(engine) == 4  # and this process takes it back
    finally:
        db.close()
