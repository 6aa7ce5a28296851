"""The statement gate of the read-only SQL tool (layers 1 to 3).

1. ``check_size``: the SQL text is at most ``MAX_SQL_CHARS`` characters.
2. ``check_statement``: DuckDB's own parser finds exactly one statement, and it is a ``SELECT``
   (which is also how DuckDB parses ``WITH``, ``FROM``-first, ``VALUES``, ``DESCRIBE``,
   ``SHOW``, ``SUMMARIZE`` and ``PIVOT ... IN (...)``).
3. ``check_tree``: the statement's parse tree from ``json_serialize_sql`` is walked whole.
   Every query node (CTEs and subqueries included) is a read; every table is a redacted view,
   a CTE in scope or a metadata view; every table function is on ``TABLE_FUNCTIONS``; every
   other function is on the allow-list ``functions.ALLOWED_FUNCTIONS``; no name has more than
   three parts. Anything the walk does not recognise is refused: it fails closed.

Checking the statement type alone is not enough (``WITH d AS (DELETE ... RETURNING *) SELECT``
is typed SELECT), nor is a read-only transaction (``json_execute_serialized_sql`` deletes
inside one, ``COPY ... TO`` and ``SET`` run inside one); the engine adds layers 4 to 6, and runs
every statement in a worker process that holds a copy of the redacted views only (``worker``).
Each refusal raises ``InvalidSQLError`` naming the reason and what is allowed instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import duckdb

from mcp_state.errors import InvalidSQLError
from mcp_state.schema import REDACTED_SCHEMA
from mcp_state.sql.functions import ALLOWED_FUNCTIONS

MAX_SQL_CHARS = 20_000

ALLOWED = (
    "SELECT, WITH (also RECURSIVE), FROM-first queries, VALUES, DESCRIBE, SHOW TABLES, SUMMARIZE, "
    "PIVOT/UNPIVOT with an IN list"
)

# Table functions the SQL tool may call: generators only (no catalog, settings, paths or files).
TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest", "json_each", "json_tree"})

# information_schema views (over the SQL tool's own catalog) it may read.
METADATA_VIEWS = frozenset(
    {"tables", "columns", "schemata", "views", "table_constraints", "key_column_usage"}
)

# Catalog, schema, table: a longer name is refused (the guard and DuckDB could read it apart).
MAX_NAME_PARTS = 3

# Why some well-known functions are not on the allow-list (``functions.ALLOWED_FUNCTIONS``).
_STATE = "it changes or reads server state (sequences, settings, logs)"
_NESTED = "it takes SQL text or plans a query, which the SQL tool does not run"
DENIED_FUNCTIONS: dict[str, str] = {
    "nextval": _STATE,
    "currval": _STATE,
    "setval": _STATE,
    "setseed": _STATE,
    "write_log": _STATE,
    "current_setting": "settings are not visible through the SQL tool",
    "getvariable": "variables are not visible through the SQL tool",
    "get_block_size": "it reads storage internals",
    "stats": "it reads the planner's statistics",
    "sleep_ms": "the SQL tool does not wait",
    "pg_sleep": "the SQL tool does not wait",
    "json_serialize_plan": _NESTED,
    "json_serialize_sql": _NESTED,
    "json_deserialize_sql": _NESTED,
    "json_execute_serialized_sql": _NESTED,
    "query": _NESTED,
    "query_table": _NESTED,
}

# Names the parser emits that are not catalog functions (special forms bound by name).
PARSER_FUNCTIONS = frozenset({"unnest", "unlist", "grouping", "grouping_id", "try", "columns"})

_QUERY_NODES = frozenset({"SELECT_NODE", "SET_OPERATION_NODE", "RECURSIVE_CTE_NODE", "CTE_NODE"})
_TABLE_REFS = frozenset(
    {"BASE_TABLE", "TABLE_FUNCTION", "JOIN", "SUBQUERY", "EXPRESSION_LIST", "EMPTY", "PIVOT", "SHOW_REF"}
)
_EXPRESSIONS = frozenset(
    {
        "BETWEEN",
        "CASE",
        "CAST",
        "COLLATE",
        "COLUMN_REF",
        "COMPARISON",
        "CONJUNCTION",
        "CONSTANT",
        "FUNCTION",
        "LAMBDA",
        "LAMBDA_REF",
        "OPERATOR",
        "POSITIONAL_REFERENCE",
        "STAR",
        "SUBQUERY",
        "WINDOW",
        "TYPE",
    }
)
_SHOW_SPECIAL = frozenset({"tables", "__show_tables_expanded"})

_FILE_READERS = ("read_", "parquet_", "glob", "sniff_csv", "iceberg", "delta_scan")
_NESTED_SQL = frozenset({"query", "query_table", "json_execute_serialized_sql"})

_STATEMENT_WORDS = {
    "INSERT": "an INSERT",
    "UPDATE": "an UPDATE",
    "DELETE": "a DELETE",
    "MERGE_INTO": "a MERGE",
    "CREATE": "a CREATE",
    "CREATE_FUNC": "a CREATE MACRO",
    "DROP": "a DROP",
    "ALTER": "an ALTER",
    "COPY": "a COPY",
    "COPY_DATABASE": "a COPY FROM DATABASE",
    "EXPORT": "an EXPORT DATABASE",
    "ATTACH": "an ATTACH",
    "DETACH": "a DETACH",
    "LOAD": "an INSTALL or LOAD",
    "EXTENSION": "an extension statement",
    "PRAGMA": "a PRAGMA",
    "SET": "a SET, RESET or USE",
    "VARIABLE_SET": "a SET VARIABLE",
    "TRANSACTION": "a transaction statement (BEGIN, COMMIT, ROLLBACK)",
    "PREPARE": "a PREPARE",
    "EXECUTE": "an EXECUTE",
    "CALL": "a CALL",
    "VACUUM": "a VACUUM",
    "ANALYZE": "an ANALYZE",
    "EXPLAIN": "an EXPLAIN",
}


@dataclass(frozen=True)
class Catalog:
    """The tables a statement may name, read once from the SQL tool's own database."""

    database: str
    views: frozenset[str]

    @classmethod
    def load(cls, cursor: duckdb.DuckDBPyConnection) -> Catalog:
        row = cursor.execute("SELECT current_database()").fetchone()
        database = str(row[0]) if row else ""
        names = cursor.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_catalog = current_database() "
            "AND table_schema = ?",
            [REDACTED_SCHEMA],
        ).fetchall()
        return cls(database=database.lower(), views=frozenset(str(v[0]).lower() for v in names))


