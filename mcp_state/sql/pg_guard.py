"""The statement gate of the read-only SQL tool on PostgreSQL, on ``pglast``'s parse tree.

``check_pg_statement(sql, views)`` parses with PostgreSQL's own parser (``pglast`` wraps
libpg_query) and walks the whole tree, failing closed on any node it does not know:

- exactly one statement, and it is a query (``SELECT``, ``WITH``, ``VALUES``, set operations);
  no ``SELECT ... INTO``, no ``FOR UPDATE``/``FOR SHARE``, no data-modifying CTE;
- every table is a redacted view (bare or ``redacted.``-qualified), a CTE in scope (resolved as
  PostgreSQL binds names: a CTE is visible in the query that defines it, in the CTEs after it
  and in its own body under ``RECURSIVE``) or an ``information_schema`` view on ``METADATA_VIEWS``;
- every function is on ``pg_functions.PG_ALLOWED_FUNCTIONS`` (bare or ``pg_catalog.``), every
  FROM function on ``PG_TABLE_FUNCTIONS``, every operator unqualified or in ``pg_catalog``,
  every cast to a built-in type on ``CAST_TYPES``; no ``$1`` parameters, no XML constructs.

This is the first of two gates: the engine (``pg_engine``) runs what passes as a role that may
only read the redacted views, in a read-only transaction, inside ``DECLARE CURSOR`` (which
takes one query and nothing else), under time and size limits. The gate's part is to refuse
early and say why. It needs no database: the caller gives the views' names.
"""

from __future__ import annotations

from typing import Any

from pglast import ast, parse_sql
from pglast.parser import ParseError

from mcp_state.errors import InvalidSQLError
from mcp_state.schema import REDACTED_SCHEMA
from mcp_state.sql.guard import METADATA_VIEWS, check_count, check_size
from mcp_state.sql.pg_functions import PG_ALLOWED_FUNCTIONS, PG_DENIED_FUNCTIONS, PG_TABLE_FUNCTIONS

PG_ALLOWED = "SELECT, WITH (also RECURSIVE), VALUES, UNION/INTERSECT/EXCEPT, joins, window functions"

# Built-in types a value may be cast to (PostgreSQL's internal names, as the parser gives them).
CAST_TYPES = frozenset(
    """
bool int2 int4 int8 smallint integer bigint int numeric decimal float4 float8 real double
text varchar bpchar char name date time timetz timestamp timestamptz interval json jsonb uuid
bytea bit varbit inet cidr daterange int4range int8range numrange tsrange tstzrange
""".split()  # noqa: SIM905
)

# Nodes that are harmless in themselves: walked into, never refused.
_PLAIN = frozenset(
    {
        "RawStmt",
        "ResTarget",
        "ColumnRef",
        "A_Star",
        "A_Const",
        "String",
        "Integer",
        "Float",
        "Boolean",
        "BitString",
        "Alias",
        "JoinExpr",
        "RangeSubselect",
        "SubLink",
        "BoolExpr",
        "NullTest",
        "BooleanTest",
        "CaseExpr",
        "CaseWhen",
        "CoalesceExpr",
        "MinMaxExpr",
        "SQLValueFunction",
        "A_Indirection",
        "A_Indices",
        "A_ArrayExpr",
        "RowExpr",
        "SortBy",
        "WindowDef",
        "GroupingSet",
        "GroupingFunc",
        "NamedArgExpr",
        "CTESearchClause",
        "CTECycleClause",
    }
)

