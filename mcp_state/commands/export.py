"""``mcp-state export``: write the database back out as the legacy JSON layout."""

from __future__ import annotations

import argparse
from typing import Any

from mcp_state.sharing import DB_HELP, require_database


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write the database out as the legacy JSON files (a way back, and a readable backup)",
        description=(
            "Write every file of the legacy JSON layout under DIR from the database. `mcp-state migrate "
            "--data-dir DIR` of an export into an empty database gives back the same table contents. "
            "The files hold password hashes, tokens and one-time codes: they are created readable by "
            "their owner only, and an export never overwrites a file."
        ),
        epilog="example: mcp-state export --to backup-2026-03-27/",
    )
    parser.add_argument("--to", required=True, metavar="DIR", help="directory to write (created if missing)")
    parser.add_argument(
        "--db",
        metavar="PATH",
        help=DB_HELP,
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mcp_state.commands.migrate import say_waiting
    from mcp_state.legacy import KINDS, export_all

    counts = export_all(args.to, db_path=require_database(args.db), on_wait=say_waiting("export"))
    width = max(len(kind.file) for kind in KINDS)
    for kind in KINDS:
        print(f"{kind.file:<{width}}  {kind.table:<20} {counts[kind.name]:>10}")
    print(f"Exported {sum(counts.values())} entries to {args.to}")
    return 0