def check_size(sql: str, max_chars: int = MAX_SQL_CHARS) -> None:
    if not sql or not sql.strip():
        raise InvalidSQLError(f"no SQL statement was given; send one read-only statement ({ALLOWED})")
    if len(sql) > max_chars:
        raise InvalidSQLError(
            f"the SQL text is {len(sql):,} characters, over the {max_chars:,}-character limit; "
            "shorten it (use CTEs, fewer literal values)"
        )


def check_statement(cursor: duckdb.DuckDBPyConnection, sql: str) -> str:
    """Parse with DuckDB; return the one statement's text, or refuse."""
    try:
        statements = cursor.extract_statements(sql)
    except duckdb.Error as exc:
        raise InvalidSQLError(f"the SQL does not parse: {first_line(str(exc))}") from None
    check_count(len(statements), ALLOWED)
    statement = statements[0]
    kind = statement_kind(statement)
    if kind == "SELECT":
        return str(statement.query)
    if kind == "MULTI":
        raise InvalidSQLError(
            "this statement expands into several (a PIVOT without an IN list creates a temporary type, "
            "which the read-only SQL tool cannot do); list the values: PIVOT t ON col IN ('a', 'b') USING count(*)"
        )
    if kind == "EXPLAIN":
        raise InvalidSQLError(
            "EXPLAIN statements are not run here; for a plan, call sql_explain with the SELECT alone "
            "(EXPLAIN ANALYZE is never run)"
        )
    what = _STATEMENT_WORDS.get(kind, "a statement that is not a query")
    raise InvalidSQLError(
        f"only read-only statements are allowed, and this is {what}; the SQL tool cannot change data, "
        f"settings, files or the session. Allowed: {ALLOWED}"
    )


