"""The ``mcp-state`` command line: subcommands live in ``mcp_state.commands``."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from mcp_state import __version__, commands
from mcp_state.errors import StateError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mcp-state",
        description="An application's operational state in DuckDB, served to LLM agents over MCP.",
    )
    parser.add_argument("--version", action="version", version=f"mcp-state {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 0
    try:
        return int(func(args) or 0)
    except StateError as exc:
        print(f"mcp-state {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
