"""What the seed left out or got wrong, repository by repository.

Total ordering, literal search, one-time codes with a TTL, the append-only audit log and
its filters, knowledge update/delete, script runs, profile delete, sync settings and
dataset permissions.
"""

from __future__ import annotations

import ast
import inspect
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import mcp_state
from mcp_state.db import Database, connect
from mcp_state.errors import InvalidArgumentError, NotFoundError
from mcp_state.gateway import utc_now
from mcp_state.repositories import (
    AuditRepository,
    DatasetPermissionRepository,
    KnowledgeRepository,
    PendingCodeRepository,
    ProfileRepository,
    ScriptRepository,
    SyncSettingsRepository,
    SyncStateRepository,
)
from mcp_state.repositories.base import Repository

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["connection", "database", "postgres"])
def src(request):
    """A DuckDB connection, a DuckDB Database, or a PostgreSQL Database (each test runs on each)."""
    if request.param == "postgres":
        source = Database(request.getfixturevalue("pg_state_url"))
    else:
        source = connect(":memory:") if request.param == "connection" else Database(":memory:")
    yield source
    source.close()


def raw_rows(src: Any, sql: str) -> list[tuple]:
    if isinstance(src, Database):
        with src.session() as cursor:
            return cursor.execute(sql).fetchall()
    return src.execute(sql).fetchall()


# -- total ordering ----------------------------------------------------------------------------
def test_two_syncs_with_the_same_timestamp_are_newest_first(src):
    sync = SyncStateRepository(src)
    sync.update_sync("orders", rows=100, file_size_bytes=1, hash="h1", synced_at=T0)
    sync.update_sync("orders", rows=200, file_size_bytes=1, hash="h2", synced_at=T0)
    history = sync.get_sync_history("orders")
    assert [h["rows"] for h in history] == [200, 100]
    assert sync.get_table_state("orders")["rows"] == 200


def test_many_syncs_in_one_microsecond_keep_insertion_order_across_pages(src):
    sync = SyncStateRepository(src)
    for n in range(25):
        sync.update_sync("orders", rows=n, file_size_bytes=1, hash=str(n), synced_at=T0)
    sync.update_sync("orders", rows=999, file_size_bytes=1, hash="old", synced_at=T0 - timedelta(hours=1))
    pages = [sync.get_sync_history("orders", limit=7, offset=o) for o in range(0, 28, 7)]
    # Commit order, not the clock: the run stamped an hour earlier was committed last.
    assert [h["rows"] for page in pages for h in page] == [999, *range(24, -1, -1)]
    assert sync.get_last_sync("orders") == T0  # and last_sync did not go back


def test_audit_entries_with_equal_timestamps_are_newest_first_across_pages(src):
    audit = AuditRepository(src)
    for n in range(12):
        audit.log(action="tick", resource=str(n), timestamp=T0)
    audit.log(action="tick", resource="later", timestamp=T0 + timedelta(microseconds=1))
    pages = [audit.query(limit=5, offset=o) for o in (0, 5, 10)]
    assert [e["resource"] for page in pages for e in page] == ["later", *map(str, range(11, -1, -1))]


def test_knowledge_listing_is_total_when_timestamps_tie(src):
    k = KnowledgeRepository(src)
    for item_id in ("b", "c", "a"):
        k.create(item_id, item_id, "c", "cat", created_at=T0)
    k.create("z", "z", "c", "cat", created_at=T0 - timedelta(seconds=1))
    first = [i["id"] for i in k.list_items()]
    assert first == ["z", "a", "c", "b"]  # commit order, whatever the stamps say
    assert [i["id"] for i in k.list_items(limit=2)] + [
        i["id"] for i in k.list_items(limit=2, offset=2)
    ] == first