_STATEMENT_WORDS = {
    "InsertStmt": "an INSERT",
    "UpdateStmt": "an UPDATE",
    "DeleteStmt": "a DELETE",
    "MergeStmt": "a MERGE",
    "CopyStmt": "a COPY",
    "VariableSetStmt": "a SET or RESET (SET ROLE included)",
    "VariableShowStmt": "a SHOW",
    "TransactionStmt": "a transaction statement (BEGIN, COMMIT, ROLLBACK)",
    "CreateFunctionStmt": "a CREATE FUNCTION",
    "DoStmt": "a DO block",
    "CallStmt": "a CALL",
    "ExplainStmt": "an EXPLAIN",
    "PrepareStmt": "a PREPARE",
    "ExecuteStmt": "an EXECUTE",
    "DeclareCursorStmt": "a DECLARE CURSOR",
    "LockStmt": "a LOCK",
    "NotifyStmt": "a NOTIFY",
    "ListenStmt": "a LISTEN",
    "GrantStmt": "a GRANT or REVOKE",
    "GrantRoleStmt": "a GRANT or REVOKE of a role",
    "CreateTableAsStmt": "a CREATE TABLE AS",
    "LoadStmt": "a LOAD",
    "VacuumStmt": "a VACUUM or ANALYZE",
}


def check_pg_statement(sql: str, views: frozenset[str], max_chars: int | None = None) -> str:
    """Refuse ``sql`` unless it is one read-only query over ``views``; returns the statement's
    text without a trailing semicolon (what the engine runs)."""
    if max_chars is None:
        check_size(sql)
    else:
        check_size(sql, max_chars)
    check_text(sql)
    try:
        statements = parse_sql(sql)
    except ParseError as exc:
        raise InvalidSQLError(
            f"the SQL does not parse as PostgreSQL: {exc}. This database takes PostgreSQL 15 SQL, not "
            "DuckDB's (no GROUP BY ALL, EXCLUDE, QUALIFY or list literals); sql_schema shows the views"
        ) from None
    except RecursionError:
        raise InvalidSQLError("the statement is nested too deeply to check; simplify it") from None
    check_count(len(statements), PG_ALLOWED)
    statement = statements[0].stmt
    if not isinstance(statement, ast.SelectStmt):
        kind = type(statement).__name__
        if kind == "ExplainStmt":
            raise InvalidSQLError(
                "EXPLAIN statements are not run here; for a plan, call sql_explain with the SELECT alone"
            )
        what = _STATEMENT_WORDS.get(kind, "a statement that is not a query")
        raise InvalidSQLError(
            f"only read-only statements are allowed, and this is {what}; the SQL tool cannot change data, "
            f"settings, roles, files or the session. Allowed: {PG_ALLOWED}"
        )
    try:
        _walk(statement, views)
    except RecursionError:
        raise InvalidSQLError("the statement is nested too deeply to check; simplify it") from None
    # The statement alone (no trailing semicolon), as the engine wraps it; offsets are in bytes.
    start, length = statements[0].stmt_location or 0, statements[0].stmt_len or None
    encoded = sql.encode("utf-8")
    return encoded[start : None if length is None else start + length].decode("utf-8")


def check_text(sql: str) -> None:
    """Text PostgreSQL's parser and libpq read as Python sees it: UTF-8, no NUL (C strings end
    there, so ``SELECT 1\0; DELETE ...`` would be checked and run cut short)."""
    if "\x00" in sql:
        raise InvalidSQLError("the SQL text contains a NUL character; remove it")
    try:
        sql.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidSQLError(
            "the SQL text is not valid Unicode (a lone surrogate); fix its encoding"
        ) from None


