"""A state of realistic size for the agent-facing tests: thousands of rows, long texts.

Written with bulk SQL (seconds, not minutes), then the knowledge word index is built the way
a legacy import builds it. ``READS`` gives every read tool's arguments on this state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mcp_state.db import Database
from mcp_state.repositories.knowledge import reindex_sql

ITEMS = 3000
CONTENT_WORDS = ("revenue", "churn", "pipeline", "forecast", "refund", "invoice", "cohort", "margin")

_STATE_SQL = [
    """INSERT INTO users (id, email, name, role, created_at)
       SELECT 'u' || i || '@example.com', 'u' || i || '@example.com', 'User ' || i,
              ['admin', 'analyst', 'viewer'][1 + i % 3], TIMESTAMP '2025-01-01' + INTERVAL (i) MINUTE
       FROM range(2000) t(i)""",
    """INSERT INTO dataset_permissions (user_id, dataset, access)
       SELECT 'u' || (i % 2000) || '@example.com', 'dataset_' || (i // 2000), 'read' FROM range(3000) t(i)""",
    """INSERT INTO telegram_links (user_id, chat_id, linked_at)
       SELECT 'u' || i || '@example.com', 1000000 + i, TIMESTAMP '2025-02-01' FROM range(1500) t(i)""",
    """INSERT INTO table_registry (id, name, folder, sync_strategy, primary_key, description, registered_at)
       SELECT 'table_' || i, 'Table ' || i, 'folder_' || (i % 10), 'incremental', 'id',
              repeat('What this table holds, in detail. ', 60), TIMESTAMP '2025-01-01'
       FROM range(1000) t(i)""",
    """INSERT INTO script_registry (id, name, owner, schedule, source, deployed_at, last_status)
       SELECT 'script_' || i, 'Script ' || i, 'u' || (i % 20) || '@example.com', '0 6 * * *',
              repeat('print(\"a line of the script source\")' || chr(10), 800), TIMESTAMP '2025-01-01',
              ['ok', 'error'][1 + i % 2]
       FROM range(300) t(i)""",
    """INSERT INTO table_profiles (table_id, profile, profiled_at)
       SELECT 'table_' || i,
              json_object('row_count', i * 1000, 'columns',
                  (SELECT json_group_array(json_object('name', 'column_' || j, 'type', 'VARCHAR',
                                                       'null_pct', 0.5, 'top_values', ['a', 'b', 'c']))
                   FROM range(400) c(j))),
              TIMESTAMP '2025-03-01'
       FROM range(300) t(i)""",
    f"""INSERT INTO knowledge_items (id, title, content, category, tags, status, source_user,
                                     created_at, updated_at)
       SELECT 'km_' || lpad(i::VARCHAR, 5, '0'), 'Knowledge item ' || i || ' about '
                  || {list(CONTENT_WORDS)}[1 + i % 8],
              repeat('The ' || {list(CONTENT_WORDS)}[1 + i % 8] || ' figures are checked every month. ', 40),
              ['metrics', 'process'][1 + i % 2], to_json(['tag' || (i % 7)]),
              ['pending', 'approved'][1 + i % 2], 'u1@example.com',
              TIMESTAMP '2025-01-01' + INTERVAL (i) MINUTE, TIMESTAMP '2025-01-01' + INTERVAL (i) MINUTE
       FROM range({ITEMS}) t(i)""",
    """INSERT INTO knowledge_votes (item_id, user_id, vote, voted_at)
       SELECT 'km_' || lpad((i % 500)::VARCHAR, 5, '0'), 'u' || (i // 500) || '@example.com',
              CASE WHEN i % 3 = 0 THEN -1 ELSE 1 END, TIMESTAMP '2025-04-01' + INTERVAL (i) SECOND
       FROM range(5000) t(i)""",
    """INSERT INTO sync_state (table_id, last_sync, rows, file_size_bytes, uncompressed_size_bytes, columns,
                               hash, status, error)
       SELECT 'table_' || i, TIMESTAMP '2025-05-01', 1000, 2000, 4000, 20, 'h' || i,
              CASE WHEN i % 5 = 0 THEN 'error' ELSE 'ok' END,
              CASE WHEN i % 5 = 0 THEN repeat('source timed out. ', 50) END
       FROM range(1000) t(i)""",
    """INSERT INTO sync_history (id, table_id, synced_at, rows, duration_ms, status, error)
       SELECT 'h' || i, 'table_' || (i % 1000), TIMESTAMP '2025-05-01' - INTERVAL (i) MINUTE, 1000, 50,
              CASE WHEN i % 5 = 0 THEN 'error' ELSE 'ok' END,
              CASE WHEN i % 5 = 0 THEN repeat('source timed out. ', 50) END
       FROM range(5000) t(i)""",
    """INSERT INTO audit_log (id, timestamp, user_id, action, resource, params, result, duration_ms)
       SELECT 'a' || i, TIMESTAMP '2025-05-01' - INTERVAL (i) SECOND, 'u' || (i % 50) || '@example.com',
              'update_knowledge_item', 'km_' || i,
              json_object('content', repeat('edited text ', 40)), 'ok', 5
       FROM range(20000) t(i)""",
]

# Arguments for every read tool on this state (tools not named here take none).
READS: dict[str, dict[str, Any]] = {
    "get_sync_state": {"table_id": "table_0"},
    "get_sync_history": {"table_id": "table_0"},
    "get_sync_settings": {"user_id": "u1@example.com"},
    "get_user": {"user_id": "u1@example.com"},
    "find_user_by_email": {"email": "u1@example.com"},
    "get_knowledge_item": {"item_id": "km_00001"},
    "search_knowledge": {"query": "revenue figures month"},
    "get_knowledge_votes": {"item_id": "km_00001"},
    "get_telegram_link": {"user_id": "u1@example.com"},
    "get_script": {"script_id": "script_1"},
    "get_registered_table": {"table_id": "table_1"},
    "get_table_profile": {"table_id": "table_1"},
    "sql_query": {"sql": "SELECT * FROM knowledge_items"},
    "sql_explain": {"sql": "SELECT * FROM knowledge_items"},
}


def build_big_state(path: Path) -> Path:
    """The realistic state at ``path`` (a new file)."""
    with Database(path, idle_release=None) as db:
        conn = db.cursor()
        for sql in _STATE_SQL:
            conn.execute(sql)
        for sql in reindex_sql("SELECT id FROM knowledge_items"):
            conn.execute(sql)
    return path
