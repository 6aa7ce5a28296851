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


def db_path(args: argparse.Namespace) -> str:
    """``--db``, else the file every other command uses by default (``sharing.default_db_path``)."""
    from pathlib import Path

    from mcp_state.sharing import default_db_path

    return str(args.db or Path(default_db_path()).absolute())


def run(args: argparse.Namespace) -> int:
    from mcp_state.backup import backup

    result = backup(db_path(args), args.to, force=args.force)
    print(f"Backed up {result['rows']} rows ({result['bytes']} bytes) to {result['path']}")
    return 0
