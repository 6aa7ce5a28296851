"""``mcp-state schema``: the tables the SQL tools can read, with columns, types and descriptions."""

from __future__ import annotations

import argparse
import json

from mcp_state.sharing import DB_HELP, require_database


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "schema",
        help="list the tables SQL can read, with columns and descriptions",
        description=(
            "List the tables (redacted views: secret columns left out) that `mcp-state query` and the "
            "sql_query MCP tool can read, with column names, types and descriptions."
        ),
        epilog="example: mcp-state schema audit_log",
    )
    parser.add_argument("table", nargs="?", help="one table (default: all)")
    parser.add_argument("--db", metavar="PATH", help=DB_HELP)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mcp_state.sql.engine import open_engine
    from mcp_state.sql.render import schema_markdown

    with open_engine(require_database(args.db)) as engine:
        result = engine.schema(args.table)
    print(json.dumps(result, indent=2, ensure_ascii=False) if args.json else schema_markdown(result))
    return 0
