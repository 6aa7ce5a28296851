"""``mcp-state verify``: check that a database can be read whole and agrees with itself."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mcp_state.commands.backup import DB_HELP, db_path


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="check a database (or a backup): every table and index readable, schema, counts",
        description=(
            "Open the database read-only, read every table and index, check the schema version "
            "and that the audit and sync history rows agree with their sequences. Exits 1 and "
            "names what is wrong when a check fails. Changes nothing. On PostgreSQL: the same checks "
            "(but the tokens file, a file's own)."
        ),
        epilog="example: mcp-state verify --db backups/system-20260327T020000Z.duckdb",
    )
    parser.add_argument("--db", metavar="PATH", help=DB_HELP)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mcp_state.backup import verify, verify_server
    from mcp_state.dialect import is_postgres_url
    from mcp_state.sharing import database_location

    location = database_location(args.db)
    report = verify_server(location) if is_postgres_url(location) else verify(db_path(args))
    for note in report.notes:
        print(f"note: {note}")
    if report.problems:
        for problem in report.problems:
            print(f"mcp-state verify: error: {problem}", file=sys.stderr)
        return 1
    print(
        f"OK: {report.path}: schema version {report.schema_version}, "
        f"{len(report.rows)} tables, {sum(report.rows.values())} rows"
    )
    return 0
