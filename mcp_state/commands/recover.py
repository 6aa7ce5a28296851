"""``mcp-state recover``: open a database without the damaged part of its WAL."""

from __future__ import annotations

import argparse
from typing import Any

from mcp_state.commands.backup import DB_HELP, db_path


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "recover",
        help="open a database without the damaged part of its WAL (keeps a copy of the WAL)",
        description=(
            "For a database whose WAL is damaged or missing: keep a copy of the WAL as "
            "PATH.wal.set-aside-TIME, replay the longest run of whole transactions that still "
            "reads, checkpoint, and report how many transactions were kept and dropped. Changes "
            "after the damage are lost; if they matter, restore the latest backup instead."
        ),
        epilog="example: mcp-state recover --db data/state/system.duckdb",
    )
    parser.add_argument("--db", metavar="PATH", help=DB_HELP)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mcp_state.backup import recover

    result = recover(db_path(args))
    if result.get("note"):
        print(f"Recovered {result['path']}: {result['note']}")
    elif result["set_aside"] is None:
        print(f"Recovered {result['path']}: there was no WAL to replay")
    else:
        print(
            f"Recovered {result['path']}: replayed {result['kept']} transactions from the WAL, "
            f"dropped {result['dropped']} committed transactions after the damage "
            f"({result['unreadable_bytes']} bytes not replayed)"
        )
        print(f"The WAL as it was is kept in {result['set_aside']}")
    return 0
