"""A PostgreSQL database with the latest schema, shared by one test worker's tests, emptied before each.

Creating a database and migrating it costs about a second on a busy machine; emptying one
costs milliseconds. Tests of the state layer that need "a fresh state" (not a fresh schema:
migration tests take ``pg_url``) take ``pg_state_url``, or ``state_db`` for a ``Database`` on
each backend in turn.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pg_support import throwaway_database

from mcp_state.db import Database
from mcp_state.schema import COLUMN_DESCRIPTIONS


@pytest.fixture(scope="session")
def _pg_shared() -> Iterator[tuple[str, Any]]:
    import psycopg

    with throwaway_database("mcp_shared") as url:
        with Database(url):  # applies the migrations
            pass
        with psycopg.connect(url, autocommit=True) as keeper:  # empties the database before each test
            yield url, keeper


def empty(conn: Any) -> None:
    """Delete every row but the schema versions, drop the tables tests made, restart every sequence."""
    tables = [
        row[0]
        for row in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename <> 'schema_version'"
        )
    ]
    sequences = [
        row[0]
        for row in conn.execute("SELECT sequencename FROM pg_sequences WHERE schemaname = current_schema()")
    ]
    # DELETE: on a few rows far cheaper than TRUNCATE's new files. One round trip for all of it.
    conn.execute(
        "".join(
            f'DELETE FROM "{t}";' if t in COLUMN_DESCRIPTIONS else f'DROP TABLE "{t}" CASCADE;'
            for t in tables
        )
        + "".join(f'ALTER SEQUENCE "{s}" RESTART;' for s in sequences)
    )


@pytest.fixture
def pg_state_url(_pg_shared: tuple[str, Any]) -> str:
    """The URL of a PostgreSQL database with the latest schema and no rows."""
    url, keeper = _pg_shared
    empty(keeper)
    return url


@pytest.fixture
def state_db(backend: str, tmp_path, request: pytest.FixtureRequest) -> Iterator[Database]:
    """A ``Database`` with the schema and no rows: a new DuckDB file, or the emptied PostgreSQL one."""
    location = request.getfixturevalue("pg_state_url") if backend == "postgres" else tmp_path / "s.duckdb"
    db = Database(location)
    yield db
    db.close()
