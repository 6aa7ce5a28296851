"""``mcp-state demo``: load the sample state shipped with mcp-state, to try the server at once."""

from __future__ import annotations

import argparse
import shlex
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
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="where the database goes (default: $DATA_DIR, else your user data folder, e.g. ~/.local/share/mcp-state)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from importlib.resources import as_file, files

    from mcp_state.commands.migrate import say_waiting
    from mcp_state.db import system_db_path
    from mcp_state.migrate import migrate
    from mcp_state.sharing import default_data_dir

    db_path = system_db_path(args.data_dir or default_data_dir()).resolve()
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
    command = shlex.join(["mcp-state", "serve", "--db", str(db_path)])
    print(
        f"Loaded the sample state into {db_path}: {summary}, and more "
        f"({sum(counts.values())} entries, {report.written} written now).\n"
        "Serve it to an MCP client:\n"
        f"  MCP Inspector: npx @modelcontextprotocol/inspector {command}\n"
        f"  Claude Code:   claude mcp add mcp-state -- {command}\n"
        f"  By hand:       {command}"
    )
    return 0
