"""The seed plan's database tests, ported to mcp_state."""

import os
import tempfile

from mcp_state.schema import LATEST_VERSION


def test_get_system_db_creates_database():
    with tempfile.TemporaryDirectory() as tmpdir:
        os.environ["DATA_DIR"] = tmpdir
        from mcp_state.db import get_system_db

        conn = get_system_db()
        assert conn is not None
        # Verify tables exist
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema='main'"
        ).fetchall()
        table_names = {t[0] for t in tables}
        assert "users" in table_names
        assert "sync_state" in table_names
        assert "knowledge_items" in table_names
        assert "audit_log" in table_names
        conn.close()


def test_get_system_db_is_idempotent():
    with tempfile.TemporaryDirectory() as tmpdir:
        os.environ["DATA_DIR"] = tmpdir
        from mcp_state.db import get_system_db

        conn1 = get_system_db()
        conn1.execute(
            "INSERT INTO users (id, email, name, role) VALUES ('u1', 'test@test.com', 'Test', 'analyst')"
        )
        conn1.close()
        conn2 = get_system_db()
        result = conn2.execute("SELECT email FROM users WHERE id='u1'").fetchone()
        assert result[0] == "test@test.com"
        conn2.close()


def test_schema_version_tracked():
    with tempfile.TemporaryDirectory() as tmpdir:
        os.environ["DATA_DIR"] = tmpdir
        from mcp_state.db import get_schema_version, get_system_db

        conn = get_system_db()
        version = get_schema_version(conn)
        # The seed had one migration; the schema has grown since (see mcp_state.schema).
        assert version == LATEST_VERSION
        conn.close()