def check_count(count: int, allowed: str) -> None:
    """Exactly one statement was parsed, or a refusal saying what to send instead."""
    if count == 0:
        raise InvalidSQLError(f"no SQL statement was given; send one read-only statement ({allowed})")
    if count > 1:
        raise InvalidSQLError(
            f"only one read-only statement is allowed per call; found {count}. Send each statement in its own call."
        )


def statement_kind(statement: Any) -> str:
    """The statement's type name; ``UNKNOWN`` for one the Python client cannot name (UPDATE EXTENSIONS)."""
    try:
        return str(statement.type.name)
    except ValueError:
        return "UNKNOWN"


def check_tree(serialized: str, catalog: Catalog) -> frozenset[str]:
    """Walk the ``json_serialize_sql`` tree of one statement; refuse anything not known to be a read.

    Names are resolved per scope, as DuckDB binds them: a CTE name is a CTE only inside the
    query that defines it (in the bodies of the CTEs declared after it, in its own body when
    it is recursive, and in that query's main part). Anywhere else the name is a table.
    Returns the (lower-case) names of the redacted views the statement reads.
    """
    try:
        tree = json.loads(serialized)
    except (TypeError, ValueError, RecursionError):
        raise InvalidSQLError(
            "the statement could not be checked; rewrite it with standard SELECT syntax"
        ) from None
    if tree.get("error"):
        message = str(tree.get("error_message") or "unknown error")
        raise InvalidSQLError(f"the statement could not be checked ({message}); allowed: {ALLOWED}")
    statements = tree.get("statements")
    if not isinstance(statements, list) or len(statements) != 1:
        raise InvalidSQLError("only one read-only statement is allowed per call")
    stack: list[tuple[Any, frozenset[str]]] = [(statements, frozenset())]
    views: set[str] = set()
    while stack:
        node, scope = stack.pop()
        if isinstance(node, list):
            stack.extend((item, scope) for item in node if isinstance(item, dict | list))
            continue
        kind = node.get("type")
        if "class" in node:
            _check_expression(node)
        elif "cte_map" in node or (isinstance(kind, str) and kind.endswith("_NODE")):
            _check_query_node(node)
            inner = _push_ctes(node, scope, stack)
            stack.extend((v, inner) for k, v in node.items() if k != "cte_map" and isinstance(v, dict | list))
            continue
        elif "alias" in node and "sample" in node:
            _check_table_ref(node, scope, catalog, views)
            if kind == "TABLE_FUNCTION":
                # The function itself was checked as a table function; walk only its arguments.
                function = node.get("function") or {}
                stack.append((function.get("arguments") or [], scope))
                stack.extend(
                    (v, scope) for k, v in node.items() if k != "function" and isinstance(v, dict | list)
                )
                continue
        stack.extend((v, scope) for v in node.values() if isinstance(v, dict | list))
    return frozenset(views)


def _push_ctes(
    node: dict[str, Any], scope: frozenset[str], stack: list[tuple[Any, frozenset[str]]]
) -> frozenset[str]:
    """Queue each CTE body of ``node`` with the names it can see; returns the main part's scope."""
    cte_map = node.get("cte_map")
    entries = cte_map.get("map") if isinstance(cte_map, dict) else None
    names: set[str] = set()
    for entry in entries or []:
        name = str(entry.get("key", "")).lower()
        value = entry.get("value") or {}
        body = value.get("query_node") if isinstance(value, dict) else None
        recursive = (
            isinstance(body, dict)
            and body.get("type") == "RECURSIVE_CTE_NODE"
            and str(body.get("cte_name", "")).lower() == name
        )
        stack.append((value, scope | names | ({name} if recursive else set())))
        names.add(name)
    return scope | names


