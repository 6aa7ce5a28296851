"""How a client starts this mcp-state: the command lines that ``serve`` and ``demo`` print.

A client (Claude Desktop, Claude Code, MCP Inspector) starts the server itself, from its own
environment: it does not share your shell's ``PATH`` or working folder. So every snippet names
the program by its absolute path, and never a path inside a package manager's cache (``uvx``
and ``pipx run`` install into a cache they may empty at any time): from there the snippet runs
``uvx mcp-state`` instead, with ``uvx``'s own absolute path when it can be found.
"""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from pathlib import Path

from mcp_state.dialect import is_postgres_url
from mcp_state.sharing import shown_location

# The MCP Inspector the snippets name: a fixed version (npx would otherwise pick whatever it
# has cached, or ask on a terminal), run with -y so that it never waits for an answer.
INSPECTOR = "@modelcontextprotocol/inspector@2.12.0"

# Folder names that mark a package manager's cache (uv: ~/.cache/uv/archive-v0/...; pipx run:
# ~/.local/pipx/.cache/...; macOS: ~/Library/Caches/...).
_CACHE_PARTS = {".cache", "Caches", "cache"}


def in_cache(prefix: Path) -> bool:
    """Whether the Python environment at ``prefix`` lives in a package manager's cache."""
    return any(part in _CACHE_PARTS or part.startswith(("archive-v", "builds-v")) for part in prefix.parts)


def launcher(prefix: Path | None = None, argv0: str | None = None) -> list[str]:
    """The program (and leading arguments) that starts this mcp-state, for a client's configuration."""
    prefix = Path(sys.prefix) if prefix is None else prefix
    if in_cache(prefix):
        uvx = shutil.which("uvx")
        return [str(Path(uvx).absolute()) if uvx else "uvx", "mcp-state"]
    script = Path(sys.argv[0] if argv0 is None else argv0)
    if script.name == "mcp-state" and script.is_file():
        return [str(script.resolve())]
    return [sys.executable, "-m", "mcp_state"]


def serve_command(db_path: Path | str, *options: str) -> list[str]:
    """The whole command line of ``mcp-state serve --db PATH [options]``, launcher included.

    A PostgreSQL URL is shown without its password (``sharing.shown_location``): the server
    then finds it where libpq looks, ``PGPASSWORD`` or ``~/.pgpass`` (``PASSWORD_NOTE``).
    """
    return [*launcher(), "serve", "--db", shown_location(db_path), *options]


PASSWORD_NOTE = "  (the password is not shown: the server reads it from PGPASSWORD or ~/.pgpass)"


def password_note(db_path: Path | str) -> list[str]:
    """``[PASSWORD_NOTE]`` when ``db_path`` is a URL with a password (left out of the snippets), else []."""
    text = str(db_path)
    return [PASSWORD_NOTE] if is_postgres_url(text) and shown_location(text) != text else []


def client_snippets(command: list[str]) -> list[str]:
    """One line per client: how to add the server that ``command`` starts."""
    shell = shlex.join(command)
    desktop = json.dumps({"mcpServers": {"mcp-state": {"command": command[0], "args": command[1:]}}})
    return [
        f"  Claude Code:    claude mcp add mcp-state -- {shell}",
        f"  Claude Desktop: in claude_desktop_config.json, {desktop}",
        f"  MCP Inspector:  npx -y {INSPECTOR} {shell}",
    ]
