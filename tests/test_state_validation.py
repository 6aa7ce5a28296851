"""Validation at the repository: value sets, votes, missing rows, conflicts, one error module."""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

import mcp_state
from mcp_state import errors
from mcp_state.db import Database, connect
from mcp_state.errors import ConflictError, InvalidArgumentError, NotFoundError, StateError
from mcp_state.repositories import (
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
from mcp_state.schema import COLUMN_DESCRIPTIONS
from mcp_state.types import (
    ACCESS_LEVELS,
    KNOWLEDGE_STATUSES,
    ROLES,
    SCRIPT_STATUSES,
    SYNC_STATUSES,
    TABLE_MODES,
)

PACKAGE = Path(mcp_state.__file__).parent


@pytest.fixture(params=["connection", "database", "postgres"])
def src(request):
    """A fresh in-memory database, as a raw connection and as a ``Database``; and a PostgreSQL one."""
    if request.param == "postgres":
        source = Database(request.getfixturevalue("pg_state_url"))
    else:
        source = connect(":memory:") if request.param == "connection" else Database(":memory:")
    yield source
    source.close()


def count(src: Any, table: str) -> int:
    if isinstance(src, Database):
        with src.session() as cursor:
            return cursor.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    return src.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


# -- votes ---------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [0, 2, -2, 10, True, False, "1", "+1", None, [1]])
def test_a_vote_is_plus_or_minus_one(src, bad):
    k = KnowledgeRepository(src)
    k.create("k1", "t", "c", "cat")
    with pytest.raises(InvalidArgumentError, match="vote"):
        k.vote("k1", "u1", bad)
    assert count(src, "knowledge_votes") == 0


@pytest.mark.parametrize("good", [1, -1])
def test_a_valid_vote_is_stored_as_given(src, good):
    k = KnowledgeRepository(src)
    k.create("k1", "t", "c", "cat")
    assert k.vote("k1", "u1", good) == {"upvotes": int(good == 1), "downvotes": int(good == -1)}
    assert [v["vote"] for v in k.list_votes("k1")] == [good]


def test_a_vote_needs_an_existing_item(src):
    k = KnowledgeRepository(src)
    with pytest.raises(NotFoundError, match="'ghost'"):
        k.vote("ghost", "u1", 1)
    assert count(src, "knowledge_votes") == 0


# -- documented value sets -------------------------------------------------------------------
VALUE_SETS = [
    # (values, table, column) - the schema's column description documents the same set.
    (KNOWLEDGE_STATUSES, "knowledge_items", "status"),
    (SYNC_STATUSES, "sync_state", "status"),
    (SYNC_STATUSES, "sync_history", "status"),
    (ROLES, "users", "role"),
    (ACCESS_LEVELS, "dataset_permissions", "access"),
    (SCRIPT_STATUSES, "script_registry", "last_status"),
]


@pytest.mark.parametrize(("values", "table", "column"), VALUE_SETS)
def test_value_sets_match_their_documentation(values, table, column):
    described = COLUMN_DESCRIPTIONS[table][column]
    found = re.findall(r"[a-z_]+", described.split(":", 1)[-1].split("One of", 1)[-1])
    assert set(values) <= set(found), described
    assert TABLE_MODES == ("all", "selected")


def _setters(src: Any) -> dict[str, Callable[[str], Any]]:
    k, s, u, p = (
        KnowledgeRepository(src),
        SyncStateRepository(src),
        UserRepository(src),
        DatasetPermissionRepository(src),
    )
    scripts = ScriptRepository(src)
    k.create("k1", "t", "c", "cat")
    u.create("u1", "u1@x.io", "U")
    scripts.deploy("s1", "script", source="pass")
    return {
        "knowledge.create": lambda v: k.create(f"new-{v}", "t", "c", "cat", status=v),
        "knowledge.update_status": lambda v: k.update_status("k1", v),
        "knowledge.list_items": lambda v: k.list_items(statuses=[v]),
        "sync.update_sync": lambda v: s.update_sync("t1", 1, 1, "h", status=v),
        "sync.get_all_states": lambda v: s.get_all_states(status=v),
        "users.create": lambda v: u.create(f"id-{v}", f"{v}@x.io", "N", role=v),
        "users.update": lambda v: u.update("u1", role=v),
        "users.list_all": lambda v: u.list_all(role=v),
        "permissions.grant": lambda v: p.grant("u1", "ds", v),
        "permissions.has_access": lambda v: p.has_access("u1", "ds", v),
        "scripts.record_run": lambda v: scripts.record_run("s1", v),
        "sync_settings.set": lambda v: SyncSettingsRepository(src).set(
            "u1", "ds", True, table_mode=v, tables=["a"]
        ),
    }


ALLOWED = {
    "knowledge.create": KNOWLEDGE_STATUSES,
    "knowledge.update_status": KNOWLEDGE_STATUSES,
    "knowledge.list_items": KNOWLEDGE_STATUSES,
    "sync.update_sync": SYNC_STATUSES,
    "sync.get_all_states": SYNC_STATUSES,
    "users.create": ROLES,
    "users.update": ROLES,
    "users.list_all": ROLES,
    "permissions.grant": ACCESS_LEVELS,
    "permissions.has_access": ACCESS_LEVELS,
    "scripts.record_run": SCRIPT_STATUSES,
    "sync_settings.set": ("selected",),
}


FILTERS = {"knowledge.list_items", "sync.get_all_states", "users.list_all"}  # None there means "no filter"


@pytest.fixture
def conn():
    conn = connect(":memory:")
    yield conn
    conn.close()


@pytest.mark.parametrize("name", sorted(ALLOWED))
def test_every_documented_value_is_accepted(conn, name):
    setter = _setters(conn)[name]
    for value in ALLOWED[name]:
        setter(value)


@pytest.mark.parametrize("name", sorted(ALLOWED))
def test_values_outside_the_documented_sets_are_refused(conn, name):
    setter = _setters(conn)[name]
    for bad in ["bogus", "OK", "Pending", "", 1, True, *([] if name in FILTERS else [None])]:
        with pytest.raises(InvalidArgumentError):
            setter(bad)


def test_a_refused_value_changes_nothing(src):
    k = KnowledgeRepository(src)
    k.create("k1", "t", "c", "cat")
    with pytest.raises(InvalidArgumentError):
        k.update_status("k1", "done")
    assert k.get_by_id("k1")["status"] == "pending"
    with pytest.raises(InvalidArgumentError):
        SyncStateRepository(src).update_sync("t", 1, 1, "h", status="failed")
    assert count(src, "sync_state") == count(src, "sync_history") == 0


@pytest.mark.parametrize(
    ("mode", "tables"), [("selected", None), ("all", ["a"]), ("all", "a"), ("selected", [1])]
)
def test_sync_settings_table_mode_and_tables_must_agree(src, mode, tables):
    with pytest.raises(InvalidArgumentError):
        SyncSettingsRepository(src).set("u1", "ds", True, table_mode=mode, tables=tables)


@pytest.mark.parametrize(("limit", "offset"), [(-1, 0), (10, -1), ("5", 0), (True, 0)])
def test_paging_arguments_are_checked(src, limit, offset):
    with pytest.raises(InvalidArgumentError):
        KnowledgeRepository(src).list_items(limit=limit, offset=offset)


# -- missing rows ----------------------------------------------------------------------------
MISSING: dict[str, Callable[[Any], Any]] = {
    "users.update": lambda s: UserRepository(s).update("ghost", name="x"),
    "users.delete": lambda s: UserRepository(s).delete("ghost"),
    "knowledge.update": lambda s: KnowledgeRepository(s).update("ghost", title="x"),
    "knowledge.update_status": lambda s: KnowledgeRepository(s).update_status("ghost", "approved"),
    "knowledge.delete": lambda s: KnowledgeRepository(s).delete("ghost"),
    "knowledge.vote": lambda s: KnowledgeRepository(s).vote("ghost", "u1", 1),
    "scripts.record_run": lambda s: ScriptRepository(s).record_run("ghost", "ok"),
    "scripts.undeploy": lambda s: ScriptRepository(s).undeploy("ghost"),
    "telegram.unlink_user": lambda s: TelegramRepository(s).unlink_user("ghost"),
    "table_registry.unregister": lambda s: TableRegistryRepository(s).unregister("ghost"),
    "profiles.delete": lambda s: ProfileRepository(s).delete("ghost"),
    "permissions.revoke": lambda s: DatasetPermissionRepository(s).revoke("ghost", "ds"),
    "sync_settings.delete_one": lambda s: SyncSettingsRepository(s).delete("ghost", "ds"),
    "sync_settings.delete_all": lambda s: SyncSettingsRepository(s).delete("ghost"),
    "sync_state.delete_state": lambda s: SyncStateRepository(s).delete_state("ghost"),
}


@pytest.mark.parametrize("name", sorted(MISSING))
def test_changing_a_missing_row_raises_not_found(src, name):
    with pytest.raises(NotFoundError) as info:
        MISSING[name](src)
    assert "ghost" in str(info.value)
    assert isinstance(info.value, StateError)


def test_reads_of_missing_rows_return_none_as_in_the_seed(src):
    assert UserRepository(src).get_by_id("ghost") is None
    assert UserRepository(src).get_by_email("ghost@x.io") is None
    assert KnowledgeRepository(src).get_by_id("ghost") is None
    assert SyncStateRepository(src).get_table_state("ghost") is None
    assert SyncStateRepository(src).get_last_sync("ghost") is None
    assert ProfileRepository(src).get("ghost") is None
    assert PendingCodeRepository(src).verify_code("ghost") is None
    assert KnowledgeRepository(src).get_votes("ghost") == {"upvotes": 0, "downvotes": 0}


# -- conflicts -------------------------------------------------------------------------------
@pytest.mark.parametrize("email", ["a@x.io", "A@X.IO", "a@X.io"])
def test_a_second_user_with_the_same_email_is_a_conflict(src, email):
    users = UserRepository(src)
    users.create("u1", "a@x.io", "First")
    with pytest.raises(ConflictError, match="email") as info:
        users.create("u2", email, "Second")
    assert not isinstance(info.value, duckdb.Error)
    assert users.get_by_id("u2") is None
    assert users.count() == 1
    users.create("u3", "c@x.io", "Third")  # the database is fine afterwards
    assert users.count() == 2


def test_changing_an_email_to_a_taken_one_is_a_conflict(src):
    users = UserRepository(src)
    users.create("u1", "a@x.io", "A")
    users.create("u2", "b@x.io", "B")
    with pytest.raises(ConflictError):
        users.update("u2", email="A@x.io")
    assert users.get_by_id("u2")["email"] == "b@x.io"
    users.update("u1", email="A@X.io")  # a user may change the case of their own email
    assert users.get_by_id("u1")["email"] == "A@X.io"


def test_a_second_user_with_the_same_id_is_a_conflict(src):
    users = UserRepository(src)
    users.create("u1", "a@x.io", "A")
    with pytest.raises(ConflictError):
        users.create("u1", "b@x.io", "B")
    assert users.get_by_id("u1")["email"] == "a@x.io"


@pytest.mark.parametrize(
    "duplicate",
    [
        lambda s: KnowledgeRepository(s).create("k1", "t", "c", "cat"),
        lambda s: PendingCodeRepository(s).create_code("CODE", chat_id=1),
    ],
    ids=["knowledge item", "pending code"],
)
def test_duplicate_keys_are_conflicts_not_duckdb_errors(src, duplicate):
    duplicate(src)
    with pytest.raises(ConflictError) as info:
        duplicate(src)
    assert not isinstance(info.value, duckdb.Error)
    assert "INSERT" not in str(info.value)  # no raw SQL in the message


# -- one error module ------------------------------------------------------------------------
def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_no_module_but_errors_defines_an_exception():
    offenders = []
    for path in _modules():
        if path.name == "errors.py" and path.parent == PACKAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = {ast.unparse(b).rsplit(".", 1)[-1] for b in node.bases}
                if any(b.endswith(("Error", "Exception")) for b in bases):
                    offenders.append(f"{path.relative_to(PACKAGE)}: {node.name}")
    assert offenders == []


STATE_LAYER = ["db.py", "gateway.py", "schema.py", "repositories"]


def test_the_state_layer_raises_only_errors_from_the_errors_module():
    ours = {name for name, obj in vars(errors).items() if inspect.isclass(obj) and issubclass(obj, Exception)}
    raised = set()
    for part in STATE_LAYER:
        paths = [PACKAGE / part] if part.endswith(".py") else sorted((PACKAGE / part).rglob("*.py"))
        for path in paths:
            for node in ast.walk(ast.parse(path.read_text())):
                if (
                    isinstance(node, ast.Raise)
                    and isinstance(node.exc, ast.Call)
                    and isinstance(node.exc.func, ast.Name)
                    and node.exc.func.id[0].isupper()  # a class, not a helper that builds one
                ):
                    raised.add(node.exc.func.id)
    assert raised, "the scan found nothing; it is broken"
    assert raised <= ours, raised - ours


def test_every_domain_error_is_a_state_error_with_a_kind():
    classes = [obj for obj in vars(errors).values() if inspect.isclass(obj) and issubclass(obj, Exception)]
    assert {NotFoundError, ConflictError, InvalidArgumentError} <= set(classes)
    for cls in classes:
        assert issubclass(cls, StateError)
        assert cls.__doc__ and cls.kind
        assert not issubclass(cls, duckdb.Error)
    assert len({cls.kind for cls in classes}) == len(classes)
    assert issubclass(InvalidArgumentError, ValueError)
