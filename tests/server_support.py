"""Shared by the tests/test_server_*.py modules: a seeded database with planted canary secrets,
an in-memory client over ``build_server``, and helpers to read results."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from mcp_state.db import Database
from mcp_state.repositories.audit import AuditRepository
from mcp_state.repositories.knowledge import KnowledgeRepository
from mcp_state.repositories.notifications import PendingCodeRepository, ScriptRepository, TelegramRepository
from mcp_state.repositories.permissions import DatasetPermissionRepository
from mcp_state.repositories.profiles import ProfileRepository
from mcp_state.repositories.sync_settings import SyncSettingsRepository
from mcp_state.repositories.sync_state import SyncStateRepository
from mcp_state.repositories.table_registry import TableRegistryRepository
from mcp_state.repositories.tokens import TokenRepository
from mcp_state.repositories.users import UserRepository
from mcp_state.server import ServerSettings, build_server

REPO_ROOT = Path(__file__).resolve().parent.parent
MODES = ("auto", "legacy")
# Backend and protocol era together: both eras on a file, the current one on PostgreSQL (the era
# is the SDK's business, the same whatever stores the state). For tests taking both fixtures.
BACKEND_MODES = pytest.mark.parametrize(
    ("backend", "mode"),
    [("duckdb", "auto"), ("duckdb", "legacy"), ("postgres", "auto")],
    indirect=["backend"],
)

PASSWORD_HASH = "CANARY-pwhash-4b1d9e"
SETUP_TOKEN = "CANARY-setup-77c0aa"
RESET_TOKEN = "CANARY-reset-e5e5f1"
PENDING_CODE = "CANARY-code-314159"
SECOND_CODE = "CANARY-code-271828"
# The bearer token and its hash are random; seed() returns them.
STATIC_CANARIES = (PASSWORD_HASH, SETUP_TOKEN, RESET_TOKEN, PENDING_CODE, SECOND_CODE)

ANA = "ana@example.com"
BOB = "bob@example.com"
T0 = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)


def seed(path: Path) -> dict[str, str]:
    """A database with a bit of everything, and secrets no output may ever show.

    Returns the bearer tokens created (by scope) plus ``canaries``: every secret, joined by newlines.
    """
    with Database(path, idle_release=None) as db:
        users = UserRepository(db)
        users.create(ANA, ANA, "Ana", role="admin", password_hash=PASSWORD_HASH, created_at=T0)
        users.update(ANA, setup_token=SETUP_TOKEN, reset_token=RESET_TOKEN, setup_token_created=T0)
        users.create(BOB, BOB, "Bob", role="analyst", created_at=T0)
        users.create("carol@example.com", "carol@example.com", "Carol", role="viewer", created_at=T0)
        users.create("del@example.com", "del@example.com", "To Delete", role="viewer", created_at=T0)

        sync = SyncStateRepository(db)
        sync.update_sync("orders", rows=100, file_size_bytes=2048, hash="h-orders-1", columns=5, synced_at=T0)
        sync.update_sync(
            "orders", rows=120, file_size_bytes=2300, hash="h-orders-2", columns=5, duration_ms=900
        )
        sync.update_sync(
            "customers",
            rows=0,
            file_size_bytes=0,
            hash="h-cust",
            status="error",
            error="source timed out",
            synced_at=T0,
        )
        SyncSettingsRepository(db).set(ANA, "sales", True)

        perms = DatasetPermissionRepository(db)
        perms.grant(ANA, "sales", "write")
        perms.grant(BOB, "sales", "read")

        knowledge = KnowledgeRepository(db)
        knowledge.create(
            "km_1",
            "Revenue definition",
            "Revenue is net of refunds.",
            "metrics",
            source_user=BOB,
            tags=["revenue"],
            created_at=T0,
        )
        knowledge.create("km_2", "Churn", "Churn is monthly.", "metrics", status="approved", created_at=T0)
        knowledge.create("km_del", "Obsolete", "Old.", "misc", created_at=T0)
        knowledge.vote("km_1", ANA, 1)
        knowledge.vote("km_1", BOB, -1)

        AuditRepository(db).log(
            user_id=ANA,
            action="seeded",
            resource="orders",
            params={"rows": 1},
            result="ok",
            duration_ms=3,
            timestamp=T0,
        )

        telegram = TelegramRepository(db)
        telegram.link_user(BOB, 4242)
        telegram.link_user("carol@example.com", 5151)
        codes = PendingCodeRepository(db)
        codes.create_code(PENDING_CODE, 9001)
        codes.create_code(SECOND_CODE, 9002)

        scripts = ScriptRepository(db)
        scripts.deploy("s1", "Nightly export", owner=ANA, schedule="0 2 * * *", source="print('export')")
        scripts.deploy("s_del", "Old job", owner=BOB, source="print('old')")

        registry = TableRegistryRepository(db)
        registry.register(
            "orders",
            "Orders",
            folder="sales",
            sync_strategy="incremental",
            primary_key="id",
            description="One row per order.",
            registered_by=ANA,
        )
        registry.register("old_table", "Old", folder="misc")
        ProfileRepository(db).save("orders", {"row_count": 120, "columns": [{"name": "id", "nulls": 0}]})

        tokens = TokenRepository(db)
        created = {scope: tokens.create(f"{scope}-bot", scope)[0] for scope in ("read", "write", "admin")}
        hashes = [row[0] for row in db.cursor().execute("SELECT token_hash FROM api_tokens").fetchall()]
    canaries = [*STATIC_CANARIES, *created.values(), *hashes]
    return {**created, "canaries": "\n".join(canaries)}


# tool: (good arguments, bad arguments, the error kind the bad call reports)
CASES: dict[str, tuple[dict[str, Any], dict[str, Any], str]] = {
    # sync
    "get_sync_state": ({"table_id": "orders"}, {"table_id": "nope"}, "not_found"),
    "list_sync_states": ({"status": "error"}, {"limit": 0}, "invalid_argument"),
    "get_sync_history": (
        {"table_id": "orders", "limit": 1},
        {"table_id": "ordres"},
        "not_found",
    ),
    "summarize_sync_failures": ({"since": "3650d"}, {"since": "999999w"}, "invalid_argument"),
    "record_sync": (
        {
            "table_id": "orders",
            "rows": 130,
            "file_size_bytes": 2400,
            "hash": "h-orders-3",
            "duration_ms": 800,
        },
        {"table_id": "orders", "rows": 1, "status": "error"},
        "invalid_argument",
    ),
    "get_sync_settings": ({"user_id": ANA}, {"user_id": ""}, "invalid_argument"),
    "set_sync_settings": (
        {"user_id": ANA, "dataset": "sales", "enabled": True, "table_mode": "selected", "tables": ["orders"]},
        {"user_id": ANA, "dataset": "sales", "enabled": True, "table_mode": "selected"},
        "invalid_argument",
    ),
    # users
    "get_user": ({"user_id": ANA}, {"user_id": "nobody"}, "not_found"),
    "find_user_by_email": ({"email": "ANA@example.com"}, {"email": "nobody@example.com"}, "not_found"),
    "list_users": ({"role": "admin"}, {"role": "superuser"}, "invalid_argument"),
    "create_user": (
        {"id": "dan@example.com", "email": "dan@example.com", "name": "Dan"},
        {"id": "someone-else", "email": ANA},
        "conflict",
    ),
    "update_user": ({"user_id": BOB, "role": "viewer"}, {"user_id": BOB}, "invalid_argument"),
    "delete_user": ({"user_id": "del@example.com"}, {"user_id": "nobody"}, "not_found"),
    "list_dataset_permissions": ({"dataset": "sales"}, {"limit": 500}, "invalid_argument"),
    "grant_dataset_access": (
        {"user_id": BOB, "dataset": "hr", "access": "write"},
        {"user_id": "ghost", "dataset": "hr"},
        "not_found",
    ),
    "revoke_dataset_access": (
        {"user_id": ANA, "dataset": "sales"},
        {"user_id": ANA, "dataset": "none"},
        "not_found",
    ),
    # knowledge
    "get_knowledge_item": ({"item_id": "km_1"}, {"item_id": "nope"}, "not_found"),
    "list_knowledge_items": ({"status": ["pending"]}, {"status": ["maybe"]}, "invalid_argument"),
    "search_knowledge": ({"query": "refunds"}, {"query": ""}, "invalid_argument"),
    "create_knowledge_item": (
        {"id": "km_new", "title": "Fiscal year", "content": "Starts in April.", "tags": ["finance"]},
        {"id": "km_1", "title": "Duplicate"},
        "conflict",
    ),
    "update_knowledge_item": (
        {"item_id": "km_1", "title": "Revenue (net)"},
        {"item_id": "nope", "title": "x"},
        "not_found",
    ),
    "set_knowledge_status": (
        {"item_id": "km_1", "status": "approved"},
        {"item_id": "km_1", "status": "done"},
        "invalid_argument",
    ),
    "delete_knowledge_item": ({"item_id": "km_del"}, {"item_id": "nope"}, "not_found"),
    "vote_knowledge_item": (
        {"item_id": "km_2", "vote": 1, "user_id": BOB},
        {"item_id": "km_2", "vote": 5},
        "invalid_argument",
    ),
    "get_knowledge_votes": ({"item_id": "km_1"}, {"item_id": "nope"}, "not_found"),
    # audit
    "log_audit_event": (
        {"action": "export_report", "resource": "r1", "params": {"rows": 3, "api_token": "abc"}},
        {"action": ""},
        "invalid_argument",
    ),
    "query_audit_log": (
        {"action": "seeded"},
        {"since": "2025-02-01T00:00:00Z", "until": "2025-01-01T00:00:00Z"},
        "invalid_argument",
    ),
    # notifications
    "link_telegram_user": (
        {"user_id": ANA, "chat_id": 777},
        {"user_id": ANA, "chat_id": "abc"},
        "invalid_argument",
    ),
    "unlink_telegram_user": ({"user_id": "carol@example.com"}, {"user_id": "nobody"}, "not_found"),
    "get_telegram_link": ({"user_id": BOB}, {"user_id": "nobody"}, "not_found"),
    "list_telegram_links": ({}, {"cursor": "not-a-cursor"}, "invalid_argument"),
    "verify_pending_code": (
        {"user_id": ANA, "code": PENDING_CODE},
        {"user_id": ANA, "code": "000000"},
        "not_found",
    ),
    # scripts
    "deploy_script": (
        {"id": "s_new", "name": "Hourly", "source": "print(1)", "schedule": "0 * * * *", "owner": ANA},
        {"id": "s_new", "name": "", "source": "x"},
        "invalid_argument",
    ),
    "undeploy_script": ({"script_id": "s_del"}, {"script_id": "nope"}, "not_found"),
    "get_script": ({"script_id": "s1"}, {"script_id": "nope"}, "not_found"),
    "list_scripts": ({"owner": ANA}, {"limit": "many"}, "invalid_argument"),
    "record_script_run": (
        {"script_id": "s1", "status": "ok"},
        {"script_id": "nope", "status": "ok"},
        "not_found",
    ),
    # registry
    "register_table": (
        {"id": "invoices", "name": "Invoices", "folder": "finance"},
        {"id": "invoices"},
        "invalid_argument",
    ),
    "unregister_table": ({"table_id": "old_table"}, {"table_id": "nope"}, "not_found"),
    "get_registered_table": ({"table_id": "orders"}, {"table_id": "nope"}, "not_found"),
    "list_registered_tables": ({"folder": "sales"}, {"limit": 201}, "invalid_argument"),
    "save_table_profile": (
        {"table_id": "orders", "profile": {"row_count": 130}},
        {"table_id": "orders", "profile": [1]},
        "invalid_argument",
    ),
    "get_table_profile": ({"table_id": "orders"}, {"table_id": "nope"}, "not_found"),
    "list_table_profiles": ({}, {"limit": 0}, "invalid_argument"),
    # sql
    "sql_query": ({"sql": "SELECT count(*) AS n FROM sync_state"}, {"sql": ""}, "invalid_argument"),
    "sql_schema": ({"table": "audit_log"}, {"table": "nope"}, "not_found"),
    "sql_explain": ({"sql": "SELECT * FROM audit_log"}, {"sql": ""}, "invalid_argument"),
}

READ_ONLY = {
    "get_sync_state",
    "list_sync_states",
    "get_sync_history",
    "summarize_sync_failures",
    "get_sync_settings",
    "get_user",
    "find_user_by_email",
    "list_users",
    "list_dataset_permissions",
    "get_knowledge_item",
    "list_knowledge_items",
    "search_knowledge",
    "get_knowledge_votes",
    "query_audit_log",
    "get_telegram_link",
    "list_telegram_links",
    "get_script",
    "list_scripts",
    "get_registered_table",
    "list_registered_tables",
    "get_table_profile",
    "list_table_profiles",
    "sql_query",
    "sql_schema",
    "sql_explain",
}
ADDITIVE = {
    "create_user",
    "create_knowledge_item",
    "log_audit_event",
}  # the only writes that overwrite nothing
NOT_IDEMPOTENT = {
    "record_sync",
    "create_user",
    "create_knowledge_item",
    "log_audit_event",
    "verify_pending_code",
    "record_script_run",
}
TOOLSETS = {
    "sync": {
        "get_sync_state",
        "list_sync_states",
        "get_sync_history",
        "summarize_sync_failures",
        "record_sync",
        "get_sync_settings",
        "set_sync_settings",
    },
    "users": {
        "get_user",
        "find_user_by_email",
        "list_users",
        "create_user",
        "update_user",
        "delete_user",
        "list_dataset_permissions",
        "grant_dataset_access",
        "revoke_dataset_access",
    },
    "knowledge": {
        "get_knowledge_item",
        "list_knowledge_items",
        "search_knowledge",
        "create_knowledge_item",
        "update_knowledge_item",
        "set_knowledge_status",
        "delete_knowledge_item",
        "vote_knowledge_item",
        "get_knowledge_votes",
    },
    "audit": {"log_audit_event", "query_audit_log"},
    "notifications": {
        "link_telegram_user",
        "unlink_telegram_user",
        "get_telegram_link",
        "list_telegram_links",
        "verify_pending_code",
    },
    "scripts": {"deploy_script", "undeploy_script", "get_script", "list_scripts", "record_script_run"},
    "registry": {
        "register_table",
        "unregister_table",
        "get_registered_table",
        "list_registered_tables",
        "save_table_profile",
        "get_table_profile",
        "list_table_profiles",
    },
    "sql": {"sql_query", "sql_schema", "sql_explain"},
}


_TEMPLATE: dict[str, tuple[Path, dict[str, str]]] = {}


def seeded_copy(tmp_path: Path, name: str = "state.duckdb") -> tuple[Path, dict[str, str]]:
    """A fresh copy of the seeded database (seeded once per test session, then copied)."""
    if "db" not in _TEMPLATE:
        import tempfile

        folder = Path(tempfile.mkdtemp(prefix="mcp-state-seed-"))
        path = folder / "seed.duckdb"
        _TEMPLATE["db"] = (path, seed(path))
    source, secrets = _TEMPLATE["db"]
    target = tmp_path / name
    shutil.copyfile(source, target)
    wal = source.with_name(source.name + ".wal")
    if wal.exists():
        shutil.copyfile(wal, target.with_name(target.name + ".wal"))
    return target, secrets


def seeded_location(
    tmp_path: Path, backend: str, request: Any, fill: Callable[[Path], None] | None = None
) -> tuple[str, dict[str, str]]:
    """The seeded database on ``backend`` and its secrets (``seed``): a file (``seeded_copy``, then
    ``fill(path)`` if given), or a fresh PostgreSQL database that file is copied into (``mcp-state
    copy``'s code)."""
    path, secrets = seeded_copy(tmp_path)
    if fill is not None:
        fill(path)
    if backend != "postgres":
        return str(path), secrets
    from mcp_state.transfer import copy_state

    url = str(request.getfixturevalue("pg_state_url"))  # the schema, no rows (shared, emptied per test)
    copy_state(str(path), url)
    return url, secrets


def contents(location: str, skip: tuple[str, ...] = ()) -> dict[str, list[dict[str, Any]]]:
    """Every table's rows but ``skip``'s, in a fixed order (every column), as the gateway returns them."""
    from mcp_state.gateway import Gateway
    from mcp_state.schema import JSON_COLUMNS
    from mcp_state.transfer import state_tables

    with Database(location, idle_release=None) as db:
        g = Gateway(db)
        found = {}
        for table, columns in state_tables(db).items():
            if table in skip:
                continue
            order = ", ".join(f"{c} NULLS FIRST" for c in columns if c not in JSON_COLUMNS)
            found[table] = g.fetch_all(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order}")
        return found


@asynccontextmanager
async def connect(db_path: Path | str, mode: str = "auto", **settings: Any) -> AsyncIterator[Client]:
    server = build_server(
        ServerSettings(db_path=str(db_path), actor=settings.pop("actor", "tester"), **settings)
    )
    async with Client(server, mode=mode) as client:
        yield client


_BOUNDARY = re.compile(r"<(untrusted-data-[0-9a-f]{16})>\n(.*)\n</\1>\Z", re.DOTALL)


def unmarked(text: str) -> str:
    """``text`` without the untrusted-data boundary around it (unchanged when it has none)."""
    match = _BOUNDARY.search(text)
    return text if match is None else match.group(2)


def prompt_text(result: Any) -> str:
    """Every message of a prompt, joined."""
    return "\n".join(message.content.text for message in result.messages)


def text_of(result: Any) -> str:
    """Every piece of text in a tool, resource or prompt result."""
    return json.dumps(result.model_dump(mode="json", by_alias=True), default=str)
