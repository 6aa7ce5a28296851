"""``mcp-state query``: run one read-only SQL statement and print the rows as a table."""

from __future__ import annotations

import argparse
import json

from mcp_state.sharing import DB_HELP, require_database

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000  # mcp_state.sql.engine.MAX_LIMIT; not imported, to keep --help fast


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if not 1 <= value <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"must be from 1 to {MAX_LIMIT:,}, got {value}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "query",
        help="run one read-only SQL statement and print the rows",
        description=(
            "Run one read-only SQL statement over the state's redacted tables, with the same checks and "
            "limits as the sql_query MCP tool: DuckDB SQL for a state file (SELECT, WITH, FROM-first, DESCRIBE, "
            "SHOW TABLES, SUMMARIZE, PIVOT ... IN (...)), PostgreSQL 15 SQL for a postgresql:// database "
            "(SELECT, WITH, VALUES). Nothing can be written, no file read, no secret shown."
        ),
        epilog='example: mcp-state query "SELECT action, count(*) AS n FROM audit_log GROUP BY ALL ORDER BY n DESC"',
    )
    parser.add_argument("sql", help="the SQL statement (quote it for the shell)")
    parser.add_argument("--db", metavar="PATH", help=DB_HELP)
    parser.add_argument(
        "--json", action="store_true", help="print the full result as JSON instead of a table"
    )
    parser.add_argument(
        "--limit",
        type=_limit,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"most rows to return (1 to {MAX_LIMIT:,}; default {DEFAULT_LIMIT})",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mcp_state.sql.engine import open_engine
    from mcp_state.sql.render import query_markdown

    with open_engine(require_database(args.db)) as engine:
        result = engine.query(args.sql, args.limit)
    print(json.dumps(result, indent=2, ensure_ascii=False) if args.json else query_markdown(result, width=80))
    return 0
