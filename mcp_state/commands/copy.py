"""``mcp-state copy``: copy the whole state from one database to another (a file, PostgreSQL)."""

from __future__ import annotations

import argparse
from typing import Any

LOCATION = "a DuckDB file, or a postgresql://USER@HOST/DB URL"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "copy",
        help="copy the whole state between databases: a DuckDB file to PostgreSQL and back",
        description=(
            "Copy every table of the state (users, tokens, the audit log, everything) from --from to "
            "--to in one transaction, advance the sequences past the copied numbers, and count the rows "
            "again afterwards. The target must be empty: a new file (created), or a new PostgreSQL "
            "database (createdb NAME; the schema is created). The source is not changed."
        ),
        epilog="example: mcp-state copy --from data/state/system.duckdb --to postgresql://mcp@127.0.0.1/mcp_state",
    )
    parser.add_argument("--from", dest="source", required=True, metavar="DB", help=f"the source: {LOCATION}")
    parser.add_argument(
        "--to", dest="target", required=True, metavar="DB", help=f"the empty target: {LOCATION}"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mcp_state.transfer import copy_state

    result = copy_state(args.source, args.target)
    width = max(len(table) for table in result["tables"])
    for table, rows in result["tables"].items():
        print(f"{table:<{width}}  {rows:>10}")
    print(
        f"Copied {result['rows']} rows in {len(result['tables'])} tables from {result['from']} to "
        f"{result['to']}; the target's counts match."
    )
    return 0