# -- search --------------------------------------------------------------------------------------
SEARCH_ITEMS = {
    "pct": ("Growth 100% YoY", "plain"),
    "num": ("Growth 1000 YoY", "plain"),
    "under": ("snake_case names", "plain"),
    "nounder": ("snakeXcase names", "plain"),
    "slash": ("path C:\\temp", "plain"),
    "noslash": ("path C:temp", "plain"),
    "content": ("plain", "50% of the revenue"),
}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("%", {"pct", "content"}),
        ("100%", {"pct"}),
        ("0%", {"pct", "content"}),
        ("_", {"under"}),
        ("e_c", {"under"}),
        ("\\", {"slash"}),
        ("C:\\t", {"slash"}),
        ("\\%", set()),
        ("GROWTH", {"pct", "num"}),
        ("Revenue", {"content"}),
    ],
)
def test_search_treats_wildcards_and_backslash_literally(src, query, expected):
    k = KnowledgeRepository(src)
    for item_id, (title, content) in SEARCH_ITEMS.items():
        k.create(item_id, title, content, "cat")
    assert {i["id"] for i in k.search(query)} == expected


def test_search_can_filter_by_status_and_page(src):
    k = KnowledgeRepository(src)
    for n in range(5):
        k.create(
            f"k{n}",
            f"metric {n}",
            "c",
            "cat",
            status="approved" if n % 2 else "pending",
            created_at=T0 + timedelta(seconds=n),
        )
    assert [i["id"] for i in k.search("metric", statuses=["approved"])] == ["k3", "k1"]
    assert [i["id"] for i in k.search("metric", limit=2, offset=1)] == ["k3", "k2"]
    with pytest.raises(InvalidArgumentError):
        k.search("")


# -- one-time codes ------------------------------------------------------------------------------
def test_a_code_is_good_once(src):
    codes = PendingCodeRepository(src)
    codes.create_code("ABC123", chat_id=12345)
    got = codes.verify_code("ABC123")
    assert got["chat_id"] == 12345 and got["created_at"].tzinfo is not None
    assert "code" not in got  # the secret is not handed back
    assert codes.verify_code("ABC123") is None


def test_codes_expire_after_ten_minutes_by_default(src):
    codes = PendingCodeRepository(src)
    assert codes.ttl == timedelta(minutes=10)
    now = utc_now()
    codes.create_code("YOUNG", chat_id=1, created_at=now - timedelta(minutes=9, seconds=50))
    codes.create_code("OLD", chat_id=2, created_at=now - timedelta(minutes=10, seconds=10))
    assert codes.verify_code("YOUNG")["chat_id"] == 1
    assert codes.verify_code("OLD") is None
    assert codes.count() == 0  # an expired code is used up too


@pytest.mark.parametrize("ttl", [timedelta(seconds=30), 30, 30.0])
def test_the_code_ttl_is_configurable(src, ttl):
    codes = PendingCodeRepository(src, ttl=ttl)
    now = utc_now()
    codes.create_code("A", chat_id=1, created_at=now - timedelta(seconds=20))
    codes.create_code("B", chat_id=2, created_at=now - timedelta(seconds=40))
    assert codes.verify_code("A")["chat_id"] == 1
    assert codes.verify_code("B") is None
    longer = PendingCodeRepository(src, ttl=timedelta(hours=1))
    longer.create_code("C", chat_id=3, created_at=now - timedelta(minutes=30))
    assert longer.verify_code("C")["chat_id"] == 3


def test_expired_codes_can_be_purged(src):
    codes = PendingCodeRepository(src)
    codes.create_code("NEW", chat_id=1)
    codes.create_code("OLD", chat_id=2, created_at=utc_now() - timedelta(hours=1))
    assert codes.purge_expired() == 1
    assert codes.count() == 1 and codes.verify_code("NEW")["chat_id"] == 1