def _walk(root: ast.Node, views: frozenset[str]) -> None:
    stack: list[tuple[Any, frozenset[str]]] = [(root, frozenset())]
    while stack:
        node, scope = stack.pop()
        if isinstance(node, tuple | list):
            stack.extend((item, scope) for item in node)
            continue
        if not isinstance(node, ast.Node):
            continue  # a plain value (a name, a number, an enum)
        kind = type(node).__name__
        if isinstance(node, ast.SelectStmt):
            scope = _select(node, scope, stack)
            skip = {"withClause"}
        elif isinstance(node, ast.RangeVar):
            _table(node, scope, views)
            continue
        elif isinstance(node, ast.RangeFunction):
            _table_functions(node)
            skip = {"functions"}
            stack.extend((call, scope) for call, _ in node.functions or ())
        elif isinstance(node, ast.FuncCall):
            _function(node.funcname)
            skip = {"funcname"}
        elif isinstance(node, ast.TypeCast):
            _type(node.typeName)
            skip = {"typeName"}
        elif isinstance(node, ast.A_Expr):
            _operator(node.name)
            skip = {"name"}
        elif isinstance(node, ast.CollateClause):
            _qualified(node.collname, "collation")
            skip = {"collname"}
        elif isinstance(node, ast.RangeTableSample):
            method = ".".join(_names(node.method))
            if method not in ("bernoulli", "system"):
                raise InvalidSQLError(f"TABLESAMPLE {method} is not available; use BERNOULLI or SYSTEM")
            skip = {"method"}
        elif isinstance(node, ast.ParamRef):
            raise InvalidSQLError(
                "the SQL tool takes no parameters ($1); write the values into the statement"
            )
        elif kind.startswith("Xml") or kind == "RangeTableFunc":
            raise InvalidSQLError("XML functions and XMLTABLE are not available; use the JSON functions")
        elif kind not in _PLAIN:
            raise InvalidSQLError(
                f"the query uses a construct the read-only SQL tool does not know ({kind}); "
                "rewrite it with standard SELECT syntax"
            )
        else:
            skip = set()
        stack.extend((getattr(node, name), scope) for name in _fields(node) if name not in skip)


def _select(
    node: ast.SelectStmt, scope: frozenset[str], stack: list[tuple[Any, frozenset[str]]]
) -> frozenset[str]:
    """Check one query level; queue its CTE bodies with the names each can see; return the scope
    of the rest of the query."""
    if node.intoClause is not None:
        raise InvalidSQLError("SELECT ... INTO creates a table, which the SQL tool cannot do; drop the INTO")
    if node.lockingClause:
        raise InvalidSQLError(
            "FOR UPDATE/FOR SHARE locks rows, which the SQL tool does not do; drop the clause"
        )
    with_clause = node.withClause
    if with_clause is None:
        return scope
    ctes = [cte for cte in with_clause.ctes or () if isinstance(cte, ast.CommonTableExpr)]
    every = frozenset(str(cte.ctename) for cte in ctes)
    seen: set[str] = set()
    for cte in ctes:
        if not isinstance(cte.ctequery, ast.SelectStmt):
            what = _STATEMENT_WORDS.get(type(cte.ctequery).__name__, "a statement that is not a query")
            raise InvalidSQLError(
                f"only reads are allowed: the query contains {what} in a WITH clause. The SQL tool "
                f"cannot change data; allowed: {PG_ALLOWED}"
            )
        visible = scope | every if with_clause.recursive else scope | seen
        stack.append((cte.ctequery, frozenset(visible)))
        stack.extend((v, frozenset(visible)) for v in (cte.search_clause, cte.cycle_clause) if v is not None)
        seen.add(str(cte.ctename))
    return scope | every


def _table(node: ast.RangeVar, scope: frozenset[str], views: frozenset[str]) -> None:
    catalog, schema, name = node.catalogname, node.schemaname, str(node.relname)
    shown = ".".join(str(part) for part in (catalog, schema, name) if part)
    if catalog is not None:
        raise InvalidSQLError(
            f"table {shown} is not available: write the table's name without a database (see sql_schema)"
        )
    if schema is None and name in scope:
        return
    if schema in (None, REDACTED_SCHEMA) and name in views:
        return
    if schema == "information_schema" and name in METADATA_VIEWS:
        return
    if name in views:
        raise InvalidSQLError(
            f"table {shown} is not available: the SQL tool reads the redacted views, which leave out secret "
            f"columns; write {name} (or {REDACTED_SCHEMA}.{name}) instead"
        )
    raise InvalidSQLError(
        f"table {shown} is not available to the SQL tool; it can read: {', '.join(sorted(views))} "
        f"(see sql_schema), CTEs you define, information_schema ({', '.join(sorted(METADATA_VIEWS))}) "
        "and table functions such as generate_series()"
    )


