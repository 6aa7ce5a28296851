import os
import shutil
from pathlib import Path

import pytest
from pg_state_support import _pg_shared as _pg_shared  # a migrated database, emptied per test
from pg_state_support import pg_state_url as pg_state_url
from pg_state_support import state_db as state_db
from pg_support import PostgresTally, mark_postgres_items
from pg_support import backend as backend  # fixtures: each backend in turn, a fresh database
from pg_support import db_location as db_location
from pg_support import pg_url as pg_url

from mcp_state.db import Database, get_system_db

SAMPLE_DATA = Path(__file__).resolve().parent.parent / "mcp_state" / "sample_data"


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path, monkeypatch):
    """Every test gets its own DATA_DIR, so nothing leaks into ./data or between tests."""
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    yield


@pytest.fixture(scope="session")
def npx() -> str:
    """Node's npx, for the tests that run MCP Inspector and mcpb (CI must have it)."""
    found = shutil.which("npx")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(
                "CI must have node and npx (22.19 or newer) for the MCP Inspector and MCP Bundle tests"
            )
        pytest.skip("npx is not installed (node.js); CI runs this test")
    return found


@pytest.fixture
def db_conn(tmp_path, backend, request):
    """A fresh database with the schema (the seed plan's fixture), on each backend in turn: a
    DuckDB file's connection, or a PostgreSQL ``Database`` (repositories take either)."""
    if backend == "postgres":
        db = Database(request.getfixturevalue("pg_state_url"))
        yield db
        db.close()
        return
    os.environ["DATA_DIR"] = str(tmp_path / "data")
    conn = get_system_db()
    yield conn
    conn.close()


def pytest_configure(config):
    config.pluginmanager.register(PostgresTally(), "mcp-state-postgres-tally")


def pytest_collection_modifyitems(config, items):
    mark_postgres_items(items)
