"""The PostgreSQL server the tests use, and a fresh database on it for each test that asks.

``MCP_STATE_TEST_POSTGRES`` names a server to create throwaway databases on, as the URL of a
role allowed to create databases (``.ci/run`` starts Debian's PostgreSQL on 127.0.0.1 and sets it).
Without it the PostgreSQL tests are skipped on a developer's machine and fail under CI (``CI``
set): CI must never pass without running them. ``MCP_STATE_PG_REPORT`` names a file the run
writes the number of PostgreSQL tests that passed to (``.ci/run`` checks that it is not 0).
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

ENV = "MCP_STATE_TEST_POSTGRES"
REPORT_ENV = "MCP_STATE_PG_REPORT"
MARK = "postgres"
_counter = itertools.count()


def admin_url() -> str:
    """The server's admin URL, or a skip (a failure under CI) saying how to provide one."""
    url = os.environ.get(ENV)
    if not url:
        reason = (
            f"set {ENV}=postgresql://USER:PASSWORD@127.0.0.1:5432/postgres (a role that may "
            "create databases) to run the PostgreSQL tests; .ci/run does"
        )
        if os.environ.get("CI"):
            pytest.fail("CI must run the PostgreSQL tests: " + reason)
        pytest.skip(reason)
    return url


def with_database(url: str, name: str) -> str:
    """``url`` with its database part replaced by ``name``."""
    head, _, tail = url.partition("?")
    base = re.sub(r"/[^/]*$", "", head) if head.count("/") > 2 else head
    return f"{base}/{name}" + (f"?{tail}" if tail else "")


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@contextmanager
def throwaway_database(prefix: str = "mcp_test") -> Iterator[str]:
    """A new, empty PostgreSQL database's URL; dropped after, with the SQL tool's reader role."""
    import psycopg

    from mcp_state.sql.pg_role import reader_name

    admin = admin_url()
    name = f"{prefix}_{_worker()}_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(admin, name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            # Roles belong to the server, not the database: the SQL tool's reader role goes too.
            conn.execute(f'DROP ROLE IF EXISTS "{reader_name(name)}"')


@pytest.fixture
def pg_url() -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped after the test."""
    with throwaway_database() as url:
        yield url


BACKENDS = ("duckdb", "postgres")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each backend in turn: tests taking it run once on DuckDB and once on PostgreSQL."""
    return str(request.param)


@pytest.fixture
def db_location(backend: str, tmp_path, request: pytest.FixtureRequest) -> str:
    """Where the test's state lives: a DuckDB file, or a fresh PostgreSQL database."""
    if backend == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return str(tmp_path / "state.duckdb")


PG_FIXTURES = frozenset({"pg_url", "pg_state_url"})


def mark_postgres_items(items: list[pytest.Item]) -> None:
    """Mark every test that uses a PostgreSQL database, so the run can count them."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        callspec = getattr(item, "callspec", None)
        params = callspec.params.values() if callspec is not None else ()
        on_pg = bool(set(names) & PG_FIXTURES) or any(value == "postgres" for value in params)
        if on_pg:
            item.add_marker(MARK)


class PostgresTally:
    """Counts the PostgreSQL tests that passed (on the controller, under xdist too)."""

    def __init__(self) -> None:
        self.passed = 0

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" and report.passed and MARK in report.keywords:
            self.passed += 1

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        target = os.environ.get(REPORT_ENV)
        if target and not hasattr(session.config, "workerinput"):
            with open(target, "w", encoding="utf-8") as fh:
                fh.write(f"{self.passed}\n")
