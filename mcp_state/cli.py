"""The ``mcp-state`` command line: subcommands live in ``mcp_state.commands``.

Every way a command can fail ends here as one line on stderr (``mcp-state COMMAND: error:
...``) and a non-zero exit status, never a traceback: usage errors (2), refusals and errors
the command reports (1), Ctrl-C (130), a closed pipe such as ``| head`` (141, silently).
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from typing import NoReturn

from mcp_state import __version__, commands
from mcp_state.errors import StateError


class Parser(argparse.ArgumentParser):
    """argparse with usage errors on one line, pointing to ``--help`` instead of printing the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
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
    name = " ".join(["mcp-state", args.command, *([args.action] if getattr(args, "action", None) else [])])
    try:
        code = int(func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the handlers below
        return code
    except StateError as exc:
        return _fail(name, str(exc))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly, and keep Python from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        return _fail(name, f"{where}{exc.strerror or exc}")
    except Exception as exc:  # a bug: still one line, with what to report
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return _fail(name, f"unexpected {type(exc).__name__}: {first}. Please report this as a bug.")


def _fail(name: str, message: str) -> int:
    print(f"{name}: error: {message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