def _check_query_node(node: dict[str, Any]) -> None:
    kind = str(node.get("type"))
    if kind in _QUERY_NODES:
        return
    for verb in ("DELETE", "INSERT", "UPDATE", "MERGE"):
        if verb in kind:
            raise InvalidSQLError(
                f"only reads are allowed: the query contains {_STATEMENT_WORDS.get(verb, verb)} "
                f"(in a CTE or subquery). The SQL tool cannot change data; allowed: {ALLOWED}"
            )
    raise InvalidSQLError(
        f"only reads are allowed: the query contains a {kind} part the SQL tool does not run"
    )


def _check_expression(node: dict[str, Any]) -> None:
    cls = node.get("class")
    if cls == "PARAMETER":
        raise InvalidSQLError("the SQL tool takes no parameters ($1, ?); write the values into the statement")
    if cls not in _EXPRESSIONS:
        raise InvalidSQLError(
            f"the query uses a construct the read-only SQL tool does not know ({cls}); "
            "rewrite it with standard SELECT syntax"
        )
    if cls == "COLUMN_REF" and len(node.get("column_names") or []) > MAX_NAME_PARTS:
        shown = ".".join(str(part) for part in node.get("column_names") or [])
        raise InvalidSQLError(
            f"the name {shown} has more than {MAX_NAME_PARTS} parts; give the table an alias and write alias.column"
        )
    if cls in ("FUNCTION", "WINDOW"):
        name = str(node.get("function_name", ""))
        if node.get("schema") or node.get("catalog"):
            raise InvalidSQLError(
                f"function {_dotted(node.get('catalog'), node.get('schema'), name)} is not available: "
                f"call built-in functions by their bare name ({name}(...))"
            )
        if node.get("export_state"):
            raise InvalidSQLError(f"EXPORT_STATE of {name} is not available; call the aggregate plainly")
        check_function(name)


def check_function(name: str) -> None:
    """A scalar, aggregate or window function call: on the allow-list, or refused by name."""
    lowered = name.lower()
    if lowered in ALLOWED_FUNCTIONS or lowered in PARSER_FUNCTIONS:
        return
    if lowered in TABLE_FUNCTIONS:
        return  # unnest/range as scalar functions (lists)
    why = DENIED_FUNCTIONS.get(lowered, "it is not on the SQL tool's list of analysis functions")
    raise InvalidSQLError(
        f"function {name} is not available: {why}. Use ordinary string, date, math, list, JSON, "
        "aggregate and window functions"
    )


def _dotted(*parts: Any) -> str:
    return ".".join(str(part) for part in parts if part)


def _check_table_ref(node: dict[str, Any], scope: frozenset[str], catalog: Catalog, views: set[str]) -> None:
    """A FROM item: a redacted view (added to ``views``), a CTE in scope, a metadata view or an
    allowed table function."""
    kind = node.get("type")
    if kind not in _TABLE_REFS:
        raise InvalidSQLError(
            f"the query reads from a source the SQL tool does not know ({kind}); read the tables listed by sql_schema"
        )
    if kind == "BASE_TABLE":
        if node.get("at_clause"):
            raise InvalidSQLError("time travel (AT ...) is not available; query the tables as they are now")
        path = (node.get("qualified_name") or {}).get("path") or []
        if len(path) > MAX_NAME_PARTS:
            raise InvalidSQLError(
                f"the table name {'.'.join(map(str, path))} has more than {MAX_NAME_PARTS} parts; "
                "write the table's name (see sql_schema)"
            )
        _check_table(
            node.get("catalog_name"), node.get("schema_name"), node.get("table_name"), catalog, scope, views
        )
    elif kind == "TABLE_FUNCTION":
        function = node.get("function") or {}
        if function.get("schema") or function.get("catalog"):
            raise InvalidSQLError("call table functions by their bare name, e.g. range(10)")
        _check_table_function(str(function.get("function_name", "")))
    elif kind == "SHOW_REF":
        _check_show(node, scope, catalog, views)
    elif kind == "PIVOT" and node.get("pivot_enum"):
        raise InvalidSQLError(
            "PIVOT over an enum type is not available; list the values: PIVOT t ON col IN ('a', 'b')"
        )


