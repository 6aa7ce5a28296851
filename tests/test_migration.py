"""Migration of the legacy JSON files: the seed plan's two tests, then every file kind,
values kept as the files have them, idempotency by full comparison, updates, dry runs."""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from migration_support import FIXTURE, append_lines, dump, edit_json, legacy_copy

from mcp_state.db import connect
from mcp_state.legacy import KIND_NAMES, migrate, migrate_all
from mcp_state.repositories import (
    AuditRepository,
    DatasetPermissionRepository,
    KnowledgeRepository,
    PendingCodeRepository,
    ProfileRepository,
    ScriptRepository,
    SyncSettingsRepository,
    SyncStateRepository,
    TableRegistryRepository,
    TelegramRepository,
    UserRepository,
)


# -- the seed plan's tests (Task 8), ported --------------------------------------------------
@pytest.fixture
def migration_env():
    """Create temp dir with sample JSON files mimicking production layout."""
    with tempfile.TemporaryDirectory() as tmpdir:
        data_dir = os.path.join(tmpdir, "data")
        os.makedirs(os.path.join(data_dir, "notifications"), exist_ok=True)
        os.makedirs(os.path.join(data_dir, "corporate-memory"), exist_ok=True)
        os.makedirs(os.path.join(data_dir, "auth"), exist_ok=True)
        os.makedirs(os.path.join(data_dir, "src_data", "metadata"), exist_ok=True)

        # sync_state.json
        with open(os.path.join(data_dir, "src_data", "metadata", "sync_state.json"), "w") as f:
            json.dump(
                {
                    "tables": {
                        "orders": {"last_sync": "2026-03-27T08:00:00Z", "rows": 1000, "file_size_bytes": 5000}
                    }
                },
                f,
            )

        # sync_settings.json
        with open(os.path.join(data_dir, "notifications", "sync_settings.json"), "w") as f:
            json.dump(
                {"petr": {"datasets": {"sales": True, "support": False}, "updated_at": "2026-03-27"}}, f
            )

        # knowledge.json
        with open(os.path.join(data_dir, "corporate-memory", "knowledge.json"), "w") as f:
            json.dump(
                [
                    {
                        "id": "k1",
                        "title": "MRR",
                        "content": "Monthly...",
                        "category": "metrics",
                        "status": "approved",
                        "contributors": ["petr"],
                    }
                ],
                f,
            )

        # telegram_users.json
        with open(os.path.join(data_dir, "notifications", "telegram_users.json"), "w") as f:
            json.dump({"petr@acme.com": {"chat_id": 12345, "linked_at": "2026-01-01"}}, f)

        os.environ["DATA_DIR"] = data_dir
        yield data_dir


def test_migration_runs_without_error(migration_env):
    from mcp_state.legacy import migrate_all

    stats = migrate_all(migration_env)
    assert stats["sync_state"] == 1
    assert stats["knowledge"] == 1
    assert stats["telegram"] == 1


def test_migration_is_idempotent(migration_env):
    from mcp_state.legacy import migrate_all

    stats1 = migrate_all(migration_env)
    stats2 = migrate_all(migration_env)
    assert stats1["sync_state"] == stats2["sync_state"]


# -- every file kind, values as the files have them ---------------------------------------------
SAMPLE_COUNTS = {
    "sync_state": 3,
    "sync_history": 3,
    "sync_settings": 3,
    "knowledge": 2,
    "votes": 3,
    "telegram": 1,
    "pending_codes": 1,
    "scripts": 1,
    "table_registry": 2,
    "profiles": 1,
    "users": 2,
    "permissions": 3,
    "audit": 3,
}


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.fixture
def sample_db(tmp_path):
    """The legacy fixture migrated into DATA_DIR's system database (the seed's convention)."""
    data = legacy_copy(tmp_path)
    counts = migrate_all(data)
    assert counts == SAMPLE_COUNTS
    conn = connect(data / "state" / "system.duckdb")
    yield data, conn
    conn.close()


def test_counts_are_keyed_by_every_kind_of_the_layout():
    assert set(SAMPLE_COUNTS) == set(KIND_NAMES)


def test_the_fixture_is_the_sample_shipped_for_the_demo():
    packaged = Path(__file__).resolve().parent.parent / "mcp_state" / "sample_data"
    files = sorted(p.relative_to(FIXTURE) for p in FIXTURE.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(packaged) for p in packaged.rglob("*") if p.is_file())
    assert all((FIXTURE / f).read_bytes() == (packaged / f).read_bytes() for f in files)