def _table_functions(node: ast.RangeFunction) -> None:
    if node.coldeflist:
        raise InvalidSQLError(
            "column definition lists (AS t(a int)) are not available; use jsonb_each or ->> instead"
        )
    for call, coldefs in node.functions or ():
        if not isinstance(call, ast.FuncCall) or coldefs:
            raise InvalidSQLError("only function calls may appear in FROM; e.g. generate_series(1, 10)")
        name = _function(call.funcname)
        if name not in PG_TABLE_FUNCTIONS:
            raise InvalidSQLError(
                f"function {name} cannot be read FROM; table functions available: {', '.join(sorted(PG_TABLE_FUNCTIONS))}"
            )


def _function(funcname: Any) -> str:
    """A function's name, bare or ``pg_catalog.``-qualified and on the allow-list, or a refusal."""
    parts = _names(funcname)
    name = parts[-1]
    if len(parts) > 2 or (len(parts) == 2 and parts[0] != "pg_catalog"):
        raise InvalidSQLError(
            f"function {'.'.join(parts)} is not available: call built-in functions by their bare name ({name}(...))"
        )
    if name in PG_ALLOWED_FUNCTIONS or name in _SYNTAX_FUNCTIONS:
        return name
    why = PG_DENIED_FUNCTIONS.get(name) or _denied_family(name)
    raise InvalidSQLError(
        f"function {name} is not available: {why}. Use ordinary string, date, math, array, JSON, aggregate and "
        "window functions"
    )


# Functions the parser itself emits for SQL syntax (EXTRACT, AT TIME ZONE, OVERLAPS, IS NORMALIZED ...).
_SYNTAX_FUNCTIONS = frozenset({"overlaps", "is_normalized", "like_escape", "pg_collation_for"})


def _denied_family(name: str) -> str:
    if name.startswith("pg_") or name.startswith("lo_"):
        return "it reads the server's files, activity, settings or internals"
    if name.endswith("_to_xml") or name.startswith("dblink"):
        return "it runs SQL text or connects elsewhere, which the SQL tool does not do"
    if name.startswith(("has_", "to_reg")):
        return "it reads the catalog's privileges and names, which the SQL tool does not show"
    return "it is not on the SQL tool's list of analysis functions"


def _type(type_name: Any) -> None:
    parts = _names(getattr(type_name, "names", None))
    name = parts[-1] if parts else ""
    if len(parts) > 2 or (len(parts) == 2 and parts[0] != "pg_catalog") or name not in CAST_TYPES:
        raise InvalidSQLError(
            f"cast to {'.'.join(parts) or '?'} is not available; cast to built-in types such as integer, numeric, "
            "text, date, timestamp, interval, jsonb, uuid"
        )


def _operator(name: Any) -> None:
    parts = _names(name)
    if len(parts) > 2 or (len(parts) == 2 and parts[0] != "pg_catalog"):
        raise InvalidSQLError(
            f"operator {'.'.join(parts)} is not available; use the built-in operators unqualified"
        )


def _qualified(name: Any, what: str) -> None:
    parts = _names(name)
    if len(parts) > 1 and parts[0] != "pg_catalog":
        raise InvalidSQLError(f"{what} {'.'.join(parts)} is not available; use a built-in one unqualified")


def _fields(node: ast.Node) -> Any:
    """The attribute names of a pglast node (its slots)."""
    return type(node).__slots__  # type: ignore[attr-defined]


def _names(items: Any) -> list[str]:
    return [str(item.sval) if isinstance(item, ast.String) else str(item) for item in items or ()]
