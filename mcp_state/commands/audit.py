"""``mcp-state audit``: audit log retention (``audit archive``)."""

from __future__ import annotations

import argparse
from typing import Any

from mcp_state.commands.backup import DB_HELP, db_path


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "audit",
        help="audit log retention: move old rows to Parquet files (audit archive)",
        description="Keep the live audit log small; archived rows stay queryable as Parquet.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    archive = actions.add_parser(
        "archive",
        help="move audit rows older than --before to a Parquet file in --to",
        description=(
            "Move every audit row older than AGE (90d, 12h, 2w, or a date such as 2026-01-01) to "
            "DIR/audit-FIRST-LAST.parquet (FIRST and LAST are the rows' sequence numbers) and delete "
            "them from the live table, in one transaction. DIR defaults to $MCP_STATE_AUDIT_ARCHIVE, else "
            "archive/audit beside the database file: the folder the SQL tool reads as the table "
            "audit_archive. Elsewhere, query the archive with read_parquet('DIR/audit-*.parquet')."
        ),
        epilog="example: mcp-state audit archive --before 90d",
    )
    archive.add_argument(
        "--before", required=True, metavar="AGE", help="age or date: 90d, 12h, 2w, 2026-01-01"
    )
    archive.add_argument(
        "--to",
        metavar="DIR",
        help="folder for the Parquet file, created if missing (default: $MCP_STATE_AUDIT_ARCHIVE, "
        "else archive/audit beside the database; the SQL tool reads that folder)",
    )
    archive.add_argument("--db", metavar="PATH", help=DB_HELP)
    archive.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mcp_state.archive import archive_audit, archive_folder, cutoff
    from mcp_state.db import Database
    from mcp_state.errors import DatabaseUnavailableError

    path = db_path(args)
    if not Path(path).is_file():
        raise DatabaseUnavailableError(f"there is no database at {path}; check --db or DATA_DIR")
    moment = cutoff(args.before)
    with Database(path, idle_release=None) as db:
        folder = args.to or archive_folder(path)
        assert folder is not None  # a file has a folder beside it
        result = archive_audit(db, moment, folder)
    if not result["rows"]:
        print(f"No audit rows before {result['before']}; nothing archived")
    else:
        print(
            f"Archived {result['rows']} audit rows before {result['before']} to {result['file']}; "
            f"{result['remaining']} rows stay in the live table"
        )
    return 0
