"""The ``mcp-state`` command line."""

from __future__ import annotations

import argparse
import sys

from mcp_state import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mcp-state",
        description="An application's operational state in DuckDB, served to LLM agents over MCP.",
    )
    parser.add_argument("--version", action="version", version=f"mcp-state {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
