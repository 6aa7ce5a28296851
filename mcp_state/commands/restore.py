"""``mcp-state restore``: put a backup back in place of the database."""

from __future__ import annotations

import argparse
from typing import Any

from mcp_state.commands.backup import DB_HELP, db_path


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "restore",
        help="put a backup in place of the database (refuses a file a running server holds)",
        description=(
            "Verify the backup FILE and copy it to the database path. An existing database is "
            "replaced only with --force, and kept aside as PATH.before-restore-TIME; a database "
            "that a running process holds is never replaced: stop the server first."
        ),
        epilog="example: mcp-state restore --from backups/system-20260327T020000Z.duckdb --force",
    )
    parser.add_argument("--from", dest="source", required=True, metavar="FILE", help="the backup file")
    parser.add_argument("--db", metavar="TARGET", help=DB_HELP)
    parser.add_argument("--force", action="store_true", help="replace an existing database")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mcp_state.backup import restore

    result = restore(args.source, db_path(args), force=args.force)
    print(f"Restored {result['rows']} rows from {args.source} to {result['path']}")
    for path in result["kept"]:
        print(f"The replaced file is kept in {path}")
    return 0