# -- the audit log -------------------------------------------------------------------------------
PACKAGE = Path(mcp_state.__file__).parent
MUTATING_AUDIT_SQL = re.compile(
    r"\b(UPDATE\s+(main\.)?audit_log|DELETE\s+FROM\s+(main\.)?audit_log|TRUNCATE\s+(TABLE\s+)?(main\.)?audit_log"
    r"|DROP\s+TABLE\s+(IF\s+EXISTS\s+)?(main\.)?audit_log|INSERT\s+OR\s+REPLACE\s+INTO\s+(main\.)?audit_log)",
    re.IGNORECASE,
)


def _string_constants(path: Path) -> list[str]:
    return [
        n.value
        for n in ast.walk(ast.parse(path.read_text()))
        if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]


def test_no_repository_sql_changes_or_removes_audit_rows():
    scanned = [*sorted((PACKAGE / "repositories").rglob("*.py")), PACKAGE / "gateway.py", PACKAGE / "db.py"]
    offenders = [
        f"{path.name}: {s.strip()[:60]}"
        for path in scanned
        for s in _string_constants(path)
        if MUTATING_AUDIT_SQL.search(s)
    ]
    assert offenders == []
    # The scan does find such statements when they are there.
    assert MUTATING_AUDIT_SQL.search("DELETE FROM audit_log WHERE id = ?")
    assert MUTATING_AUDIT_SQL.search("update AUDIT_LOG set result = 'x'")


def test_the_audit_repository_only_appends_and_reads():
    public = {
        name
        for name, _ in inspect.getmembers(AuditRepository, inspect.isfunction)
        if not name.startswith("_")
    }
    assert public == {"log", "get", "query", "count", "key_of"}  # key_of: a row's sort key, pure
    audit_sql = " ".join(_string_constants(PACKAGE / "repositories" / "audit.py"))
    assert "INSERT INTO audit_log" in audit_sql
    assert not re.search(r"ON\s+CONFLICT", audit_sql, re.IGNORECASE)
    # No other repository is pointed at the audit table (their shared helpers would write it).
    others = [cls for cls in _repository_classes() if cls is not AuditRepository]
    assert others and all(cls.table != "audit_log" for cls in others)


def _repository_classes() -> list[type[Repository]]:
    import mcp_state.repositories as repos

    return [obj for obj in vars(repos).values() if inspect.isclass(obj) and issubclass(obj, Repository)]


def test_inherited_write_helpers_cannot_touch_the_audit_log(src):
    audit = AuditRepository(src)
    entry = audit.log(action="a", resource="r")
    before = audit.get(entry)
    with pytest.raises(InvalidArgumentError, match="append-only"):
        audit._delete(entry)
    with pytest.raises(InvalidArgumentError, match="append-only"):
        audit._upsert({"id": entry, "action": "rewritten"})
    assert audit.get(entry) == before


def test_logging_always_appends(src):
    audit = AuditRepository(src)
    ids = [
        audit.log(user_id="u1", action="same", resource="r", params={"a": 1}, timestamp=T0) for _ in range(3)
    ]
    assert len(set(ids)) == 3
    assert audit.count(action="same") == 3
    snapshot = raw_rows(src, "SELECT * FROM audit_log ORDER BY seq")
    # Every read leaves the rows exactly as they were.
    audit.query(limit=None)
    audit.query(user_id="u1", action="same", resource="r", since=T0, until=T0 + timedelta(1), offset=1)
    audit.count(resource="r")
    [audit.get(i) for i in ids]
    assert raw_rows(src, "SELECT * FROM audit_log ORDER BY seq") == snapshot


def test_audit_filters_by_resource_user_action_and_result(src):
    audit = AuditRepository(src)
    audit.log(user_id="u1", action="sync_trigger", resource="orders", result="ok")
    audit.log(user_id="u2", action="sync_trigger", resource="customers", result="error")
    audit.log(user_id="u1", action="login")
    assert [e["user_id"] for e in audit.query(resource="customers")] == ["u2"]
    assert [e["resource"] for e in audit.query(user_id="u1", action="sync_trigger")] == ["orders"]
    assert [e["resource"] for e in audit.query(result="error")] == ["customers"]
    assert audit.count(resource="orders") == 1 and audit.count(user_id="u1") == 2


