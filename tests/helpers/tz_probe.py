"""Run the state layer in whatever zone ``TZ`` names and print what it stored and returned.

``python tz_probe.py write`` writes into ``DATA_DIR`` and reports; ``read`` reports what the
repositories return for the rows ``write`` made. Assertions live in tests/test_state_time.py.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import duckdb

from mcp_state.db import Database, get_analytics_db, get_system_db, system_db_path
from mcp_state.gateway import Gateway
from mcp_state.repositories import (
    AuditRepository,
    KnowledgeRepository,
    PendingCodeRepository,
    SyncStateRepository,
    UserRepository,
)

TOKYO = ZoneInfo("Asia/Tokyo")
INSTANT = datetime(2024, 1, 1, 9, 0, tzinfo=TOKYO)  # 2024-01-01 00:00 UTC


def utc_wall() -> str:
    """Now as naive UTC wall-clock time (what a TIMESTAMP column should hold)."""
    return datetime.now(UTC).replace(tzinfo=None).isoformat()


def dt(value: datetime | None) -> dict[str, object] | None:
    if value is None:
        return None
    offset = value.utcoffset()
    return {"iso": value.isoformat(), "offset": None if offset is None else offset.total_seconds()}


def write() -> dict[str, object]:
    out: dict[str, object] = {
        "local_offset": time.localtime().tm_gmtoff,
        "plain_duckdb_zone": duckdb.connect().execute("SELECT current_setting('TimeZone')").fetchone()[0],
    }
    conn = get_system_db()
    out["conn_zone"] = conn.execute("SELECT current_setting('TimeZone')").fetchone()[0]
    out["cursor_zone"] = conn.cursor().execute("SELECT current_setting('TimeZone')").fetchone()[0]
    analytics = get_analytics_db()
    out["analytics_zone"] = analytics.execute("SELECT current_setting('TimeZone')").fetchone()[0]
    analytics.close()

    # The seed's raw insert: created_at comes from the current_timestamp default.
    out["before"] = utc_wall()
    conn.execute(
        "INSERT INTO users (id, email, name, role) VALUES ('u1', 'test@test.com', 'Test', 'analyst')"
    )
    KnowledgeRepository(conn).create("k1", "title", "content", "c")
    PendingCodeRepository(conn).create_code("FRESH", chat_id=1)
    out["after"] = utc_wall()
    out["raw_user_created"] = (
        conn.execute("SELECT created_at FROM users WHERE id = 'u1'").fetchone()[0].isoformat()
    )
    out["raw_item_created"] = conn.execute("SELECT created_at FROM knowledge_items").fetchone()[0].isoformat()
    out["raw_code_created"] = conn.execute("SELECT created_at FROM pending_codes").fetchone()[0].isoformat()
    out["raw_schema_applied"] = [
        r[0].isoformat()
        for r in conn.execute("SELECT applied_at FROM schema_version ORDER BY version").fetchall()
    ]
    out["repo_user_created"] = dt(UserRepository(conn).get_by_id("u1")["created_at"])

    sync = SyncStateRepository(conn)
    sync.update_sync("aware", rows=1, file_size_bytes=1, hash="h", synced_at=INSTANT)
    sync.update_sync("naive", rows=1, file_size_bytes=1, hash="h", synced_at=datetime(2024, 1, 1, 0, 0))
    out["raw_aware"] = (
        conn.execute("SELECT last_sync FROM sync_state WHERE table_id = 'aware'").fetchone()[0].isoformat()
    )
    out["raw_naive"] = (
        conn.execute("SELECT last_sync FROM sync_state WHERE table_id = 'naive'").fetchone()[0].isoformat()
    )
    out["repo_aware"] = dt(sync.get_last_sync("aware"))
    out["repo_history"] = dt(sync.get_sync_history("aware")[0]["synced_at"])

    audit = AuditRepository(conn)
    for hour in (8, 9, 10):  # Tokyo hours: 23:00, 00:00, 01:00 UTC
        audit.log(action="tick", resource=str(hour), timestamp=INSTANT.replace(hour=hour))
    out["audit_since_until"] = [
        e["resource"] for e in audit.query(since=INSTANT, until=INSTANT + timedelta(hours=1))
    ]
    out["audit_since_utc"] = [
        e["resource"] for e in audit.query(since=datetime(2024, 1, 1, 0, 0, tzinfo=UTC))
    ]

    codes = PendingCodeRepository(conn)
    codes.create_code("STALE", chat_id=2, created_at=datetime.now(TOKYO) - timedelta(minutes=11))
    out["fresh_code"] = codes.verify_code("FRESH")
    out["stale_code"] = codes.verify_code("STALE")
    if out["fresh_code"]:
        out["fresh_code"] = dict(out["fresh_code"], created_at=dt(out["fresh_code"]["created_at"]))

    out["gateway_now"] = dt(Gateway(conn).fetch_value("SELECT current_timestamp"))
    conn.close()

    db = Database(system_db_path(), idle_release=None)
    with db.session() as cursor:
        out["database_zone"] = cursor.execute("SELECT current_setting('TimeZone')").fetchone()[0]
    db.close()

    # A connection opened without mcp_state (session zone = the OS zone): the repositories
    # still write UTC, because they never rely on the session zone for their own values.
    plain = duckdb.connect(str(system_db_path()))
    out["plain_zone"] = plain.execute("SELECT current_setting('TimeZone')").fetchone()[0]
    out["plain_before"] = utc_wall()
    SyncStateRepository(plain).update_sync("plain", rows=1, file_size_bytes=1, hash="h", synced_at=INSTANT)
    KnowledgeRepository(plain).create("k2", "title", "content", "c")
    out["plain_after"] = utc_wall()
    out["plain_raw_aware"] = (
        plain.execute("SELECT last_sync FROM sync_state WHERE table_id = 'plain'").fetchone()[0].isoformat()
    )
    out["plain_raw_created"] = (
        plain.execute("SELECT created_at FROM knowledge_items WHERE id = 'k2'").fetchone()[0].isoformat()
    )
    out["plain_repo_aware"] = dt(SyncStateRepository(plain).get_last_sync("plain"))
    plain.close()
    return out


def read() -> dict[str, object]:
    conn = get_system_db()
    sync = SyncStateRepository(conn)
    out = {
        "local_offset": time.localtime().tm_gmtoff,
        "repo_aware": dt(sync.get_last_sync("aware")),
        "repo_naive": dt(sync.get_last_sync("naive")),
        "repo_user_created": dt(UserRepository(conn).get_by_id("u1")["created_at"]),
        "audit": [dt(e["timestamp"]) for e in AuditRepository(conn).query(action="tick")],
    }
    conn.close()
    return out


if __name__ == "__main__":
    print(json.dumps(write() if sys.argv[1] == "write" else read()))
