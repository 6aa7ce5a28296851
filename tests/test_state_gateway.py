"""The query gateway: dict rows with duplicate names kept apart, JSON decoding, transactions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcp_state.db import Database, connect
from mcp_state.errors import ConflictError
from mcp_state.gateway import Gateway, Json, column_names
from mcp_state.repositories import (
    AuditRepository,
    KnowledgeRepository,
    ProfileRepository,
    SyncSettingsRepository,
    UserRepository,
)


@pytest.fixture(params=["connection", "database", "postgres"])
def src(request):
    """A DuckDB connection, a DuckDB Database, or a PostgreSQL Database (each test runs on each)."""
    if request.param == "postgres":
        source = Database(request.getfixturevalue("pg_state_url"))
    else:
        source = connect(":memory:") if request.param == "connection" else Database(":memory:")
    yield source
    source.close()


# -- duplicate column names -------------------------------------------------------------------
def test_duplicate_column_names_are_kept_apart(src):
    row = Gateway(src).fetch_one("SELECT 1 AS id, 2 AS id, 3 AS id")
    assert row == {"id": 1, "id_2": 2, "id_3": 3}


def test_a_duplicate_never_overwrites_a_real_column_of_the_same_name(src):
    row = Gateway(src).fetch_one("SELECT 1 AS id, 2 AS id_2, 3 AS id, 4 AS id_2")
    assert sorted(row.values()) == [1, 2, 3, 4]
    assert row["id"] == 1 and row["id_2"] == 2


def test_a_join_keeps_both_tables_columns(src):
    users = UserRepository(src)
    users.create("u1", "a@x.io", "Ann")
    KnowledgeRepository(src).create("k1", "Title", "c", "cat", source_user="u1")
    rows = Gateway(src).fetch_all("SELECT * FROM users u JOIN knowledge_items k ON k.source_user = u.id")
    assert len(rows) == 1
    row = rows[0]
    assert row["id"] == "u1" and row["id_2"] == "k1"
    assert row["created_at"] is not None and row["created_at_2"] is not None
    assert row["name"] == "Ann" and row["title"] == "Title"


@given(st.lists(st.sampled_from(["id", "id_2", "id_3", "name", "x", "x_2"]), max_size=12))
def test_column_names_are_unique_and_keep_first_occurrences(names):
    result = column_names([(n,) for n in names])
    assert len(result) == len(names)
    assert len(set(result)) == len(result)
    for i, name in enumerate(names):  # the first column with a name keeps it
        if name not in names[:i]:
            assert result[i] == name or name in result[:i]


def test_fetch_value_and_missing_rows(src):
    gateway = Gateway(src)
    assert gateway.fetch_one("SELECT * FROM users WHERE id = ?", ["nobody"]) is None
    assert gateway.fetch_all("SELECT * FROM users") == []
    assert gateway.fetch_value("SELECT count(*) FROM users") == 0
    assert gateway.fetch_value("SELECT id FROM users") is None


# -- JSON columns -----------------------------------------------------------------------------
def test_json_columns_come_back_as_python_values(src):
    k = KnowledgeRepository(src)
    item = k.create("k1", "t", "c", "cat", tags=["a", "ünï"], contributors=["u1", "u2"])
    assert item["tags"] == ["a", "ünï"] and item["contributors"] == ["u1", "u2"]
    assert k.get_by_id("k1")["tags"] == ["a", "ünï"]
    assert k.list_items()[0]["contributors"] == ["u1", "u2"]

    audit = AuditRepository(src)
    audit.log(action="a", params={"force": True, "n": [1, {"x": None}]})
    assert audit.query()[0]["params"] == {"force": True, "n": [1, {"x": None}]}

    settings = SyncSettingsRepository(src)
    settings.set("u1", "sales", True, table_mode="selected", tables=["orders", "items"])
    assert settings.get_one("u1", "sales")["tables"] == ["orders", "items"]
    assert settings.get("u1")[0]["tables"] == ["orders", "items"]

    profiles = ProfileRepository(src)
    profiles.save("orders", {"row_count": 3, "columns": [{"name": "id"}]})
    assert profiles.get_record("orders")["profile"] == {"row_count": 3, "columns": [{"name": "id"}]}
    assert profiles.get("orders")["columns"] == [{"name": "id"}]

    # Even through plain SQL on the gateway.
    row = Gateway(src).fetch_one("SELECT tags, contributors FROM knowledge_items")
    assert row == {"tags": ["a", "ünï"], "contributors": ["u1", "u2"]}


def test_empty_and_missing_json_values(src):
    k = KnowledgeRepository(src)
    assert k.create("k1", "t", "c", "cat", tags=[])["tags"] == []
    assert k.create("k2", "t", "c", "cat")["tags"] is None
    assert AuditRepository(src).get(AuditRepository(src).log(action="a"))["params"] is None


def test_a_renamed_duplicate_json_column_is_decoded_too(src):
    k = KnowledgeRepository(src)
    k.create("k1", "t", "c", "cat", tags=["one"])
    k.create("k2", "t", "c", "cat", tags=["two"])
    row = Gateway(src).fetch_one(
        "SELECT a.tags, b.tags FROM knowledge_items a JOIN knowledge_items b ON a.id = 'k1' AND b.id = 'k2'"
    )
    assert row == {"tags": ["one"], "tags_2": ["two"]}


def test_only_json_columns_are_decoded(src):
    k = KnowledgeRepository(src)
    k.create("k1", '{"title": 1}', '["not", "json", "here"]', "[1]")
    item = k.get_by_id("k1")
    assert item["title"] == '{"title": 1}'
    assert item["content"] == '["not", "json", "here"]'
    assert item["category"] == "[1]"


def test_json_parameters_are_sent_as_documents(src):
    gateway = Gateway(src)
    gateway.execute(
        "INSERT INTO table_profiles (table_id, profile) VALUES (?, ?)", ["t", Json({"a": [1, 2]})]
    )
    assert gateway.fetch_value("SELECT profile->'a'->>1 FROM table_profiles") == "2"


# -- transactions -----------------------------------------------------------------------------
def test_a_transaction_commits_whole(src):
    gateway = Gateway(src)
    with gateway.transaction():
        UserRepository(gateway).create("u1", "a@x.io", "A")
        AuditRepository(gateway).log(action="create_user", resource="u1")
        assert gateway.in_transaction
    assert not gateway.in_transaction
    assert UserRepository(src).count() == 1 and AuditRepository(src).count() == 1


def test_a_transaction_that_fails_changes_nothing(src):
    gateway = Gateway(src)
    UserRepository(src).create("u0", "taken@x.io", "Taken")
    with pytest.raises(ConflictError), gateway.transaction():
        UserRepository(gateway).create("u1", "a@x.io", "A")
        AuditRepository(gateway).log(action="create_user", resource="u1")
        UserRepository(gateway).create("u2", "TAKEN@x.io", "B")  # fails: everything goes
    assert UserRepository(src).get_by_id("u1") is None
    assert AuditRepository(src).count() == 0
    with pytest.raises(RuntimeError), gateway.transaction():  # any exception rolls back
        AuditRepository(gateway).log(action="x")
        raise RuntimeError("caller changed its mind")
    assert AuditRepository(src).count() == 0
    AuditRepository(src).log(action="after")  # and the database works on
    assert AuditRepository(src).count() == 1


def test_nested_transactions_join_the_outer_one(src):
    gateway = Gateway(src)
    with pytest.raises(RuntimeError), gateway.transaction():
        with gateway.transaction():
            AuditRepository(gateway).log(action="inner")
        raise RuntimeError("outer fails after the inner block finished")
    assert AuditRepository(src).count() == 0


def test_datetimes_round_trip_exactly(src):
    moment = datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=UTC)
    entry = AuditRepository(src).log(action="a", timestamp=moment)
    assert AuditRepository(src).get(entry)["timestamp"] == moment
