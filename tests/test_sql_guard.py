"""The statement gate on its own: failing closed on anything unknown, and the lists it relies on."""

from __future__ import annotations

import json

import duckdb
import pytest
from sql_support import seeded_db_path

from mcp_state.errors import InvalidSQLError
from mcp_state.sql import SqlEngine, hardened_database
from mcp_state.sql.functions import ALLOWED_FUNCTIONS
from mcp_state.sql.guard import (
    DENIED_FUNCTIONS,
    TABLE_FUNCTIONS,
    Catalog,
    check_statement,
    check_tree,
    statement_kind,
)

CATALOG = Catalog(database="system_db", views=frozenset({"users", "audit_log"}))


@pytest.fixture(scope="module")
def conn():
    c = duckdb.connect()
    yield c
    c.close()


def _tree(conn: duckdb.DuckDBPyConnection, sql: str) -> dict:
    return json.loads(conn.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0])


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    path = seeded_db_path(tmp_path_factory.mktemp("guard") / "data")
    db = hardened_database(path, idle_release=None)
    yield SqlEngine(db)
    db.close()


def test_a_real_tree_passes(conn):
    check_tree(json.dumps(_tree(conn, "SELECT sum(a + 1) FROM users")), CATALOG)


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ('"type": "SELECT_NODE"', '"type": "FUTURE_NODE"', "FUTURE_NODE"),
        ('"type": "SELECT_NODE"', '"type": "UPDATE_QUERY_NODE"', "UPDATE"),
        ('"class": "CONSTANT"', '"class": "FUTURE_EXPRESSION"', "FUTURE_EXPRESSION"),
        ('"type": "BASE_TABLE"', '"type": "FUTURE_REF"', "FUTURE_REF"),
        ('"function_name": "sum"', '"function_name": "made_up"', "made_up"),
        ('"at_clause": null', '"at_clause": {"unit": "VERSION"}', "time travel"),
    ],
)
def test_anything_unknown_in_the_tree_is_refused(conn, old, new, reason):
    text = json.dumps(_tree(conn, "SELECT sum(1) FROM users"))
    assert old in text
    with pytest.raises(InvalidSQLError, match=reason):
        check_tree(text.replace(old, new), CATALOG)


@pytest.mark.parametrize(
    "document",
    [
        "not json",
        json.dumps({"error": True, "error_type": "not implemented", "error_message": "Only SELECT"}),
        json.dumps({"error": False, "statements": []}),
        json.dumps({"error": False}),
    ],
)
def test_a_tree_that_cannot_be_read_is_refused(document):
    with pytest.raises(InvalidSQLError):
        check_tree(document, CATALOG)


def test_two_statements_in_one_tree_are_refused(conn):
    with pytest.raises(InvalidSQLError, match="only one"):
        check_tree(json.dumps(_tree(conn, "SELECT 1; SELECT 2")), CATALOG)


def test_a_statement_type_the_client_cannot_name_is_refused_in_plain_words(conn):
    (statement,) = conn.extract_statements("UPDATE EXTENSIONS")
    assert statement_kind(statement) == "UNKNOWN"
    with pytest.raises(InvalidSQLError, match=r"only read-only statements are allowed.*Allowed: SELECT"):
        check_statement(conn, "UPDATE EXTENSIONS")


def test_refusals_say_what_to_do_instead(engine):
    cases = {
        "SELECT 1; SELECT 2": "Send each statement in its own call",
        "DELETE FROM users": "Allowed: SELECT, WITH",
        "SELECT * FROM read_csv('x.csv')": "Table functions available: ",
        "SELECT * FROM main.users": "write users (or redacted.users) instead",
        "SELECT * FROM nowhere": "it can read: api_tokens, audit_all, audit_archive, audit_log",
        "SELECT nextval('audit_log_seq')": "function nextval is not available",
        "SHOW DATABASES": "use SHOW TABLES, DESCRIBE <table> or sql_schema",
        "EXPLAIN SELECT 1": "call sql_explain with the SELECT alone",
    }
    for sql, advice in cases.items():
        with pytest.raises(InvalidSQLError) as caught:
            engine.query(sql)
        assert advice in str(caught.value), (sql, str(caught.value))


def test_a_cte_may_shadow_a_view_name_but_never_qualifies_a_raw_table(engine):
    assert engine.query("WITH users AS (SELECT 7 AS x) SELECT * FROM users")["rows"] == [[7]]
    with pytest.raises(InvalidSQLError, match="redacted views"):
        engine.query("WITH main AS (SELECT 1) SELECT * FROM main.users")


def test_deep_nesting_is_walked_without_recursion(engine):
    assert engine.query("SELECT " + "(" * 300 + "1" + ")" * 300 + " AS n")["rows"] == [[1]]
    nested = "SELECT * FROM (" * 150 + "SELECT 1 AS n" + ") t" * 150
    assert engine.query(nested)["rows"] == [[1]]


def test_the_lists_name_real_duckdb_functions(conn):
    functions = dict(
        conn.execute(
            "SELECT lower(function_name), list(DISTINCT function_type) FROM duckdb_functions() GROUP BY ALL"
        ).fetchall()
    )
    assert [name for name in DENIED_FUNCTIONS if name not in functions] == []
    assert [name for name in TABLE_FUNCTIONS if "table" not in functions.get(name, [])] == []
    assert sorted(name for name in ALLOWED_FUNCTIONS if name not in functions) == []


def test_the_allow_list_has_analytics_and_no_side_effects_sql_text_or_internals(conn):
    side_effects = {
        name
        for (name,) in conn.execute(
            "SELECT DISTINCT lower(function_name) FROM duckdb_functions() WHERE has_side_effects"
        ).fetchall()
    }
    assert ALLOWED_FUNCTIONS & side_effects <= {
        "random",
        "uuid",
        "uuidv4",
        "uuidv7",
        "gen_random_uuid",
        "error",
    }
    assert not ALLOWED_FUNCTIONS & set(DENIED_FUNCTIONS)
    assert {"sum", "count_star", "row_number", "json_extract", "list_transform", "regexp_extract", "+"} <= (
        ALLOWED_FUNCTIONS
    )
    unwanted = (
        "sql",
        "plan",
        "setting",
        "variable",
        "read_",
        "glob",
        "duckdb",
        "variant",
        "pragma",
        "secret",
    )
    assert [name for name in ALLOWED_FUNCTIONS if any(word in name for word in unwanted)] == []
