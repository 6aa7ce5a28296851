"""``mcp-state backup``: a consistent copy of the database, also while a server runs."""

from __future__ import annotations

import argparse
from typing import Any

from mcp_state.sharing import DB_HELP


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "backup",
        help="copy the database consistently (checkpoint, then copy), also while a server runs",
        description=(
            "Checkpoint the database and copy it to PATH (a file, or a folder that gets a "
            "timestamped file). A running server lets go of the file when idle; the wait is "
            "MCP_STATE_LOCK_TIMEOUT seconds. The copy is verified before the command succeeds."
        ),
        epilog="example: mcp-state backup --to backups/",
    )
    parser.add_argument("--to", required=True, metavar="PATH", help="backup file, or a folder for one")
    parser.add_argument("--db", metavar="PATH", help=DB_HELP)
    parser.add_argument("--force", action="store_true", help="replace PATH if it exists")
    parser.set_defaults(func=run)


# What to use instead of each file-only command on a PostgreSQL database.
INSTEAD = {
    "backup": "back it up with pg_dump (pg_dump -Fc -f state.dump URL), or copy it to a file with "
    "`mcp-state copy --from URL --to FILE`",
    "restore": "restore a pg_dump backup with pg_restore, or copy a state file into an empty database with "
    "`mcp-state copy --from FILE --to URL`",
    "recover": "PostgreSQL recovers from a crash by itself; restore a pg_dump backup if data was lost",
    "audit": "archive audit rows from a DuckDB copy (`mcp-state copy --from URL --to FILE`)",
}


def db_path(args: argparse.Namespace) -> str:
    """``--db``, else the database every other command uses by default (``sharing.database_location``),
    a file: these commands work on a DuckDB file and refuse a PostgreSQL database in one line."""
    from pathlib import Path

    from mcp_state.sharing import database_location, refuse_on_server

    location = database_location(args.db)
    command = str(getattr(args, "command", "") or "")
    refuse_on_server(
        location, f"mcp-state {command}".strip(), INSTEAD.get(command, "use PostgreSQL's own tools")
    )
    return location if args.db else str(Path(location).absolute())


def run(args: argparse.Namespace) -> int:
    from mcp_state.backup import backup

    result = backup(db_path(args), args.to, force=args.force)
    print(f"Backed up {result['rows']} rows ({result['bytes']} bytes) to {result['path']}")
    return 0