def test_sync_state_and_history_keep_file_values(sample_db):
    _, conn = sample_db
    repo = SyncStateRepository(conn)
    orders = repo.get_table_state("orders")
    assert orders == {
        "table_id": "orders",
        "last_sync": utc(2026, 3, 27, 8),
        "rows": 1000,
        "file_size_bytes": 5000,
        "uncompressed_size_bytes": 21000,
        "columns": 12,
        "hash": "a1b2c3",
        "status": "ok",
        "error": None,
    }
    customers = repo.get_table_state("customers")
    assert customers["last_sync"] == utc(2026, 3, 27, 6, 5, 10)  # +02:00 in the file
    assert customers["status"] == "ok" and customers["uncompressed_size_bytes"] is None
    invoices = repo.get_table_state("invoices")
    assert (invoices["status"], invoices["error"]) == ("error", "Connection timeout")
    history = repo.get_sync_history("orders")
    assert [(h["synced_at"], h["rows"], h["duration_ms"]) for h in history] == [
        (utc(2026, 3, 27, 8), 1000, 1100),
        (utc(2026, 3, 26, 8), 990, 1200),
    ]
    assert all(h["id"].startswith("h-") for h in history)
    seqs = [row[0] for row in conn.execute("SELECT seq FROM sync_history ORDER BY seq").fetchall()]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3


def test_settings_knowledge_and_votes_keep_file_values(sample_db):
    _, conn = sample_db
    settings = {(s["user_id"], s["dataset"]): s for s in SyncSettingsRepository(conn).list_all()}
    assert settings[("petr@acme.com", "sales")]["enabled"] is True
    assert settings[("petr@acme.com", "support")]["enabled"] is False
    assert settings[("petr@acme.com", "support")]["updated_at"] == utc(2026, 3, 27)  # a bare date
    jana = settings[("jana@acme.com", "sales")]
    assert (jana["table_mode"], jana["tables"], jana["updated_at"]) == (
        "selected",
        ["orders"],
        utc(2026, 3, 20, 10),
    )
    knowledge = KnowledgeRepository(conn)
    k1 = knowledge.get_by_id("k1")
    assert k1 == {
        "id": "k1",
        "title": "MRR",
        "content": "Monthly recurring revenue: sum of active subscription fees.",
        "category": "metrics",
        "tags": ["revenue", "saas"],
        "status": "approved",
        "contributors": ["petr@acme.com"],
        "source_user": "petr@acme.com",
        "audience": "all",
        "created_at": utc(2026, 2, 2, 10),
        "updated_at": utc(2026, 2, 3, 10),
    }
    k2 = knowledge.get_by_id("k2")
    assert (k2["status"], k2["tags"], k2["created_at"], k2["updated_at"]) == ("pending", None, None, None)
    assert knowledge.get_votes("k1") == {"upvotes": 2, "downvotes": 0}
    assert knowledge.get_votes("k2") == {"upvotes": 0, "downvotes": 1}
    assert {v["voted_at"] for v in knowledge.list_votes("k1")} == {None}  # not in the layout: never "now"


def test_notifications_registry_and_profiles_keep_file_values(sample_db):
    _, conn = sample_db
    assert TelegramRepository(conn).get_link("petr@acme.com") == {
        "user_id": "petr@acme.com",
        "chat_id": 12345,
        "linked_at": utc(2026, 1, 1),
    }
    assert conn.execute("SELECT code, chat_id, created_at FROM pending_codes").fetchall() == [
        ("K7Q2ZP", 67890, datetime(2026, 3, 27, 7, 55))
    ]
    assert PendingCodeRepository(conn).count() == 1
    assert ScriptRepository(conn).get("sales_alert") == {
        "id": "sales_alert",
        "name": "Sales alert",
        "owner": "petr@acme.com",
        "schedule": "0 8 * * MON",
        "source": "print('weekly sales')",
        "deployed_at": utc(2026, 2, 1, 12),
        "last_run": utc(2026, 3, 23, 8, 0, 3),
        "last_status": "ok",
    }
    registry = TableRegistryRepository(conn)
    assert registry.get("orders")["registered_at"] == utc(2026, 1, 10, 9)
    assert (
        registry.get("customers")["registered_by"] is None
        and registry.get("customers")["registered_at"] is None
    )
    profile = ProfileRepository(conn).get_record("orders")
    assert profile["profiled_at"] == utc(2026, 3, 27, 8, 10)
    assert profile["profile"] == {
        "row_count": 1000,
        "columns": [
            {"name": "order_id", "type": "BIGINT", "null_pct": 0.0},
            {"name": "amount", "type": "DECIMAL(10,2)", "null_pct": 0.5},
        ],
    }