def test_audit_time_range_is_half_open_and_converts_zones(src):
    audit = AuditRepository(src)
    for minutes in range(0, 50, 10):  # 12:00, 12:10, ... 12:40
        audit.log(action="tick", resource=f"m{minutes}", timestamp=T0 + timedelta(minutes=minutes))
    got = audit.query(since=T0 + timedelta(minutes=10), until=T0 + timedelta(minutes=30))
    assert [e["resource"] for e in got] == ["m20", "m10"]  # since inclusive, until exclusive
    assert [e["resource"] for e in audit.query(since=T0 + timedelta(minutes=35))] == ["m40"]
    assert [e["resource"] for e in audit.query(until=T0 + timedelta(minutes=5))] == ["m0"]
    east = datetime(2024, 5, 1, 14, 20, tzinfo=UTC).astimezone(
        __import__("zoneinfo").ZoneInfo("Europe/Prague")
    )
    assert [e["resource"] for e in audit.query(until=east)] != []  # an aware bound in another zone
    assert audit.count(since=T0 + timedelta(minutes=10), until=T0 + timedelta(minutes=30)) == 2
    with pytest.raises(InvalidArgumentError):
        audit.query(since=T0 + timedelta(hours=1), until=T0)


def test_audit_offset_paging_covers_every_entry_once(src):
    audit = AuditRepository(src)
    for n in range(17):
        audit.log(action="page", resource=str(n), timestamp=T0 + timedelta(seconds=n % 4))
    everything = [e["id"] for e in audit.query(limit=None)]
    paged = [e["id"] for offset in range(0, 20, 5) for e in audit.query(limit=5, offset=offset)]
    assert paged == everything and len(set(paged)) == 17
    assert audit.query(limit=5, offset=17) == []


# -- knowledge: update and delete ---------------------------------------------------------------
def test_knowledge_update_changes_only_the_given_fields(src):
    k = KnowledgeRepository(src)
    created = k.create("k1", "Old", "old content", "metrics", source_user="u1", tags=["a"], created_at=T0)
    updated = k.update("k1", title="New", tags=["b", "c"], audience="analysts")
    assert updated["title"] == "New" and updated["tags"] == ["b", "c"] and updated["audience"] == "analysts"
    assert updated["content"] == "old content" and updated["category"] == "metrics"
    assert updated["source_user"] == "u1" and updated["status"] == "pending"
    assert updated["created_at"] == created["created_at"] == T0
    assert updated["updated_at"] > T0
    again = k.update("k1", content="new content", category="finance")
    assert (again["content"], again["category"], again["title"]) == ("new content", "finance", "New")
    assert k.update("k1") == k.get_by_id("k1")  # nothing given: nothing changes
    assert k.get_by_id("k1") == again
    with pytest.raises(InvalidArgumentError):
        k.update("k1", title="")
    with pytest.raises(InvalidArgumentError):
        k.update("k1", tags="not-a-list")


def test_knowledge_delete_takes_its_votes_and_only_its_votes(src):
    k = KnowledgeRepository(src)
    k.create("k1", "A", "a", "c")
    k.create("k2", "B", "b", "c")
    k.vote("k1", "u1", 1)
    k.vote("k1", "u2", -1)
    k.vote("k2", "u1", 1)
    k.delete("k1")
    assert k.get_by_id("k1") is None
    assert k.get_votes("k1") == {"upvotes": 0, "downvotes": 0}
    assert raw_rows(src, "SELECT item_id, user_id FROM knowledge_votes") == [("k2", "u1")]
    assert k.get_votes("k2") == {"upvotes": 1, "downvotes": 0}
    with pytest.raises(NotFoundError):
        k.delete("k1")