def _check_table(
    catalog_name: Any,
    schema_name: Any,
    table_name: Any,
    catalog: Catalog,
    ctes: frozenset[str],
    views: set[str],
) -> None:
    cat = str(catalog_name or "").lower()
    schema = str(schema_name or "").lower()
    name = str(table_name or "").lower()
    if not cat and not schema and name in ctes:
        return
    in_redacted = schema == "" or (schema == REDACTED_SCHEMA and (cat or catalog.database != REDACTED_SCHEMA))
    if name in catalog.views and cat in ("", catalog.database) and in_redacted:
        views.add(name)
        return
    if schema == "information_schema" and cat in ("", catalog.database) and name in METADATA_VIEWS:
        return
    shown = ".".join(
        part for part in (str(catalog_name or ""), str(schema_name or ""), str(table_name or "")) if part
    )
    if name in catalog.views:
        raise InvalidSQLError(
            f"table {shown} is not available: the SQL tool reads the redacted views, which leave out secret "
            f"columns; write {name} (or {REDACTED_SCHEMA}.{name}) instead"
        )
    if "/" in name or "." in name or "\\" in name:
        raise InvalidSQLError(
            f"reading files is not allowed ({shown}); query the tables listed by sql_schema"
        )
    raise InvalidSQLError(
        f"table {shown} is not available to the SQL tool; it can read: {', '.join(sorted(catalog.views))} "
        "(see sql_schema), CTEs you define, and table functions such as range()"
    )


def _check_table_function(name: str) -> None:
    lowered = name.lower()
    if lowered in TABLE_FUNCTIONS:
        return
    if lowered.startswith(_FILE_READERS):
        why = "the SQL tool cannot read files"
    elif lowered in _NESTED_SQL:
        why = "the SQL tool does not run nested SQL (SQL built inside a query)"
    else:
        why = "it reads files, settings, paths or server internals, or changes state"
    raise InvalidSQLError(
        f"function {name} is not available: {why}. Table functions available: {', '.join(sorted(TABLE_FUNCTIONS))}"
    )


def _check_show(node: dict[str, Any], scope: frozenset[str], catalog: Catalog, views: set[str]) -> None:
    show = node.get("show_type")
    table = str(node.get("table_name") or "")
    if show in ("DESCRIBE", "SUMMARY", "SHOW_FROM") and not table:
        return  # DESCRIBE/SUMMARIZE <query>: the query is walked; SHOW TABLES FROM lists names.
    if show in ("DESCRIBE", "SUMMARY", "SHOW"):
        _check_table(node.get("catalog_name"), node.get("schema_name"), table, catalog, scope, views)
        return
    if show == "SHOW_SPECIAL" and table.strip('"').lower() in _SHOW_SPECIAL:
        return
    raise InvalidSQLError(
        f"SHOW {table.strip(chr(34)).upper() or show} is not available; use SHOW TABLES, DESCRIBE <table> "
        "or sql_schema"
    )


def first_line(message: str) -> str:
    """DuckDB's message without the caret lines of its syntax errors."""
    lines = [line for line in message.strip().splitlines() if line.strip()]
    return lines[0] if lines else message