def test_users_permissions_and_audit_keep_file_values(sample_db):
    _, conn = sample_db
    users = UserRepository(conn)
    petr = users.get_by_email("petr@acme.com")
    assert (petr["id"], petr["role"], petr["created_at"]) == ("u-petr", "admin", utc(2026, 1, 1))
    assert petr["password_hash"] == "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$ZmFrZWhhc2g"  # as it is
    jana = users.get_by_email("jana@acme.com")
    assert (jana["id"], jana["role"], jana["created_at"], jana["updated_at"]) == (
        "jana@acme.com",
        "analyst",
        None,
        None,
    )  # the id defaults to the email
    assert (jana["setup_token"], jana["setup_token_created"]) == ("st-0f3a9c", utc(2026, 3, 20, 10))
    permissions = DatasetPermissionRepository(conn)
    assert permissions.has_access("u-petr", "sales", "admin")
    assert permissions.get("jana@acme.com", "sales")["access"] == "read"
    audit = AuditRepository(conn).query(limit=10)
    assert [(a["id"], a["action"], a["timestamp"]) for a in audit] == [
        ("a3", "knowledge_create", utc(2026, 3, 27, 9)),
        ("a2", "sync_trigger", utc(2026, 3, 27, 8)),
        ("a1", "login", utc(2026, 3, 27, 7)),
    ]
    assert audit[1]["params"] == {"force": True} and audit[0]["params"] is None


def test_timestamps_with_offsets_naive_or_bare_dates_are_stored_as_utc(tmp_path):
    data = tmp_path / "data"
    (data / "notifications").mkdir(parents=True)
    (data / "notifications" / "telegram_users.json").write_text(
        json.dumps(
            {
                "offset": {"chat_id": 1, "linked_at": "2026-03-27T10:30:00+02:00"},
                "west": {"chat_id": 2, "linked_at": "2026-03-27T01:00:00-05:00"},
                "naive": {"chat_id": 3, "linked_at": "2026-03-27T10:30:00"},
                "zulu": {"chat_id": 4, "linked_at": "2026-03-27T10:30:00.250000Z"},
                "date": {"chat_id": 5, "linked_at": "2026-03-27"},
                "missing": {"chat_id": 6},
            }
        )
    )
    migrate_all(data)
    conn = connect(data / "state" / "system.duckdb")
    links = {link["user_id"]: link["linked_at"] for link in TelegramRepository(conn).get_all_links()}
    conn.close()
    assert links == {
        "offset": utc(2026, 3, 27, 8, 30),
        "west": utc(2026, 3, 27, 6),
        "naive": utc(2026, 3, 27, 10, 30),
        "zulu": datetime(2026, 3, 27, 10, 30, 0, 250000, tzinfo=UTC),
        "date": utc(2026, 3, 27),
        "missing": None,  # never "now"
    }


# -- idempotent for real ------------------------------------------------------------------------
def test_a_second_run_changes_nothing_at_all(tmp_path):
    data = legacy_copy(tmp_path)
    db = data / "state" / "system.duckdb"
    migrate_all(data)
    before = dump(db)
    report = migrate(data)
    assert dump(db) == before  # every column of every row, seq and timestamps included
    assert report.written == 0
    assert all(k.unchanged == SAMPLE_COUNTS[k.kind] and k.db_only == 0 for k in report.kinds)


def test_history_and_audit_without_ids_get_stable_ids_and_exact_repeats_are_kept(tmp_path):
    data = legacy_copy(tmp_path)
    repeat = {"table_id": "orders", "synced_at": "2026-03-28T08:00:00Z", "rows": 5, "status": "ok"}
    edit_json(
        data / "src_data/metadata/sync_state.json", lambda d: d["history"].extend([repeat, dict(repeat)])
    )
    line = '{"timestamp": "2026-03-28T09:00:00Z", "user_id": "u-petr", "action": "login"}'
    append_lines(data / "audit/audit.jsonl", line, line)
    db = data / "state" / "system.duckdb"
    migrate_all(data)
    first = dump(db)
    migrate_all(data)
    assert dump(db) == first
    conn = connect(db)
    history = conn.execute(
        "SELECT id, seq FROM sync_history WHERE synced_at = '2026-03-28 08:00:00' ORDER BY seq"
    ).fetchall()
    logins = conn.execute(
        "SELECT id, seq FROM audit_log WHERE timestamp = '2026-03-28 09:00:00' ORDER BY seq"
    ).fetchall()
    conn.close()
    assert len(history) == 2 and history[1][0] == history[0][0] + "-2" and history[0][0].startswith("h-")
    assert len(logins) == 2 and logins[1][0] == logins[0][0] + "-2" and logins[0][0].startswith("a-")