# -- scripts ---------------------------------------------------------------------------------------
def test_record_run_sets_last_run_and_status_and_survives_a_redeploy(src):
    scripts = ScriptRepository(src)
    deployed = scripts.deploy("s1", name="alert", owner="u1", schedule="0 8 * * MON", source="print(1)")
    assert deployed["last_run"] is None and deployed["last_status"] is None
    ran = scripts.record_run("s1", "ok", ran_at=T0)
    assert ran["last_run"] == T0 and ran["last_status"] == "ok"
    now = scripts.record_run("s1", "error")
    assert now["last_status"] == "error" and abs(now["last_run"] - utc_now()) < timedelta(minutes=1)
    redeployed = scripts.deploy("s1", name="alert v2", source="print(2)")
    assert redeployed["last_status"] == "error" and redeployed["owner"] == "u1"


# -- profiles ----------------------------------------------------------------------------------------
def test_profile_delete(src):
    profiles = ProfileRepository(src)
    profiles.save("t1", {"row_count": 1})
    profiles.save("t2", {"row_count": 2})
    profiles.delete("t1")
    assert profiles.get("t1") is None
    assert set(profiles.get_all()) == {"t2"}
    with pytest.raises(NotFoundError):
        profiles.delete("t1")


# -- sync settings -----------------------------------------------------------------------------------
def test_sync_settings_set_get_list_delete(src):
    settings = SyncSettingsRepository(src)
    assert settings.get("petr") == []
    settings.set("petr", "sales", True)
    settings.set("petr", "support", False, table_mode="selected", tables=["tickets"])
    settings.set("anna", "sales", True, updated_at=T0)
    assert [(s["dataset"], s["enabled"], s["table_mode"], s["tables"]) for s in settings.get("petr")] == [
        ("sales", True, "all", None),
        ("support", False, "selected", ["tickets"]),
    ]
    assert settings.get_one("anna", "sales")["updated_at"] == T0
    assert [s["user_id"] for s in settings.list_all(dataset="sales")] == ["anna", "petr"]
    assert settings.count() == 3 and settings.count(dataset="support") == 1

    replaced = settings.set("petr", "support", True, table_mode="all")  # replaces the whole setting
    assert (replaced["enabled"], replaced["table_mode"], replaced["tables"]) == (True, "all", None)
    assert settings.count() == 3

    settings.delete("petr", "support")
    assert settings.get_one("petr", "support") is None and settings.count() == 2
    assert settings.delete("petr") == 1  # all of a user's settings
    assert settings.get("petr") == [] and settings.count() == 1


# -- dataset permissions -------------------------------------------------------------------------------
def test_permissions_grant_revoke_list_and_check(src):
    perms = DatasetPermissionRepository(src)
    assert perms.grant("u1", "sales")["access"] == "read"
    perms.grant("u1", "finance", "admin")
    perms.grant("u2", "sales", "write")
    assert [(p["dataset"], p["access"]) for p in perms.list_for_user("u1")] == [
        ("finance", "admin"),
        ("sales", "read"),
    ]
    assert [(p["user_id"], p["access"]) for p in perms.list_for_dataset("sales")] == [
        ("u1", "read"),
        ("u2", "write"),
    ]
    assert perms.count() == 3 and perms.count(user_id="u1") == 2 and perms.count(dataset="sales") == 2
    assert len(perms.list_all(limit=2)) == 2

    levels = {"read": 0, "write": 1, "admin": 2}
    for user, dataset, has in (("u1", "sales", "read"), ("u2", "sales", "write"), ("u1", "finance", "admin")):
        for wanted, rank in levels.items():
            assert perms.has_access(user, dataset, wanted) is (rank <= levels[has]), (user, dataset, wanted)
    assert perms.has_access("u2", "finance") is False

    assert perms.grant("u1", "sales", "write")["access"] == "write"  # a re-grant replaces the level
    assert perms.count() == 3 and perms.has_access("u1", "sales", "write")
    perms.revoke("u1", "sales")
    assert perms.get("u1", "sales") is None and not perms.has_access("u1", "sales")
    assert perms.has_access("u2", "sales", "write")
