"""One state file, many local clients: which file, and how processes take turns with it.

Which database. The commands serve, query and change the database ``--db`` names (a file
path, or a ``postgresql://`` URL: ``dialect.is_postgres_url``), else the URL in
``$MCP_STATE_DATABASE_URL``, else the file ``$DATA_DIR/state/system.duckdb``, else
``state/system.duckdb`` in the user's data folder (``default_db_path()``; on Linux
``~/.local/share/mcp-state/state/system.duckdb``), never a path that depends on the working
directory. A missing file is refused (``require_database``) unless the caller creates it on
purpose (``mcp-state demo``, ``mcp-state migrate``, ``mcp-state serve --create``); a
PostgreSQL database is reached when it is opened. The seed API's ``get_system_db()`` keeps
``DATA_DIR``/``./data``.

Taking turns. DuckDB lets one process open a file read-write, or several open it read-only.
A ``Database`` keeps the file open while it serves and lets go when another process asks:

1. A process that finds the file locked asks for it: it writes its PID to the request file
   beside the database (``<db>.wanted``), again on every retry while it waits.
2. Every process holding the file through a ``Database`` looks at the request file every
   ``POLL`` seconds. When a request newer than its own opening appears, it starts no new
   operation, lets its calls in flight finish, and closes the file.
3. The process that gets in removes the request. A process that let go gives way before it
   opens the file again: while a fresh request is there (at most ``HANDOVER`` seconds), it
   waits, so that two busy processes take turns instead of racing for the file.

A process that does not take part (the ``duckdb`` CLI, another program) is not asked: the
asker waits for it up to the lock timeout, then fails naming its PID.
"""

from __future__ import annotations

import os
import time
from contextlib import suppress
from pathlib import Path

from mcp_state.dialect import is_postgres_url
from mcp_state.errors import DatabaseUnavailableError

APP_NAME = "mcp-state"
POLL = 0.02  # how often a holder looks for a request
HANDOVER = 0.5  # longest a process that let go waits for the asker to get in
FRESH = 1.0  # a request not refreshed for this long is from a process that stopped asking
RETRY_DELAY = 0.05  # longest pause between two tries of an asker (it asked: the holder lets go soon)


# -- which file ---------------------------------------------------------------------------------
def default_data_dir() -> Path:
    """``$DATA_DIR``, else the user's data folder for mcp-state (``platformdirs``)."""
    data_dir = os.environ.get("DATA_DIR")
    if data_dir:
        return Path(data_dir)
    import platformdirs

    return platformdirs.user_data_path(APP_NAME, appauthor=False)


def default_db_path() -> Path:
    """The database file the commands use when neither ``--db`` nor ``MCP_STATE_DATABASE_URL`` is given."""
    return default_data_dir() / "state" / "system.duckdb"


DATABASE_URL_ENV = "MCP_STATE_DATABASE_URL"


def database_location(location: str | os.PathLike[str] | None = None) -> str:
    """The database a command works on: ``location`` (``--db``), else ``$MCP_STATE_DATABASE_URL``,
    else ``default_db_path()``."""
    if location:
        return str(location)
    return configured_url() or str(default_db_path())


def configured_url() -> str | None:
    """``$MCP_STATE_DATABASE_URL`` (refused unless a ``postgresql://`` URL), or None when it is unset."""
    url = os.environ.get(DATABASE_URL_ENV, "").strip()
    if url and not is_postgres_url(url):
        raise DatabaseUnavailableError(
            f"{DATABASE_URL_ENV} must be a URL starting with postgresql:// (a file goes in --db or DATA_DIR)"
        )
    return url or None


def shown_location(location: str | os.PathLike[str]) -> str:
    """``location`` as it may be printed: a URL without its password, a file as an absolute path."""
    text = str(location)
    if is_postgres_url(text):
        from mcp_state.postgres import shown_url  # the [postgres] extra, there whenever a URL is used

        return shown_url(text)
    return text if text == ":memory:" else str(Path(text).resolve())


def require_database(path: str | os.PathLike[str] | None) -> str:
    """The database location (``database_location``) as a string; an error when it is a file that does
    not exist."""
    target = database_location(path)
    if is_postgres_url(target):
        return target
    if target != ":memory:" and not Path(target).is_file():
        raise DatabaseUnavailableError(
            f"no database at {Path(target).absolute()}. Pass --db with the path of an existing state "
            "database, or create one: `mcp-state demo` (sample data), `mcp-state migrate --data-dir DIR` "
            "(legacy JSON files) or `mcp-state serve --create` (empty)"
        )
    return target


# -- taking turns -------------------------------------------------------------------------------
def request_path(db_path: str) -> Path:
    """The request file of a database: ``system.duckdb`` -> ``system.duckdb.wanted``."""
    return Path(db_path + ".wanted")


def ask(db_path: str) -> None:
    """Ask whoever holds ``db_path`` to let go (a read-only folder makes this a no-op)."""
    with suppress(OSError), open(request_path(db_path), "w") as request:
        request.write(f"{os.getpid()}\n")


def got_in(db_path: str) -> None:
    """This process opened ``db_path``: a request before now is answered."""
    with suppress(OSError):
        request_path(db_path).unlink()


def asked_since(db_path: str, opened_ns: int) -> bool:
    """Whether a process has asked for ``db_path`` since ``opened_ns`` (``time.time_ns()``), lately."""
    try:
        asked_ns = request_path(db_path).stat().st_mtime_ns
    except OSError:
        return False
    return asked_ns >= opened_ns and time.time_ns() - asked_ns < FRESH * 1e9


def give_way(db_path: str) -> None:
    """Before opening ``db_path``: while another process has freshly asked for it, let it in first."""
    if db_path == ":memory:":
        return
    deadline = time.monotonic() + HANDOVER
    while time.monotonic() < deadline and asked_since(db_path, 0):
        time.sleep(POLL / 4)


DB_HELP = (
    "database file, or a postgresql://USER@HOST/DB URL (default: $MCP_STATE_DATABASE_URL, else "
    "$DATA_DIR/state/system.duckdb, else state/system.duckdb in your user data folder, e.g. "
    "~/.local/share/mcp-state on Linux)"
)


def refuse_on_server(location: str, what: str, instead: str) -> None:
    """Refuse, in one line, a command that works on a database file when ``location`` is PostgreSQL."""
    if is_postgres_url(location):
        raise DatabaseUnavailableError(
            f"{what} works on a DuckDB file, and {shown_location(location)} is a PostgreSQL database: {instead}"
        )