def test_entries_with_one_timestamp_keep_their_file_order(tmp_path):
    data = legacy_copy(tmp_path)
    lines = [
        json.dumps({"id": f"t{i}", "timestamp": "2026-03-28T12:00:00Z", "action": "tick"}) for i in (3, 1, 2)
    ]
    append_lines(data / "audit/audit.jsonl", *lines)
    migrate_all(data)
    conn = connect(data / "state" / "system.duckdb")
    newest_first = [e["id"] for e in AuditRepository(conn).query(action="tick")]
    conn.close()
    assert newest_first == ["t2", "t1", "t3"]  # ties broken by seq: the last line is the newest


def test_changed_files_bring_the_database_up_to_date(tmp_path):
    data = legacy_copy(tmp_path)
    db = data / "state" / "system.duckdb"
    migrate_all(data)
    conn = connect(db)
    old_audit = dict(conn.execute("SELECT id, seq FROM audit_log").fetchall())
    UserRepository(conn).create("u-new", "new@acme.com", "Created by the server")
    conn.close()

    def users(doc):
        doc["petr@acme.com"]["role"] = "viewer"
        doc["eva@acme.com"] = {"name": "Eva", "role": "analyst", "created_at": "2026-03-28"}

    edit_json(data / "auth/users.json", users)
    edit_json(data / "corporate-memory/votes.json", lambda d: d["k1"].update({"jana@acme.com": -1}))
    edit_json(data / "corporate-memory/knowledge.json", lambda d: d.pop())  # k2 left the file
    append_lines(
        data / "audit/audit.jsonl", '{"id": "a4", "timestamp": "2026-03-27T06:00:00Z", "action": "logout"}'
    )
    report = {k.kind: k for k in migrate(data).kinds}

    assert (report["users"].inserted, report["users"].updated, report["users"].unchanged) == (1, 1, 1)
    assert report["users"].db_only == 1  # the server's user is kept
    assert (report["votes"].updated, report["votes"].unchanged) == (1, 2)
    assert (report["knowledge"].unchanged, report["knowledge"].db_only) == (1, 1)
    assert (report["audit"].inserted, report["audit"].unchanged) == (1, 3)
    conn = connect(db)
    users_repo = UserRepository(conn)
    assert users_repo.get_by_id("u-petr")["role"] == "viewer"
    assert users_repo.get_by_id("eva@acme.com")["created_at"] == utc(2026, 3, 28)
    assert users_repo.get_by_id("u-new")["name"] == "Created by the server"
    assert KnowledgeRepository(conn).get_votes("k1") == {"upvotes": 1, "downvotes": 1}
    assert KnowledgeRepository(conn).get_by_id("k2") is not None  # rows only in the database are kept
    audit = dict(conn.execute("SELECT id, seq FROM audit_log").fetchall())
    conn.close()
    assert {k: audit[k] for k in old_audit} == old_audit  # existing rows keep their place
    assert audit["a4"] > max(old_audit.values())  # an earlier timestamp, but inserted later


# -- dry run ---------------------------------------------------------------------------------------
def test_a_dry_run_creates_no_database(tmp_path):
    data = legacy_copy(tmp_path)
    report = migrate(data, dry_run=True)
    assert not (data / "state").exists()
    assert report.dry_run and report.counts() == SAMPLE_COUNTS
    assert report.written == sum(SAMPLE_COUNTS.values())  # what a real run would write


def test_a_dry_run_over_a_database_writes_nothing(tmp_path):
    data = legacy_copy(tmp_path)
    db = data / "state" / "system.duckdb"
    migrate_all(data)
    before, raw = dump(db), db.read_bytes()
    edit_json(data / "auth/users.json", lambda d: d["petr@acme.com"].update(role="viewer"))
    append_lines(data / "audit/audit.jsonl", '{"id": "a4", "timestamp": "2026-03-28", "action": "logout"}')
    report = {k.kind: k for k in migrate(data, dry_run=True).kinds}
    assert (report["users"].updated, report["audit"].inserted) == (1, 1)
    assert dump(db) == before
    assert db.read_bytes() == raw
    assert not Path(f"{db}.wal").exists()


def test_a_missing_data_directory_is_a_clear_error(tmp_path):
    from mcp_state.errors import MigrationError

    with pytest.raises(MigrationError, match="does not exist"):
        migrate_all(tmp_path / "nope")


def test_missing_files_mean_nothing_of_that_kind(tmp_path):
    data = tmp_path / "data"
    (data / "audit").mkdir(parents=True)
    (data / "audit/audit.jsonl").write_text("")  # one file of the layout, empty; the others missing
    report = migrate(data)
    assert report.counts() == dict.fromkeys(KIND_NAMES, 0)
    assert [k.kind for k in report.kinds if k.present] == ["audit"]
