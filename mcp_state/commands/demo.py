"""``mcp-state demo``: load the sample state shipped with mcp-state, to try the server at once."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="load the sample state (a few users, tables, knowledge items, audit entries) to try things",
        description=(
            "Migrate the sample legacy data shipped inside mcp-state into DIR/state/system.duckdb, through "
            "the same code path as `mcp-state migrate`, then print how to serve it to MCP Inspector or "
            "Claude. Running it again changes nothing."
        ),
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--db",
        metavar="PATH",
        help="the database file to fill (created if missing), or an empty PostgreSQL database's postgresql:// URL",
    )
    where.add_argument(
        "--data-dir",
        metavar="DIR",
        help="or: the database goes to DIR/state/system.duckdb (default: $DATA_DIR, else your user data folder, e.g. ~/.local/share/mcp-state)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from importlib.resources import as_file, files

    from mcp_state.commands.migrate import say_waiting
    from mcp_state.db import system_db_path
    from mcp_state.dialect import is_postgres_url
    from mcp_state.launch import client_snippets, password_note, serve_command
    from mcp_state.legacy import migrate
    from mcp_state.sharing import default_data_dir, shown_location

    db_path: Path | str = (
        args.db
        if is_postgres_url(args.db)
        else (Path(args.db) if args.db else system_db_path(args.data_dir or default_data_dir())).resolve()
    )
    with as_file(files("mcp_state") / "sample_data") as sample:
        report = migrate(sample, db_path=db_path, on_wait=say_waiting("demo"))
    counts = report.counts()
    summary = ", ".join(
        f"{counts[kind]} {noun}"
        for kind, noun in (
            ("users", "users"),
            ("sync_state", "synced tables"),
            ("knowledge", "knowledge items"),
            ("audit", "audit entries"),
        )
    )
    command = serve_command(db_path)
    print(
        f"Loaded the sample state into {shown_location(db_path)}: {summary}, and more "
        f"({sum(counts.values())} entries, {report.written} written now).\n"
        "Serve it to an MCP client (it starts the server itself):\n"
        + "\n".join([*client_snippets(command), *password_note(db_path)])
        + f"\n  By hand:        {shlex.join(command)}"
    )
    return 0
