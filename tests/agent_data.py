"""Generated state for the agent-question tests and ``benchmarks/bench_agent.py``, in bulk SQL.

``sync_data``: 12 tables with two weeks of daily syncs (plus filler runs to reach a size),
shaped so that the table that failed most this week (``table_03``, 5 failures) is *not* the
one whose latest sync failed (``table_07``, 2 failures): a "latest status" answer gets the
question "which table failed most this week?" wrong. ``audit_data``, ``knowledge_data``: rows
in commit order (sequence numbers rise with time), as the tools would have written them.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb

TABLES = 12
DAYS = 14
MOST_FAILED = "table_03"  # failed on days 8-12, ok today
LATEST_FAILED = "table_07"  # failed on days 12-13 (its latest)
ACTORS = ("ana@example.com", "bob@example.com", "claude", "ops")


def _single_thread(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute("SET threads = 1")  # rows get sequence numbers in the order of range()


def sync_data(conn: duckdb.DuckDBPyConnection, now: datetime, filler: int = 0) -> None:
    """Two weeks of daily syncs of 12 tables ending just before ``now``, then ``filler`` older
    ok runs (inserted first, so they are older in commit order too); sync_state holds each latest."""
    _single_thread(conn)
    start = now - timedelta(days=DAYS + 1)
    conn.execute(
        """INSERT INTO sync_history (id, table_id, synced_at, rows, duration_ms, status, error, seq)
           SELECT 'f-' || i, 'table_' || lpad(CAST(i % 12 AS VARCHAR), 2, '0'),
                  ?::TIMESTAMP - to_microseconds(CAST(? - i AS BIGINT) * 1000), i, 50, 'ok', NULL,
                  nextval('sync_history_seq')
           FROM range(?) AS r(i)""",
        [start.replace(tzinfo=None), filler, filler],
    )
    conn.execute(
        """INSERT INTO sync_history (id, table_id, synced_at, rows, duration_ms, status, error, seq)
           SELECT 'h-' || i, t, ts, 1000 + i, 100 + i % 50,
                  CASE WHEN failed THEN 'error' ELSE 'ok' END,
                  CASE WHEN failed THEN 'source timed out on day ' || day END,
                  nextval('sync_history_seq')
           FROM (
               SELECT i, i // 12 AS day, 'table_' || lpad(CAST(i % 12 AS VARCHAR), 2, '0') AS t,
                      ?::TIMESTAMP - to_days(CAST(13 - i // 12 AS INTEGER))
                          - to_minutes(CAST(12 - i % 12 AS BIGINT)) AS ts,
                      (i % 12 = 3 AND i // 12 BETWEEN 8 AND 12) OR (i % 12 = 7 AND i // 12 >= 12)
                          OR (i % 12 = 5 AND i // 12 = 2) AS failed
               FROM range(?) AS r(i)
           )
           ORDER BY i""",
        [now.replace(tzinfo=None), TABLES * DAYS],
    )
    conn.execute(
        """INSERT INTO sync_state (table_id, last_sync, rows, file_size_bytes, uncompressed_size_bytes,
                                   columns, hash, status, error)
           SELECT table_id, synced_at, rows, rows * 10, rows * 40, 8, 'hash-' || id, status, error
           FROM sync_history WHERE starts_with(table_id, 'table_')
           QUALIFY row_number() OVER (PARTITION BY table_id ORDER BY seq DESC) = 1"""
    )


def audit_data(conn: duckdb.DuckDBPyConnection, rows: int, now: datetime) -> None:
    """``rows`` audit entries, one a second up to ``now``, actors in turn."""
    _single_thread(conn)
    conn.execute(
        """INSERT INTO audit_log (id, timestamp, user_id, action, resource, params, result, duration_ms, seq)
           SELECT 'a-' || i, ?::TIMESTAMP - to_seconds(CAST(? - i AS BIGINT)),
                  [?, ?, ?, ?][1 + i % 4], ['record_sync', 'vote_knowledge_item', 'update_user'][1 + i % 3],
                  'r-' || (i % 500), '{"n": ' || i || '}', CASE WHEN i % 50 = 0 THEN 'not_found' ELSE 'ok' END,
                  i % 90, nextval('audit_log_seq')
           FROM range(?) AS r(i)""",
        [now.replace(tzinfo=None), rows, *ACTORS, rows],
    )


def knowledge_data(conn: duckdb.DuckDBPyConnection, rows: int, now: datetime) -> None:
    """``rows`` knowledge items with 300-character contents, one created a second up to ``now``."""
    _single_thread(conn)
    conn.execute(
        """INSERT INTO knowledge_items (id, title, content, category, tags, status, contributors,
                                        source_user, audience, created_at, updated_at, change_seq)
           SELECT 'k-' || i, 'Item ' || i || ' about ' || ['revenue', 'churn', 'orders', 'mrr'][1 + i % 4],
                  rpad('Item ' || i || ' explains how the ' || ['revenue', 'churn', 'orders', 'mrr'][1 + i % 4]
                       || ' figure is computed. ', 300, 'lorem ipsum '),
                  ['metrics', 'howto', 'data'][1 + i % 3],
                  '["' || ['revenue', 'churn', 'orders', 'mrr'][1 + i % 4] || '", "t' || (i % 20) || '"]',
                  ['pending', 'approved', 'approved', 'archived'][1 + i % 4], '["bob@example.com"]',
                  'bob@example.com', 'all', ts, ts, nextval('knowledge_change_seq')
           FROM (SELECT i, ?::TIMESTAMP - to_seconds(CAST(? - i AS BIGINT)) AS ts FROM range(?) AS r(i))""",
        [now.replace(tzinfo=None), rows, rows],
    )
