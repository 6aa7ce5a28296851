"""DuckDB connections, versioned schema migrations and cross-process file locking.

``get_system_db()`` and ``get_analytics_db()`` keep the seed plan's contract: plain DuckDB
connections under ``DATA_DIR`` (read at call time, default ``./data``).

``Database`` is what long-running processes (the MCP server, the CLI) use: it opens the file
lazily, hands out one cursor per operation, keeps the file open while it serves and lets go
when another process asks for it (``mcp_state.sharing``: the request file beside the
database), or after a long idle period. DuckDB lets only one process open a file read-write
(or several read-only); a process that finds it locked asks the holder, retries for a
bounded time and then raises ``DatabaseLockedError`` naming the holder's PID.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import duckdb

from mcp_state import recovery, sharing
from mcp_state.dialect import DUCKDB, is_postgres_url
from mcp_state.errors import DatabaseLockedError, DatabaseUnavailableError, InvalidArgumentError, SchemaError
from mcp_state.migrations import apply_migrations, check_schema_version
from mcp_state.migrations import get_schema_version as get_schema_version  # the seed API's home for it
from mcp_state.schema import LATEST_VERSION
from mcp_state.write_marks import WriteMarks

SCHEMA_VERSION = LATEST_VERSION

DEFAULT_LOCK_TIMEOUT = 10.0
# Let go of the file after this long idle even if nobody asked (for programs that cannot ask).
DEFAULT_IDLE_RELEASE = 60.0

_LOCK_MESSAGE = re.compile(r"Could not set lock on file|Conflicting lock is held", re.IGNORECASE)
_LOCK_PID = re.compile(r"PID (\d+)")


def _get_data_dir() -> Path:
    return Path(os.environ.get("DATA_DIR", "./data"))


def system_db_path(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where the system state database lives: ``DATA_DIR/state/system.duckdb``."""
    return (Path(data_dir) if data_dir else _get_data_dir()) / "state" / "system.duckdb"


def get_system_db() -> duckdb.DuckDBPyConnection:
    """Get a connection to the system state database. Creates folders and schema if needed."""
    return connect(system_db_path())


def get_analytics_db() -> duckdb.DuckDBPyConnection:
    """Get a connection to the analytics database (parquet views)."""
    path = _get_data_dir() / "analytics" / "server.duckdb"
    path.parent.mkdir(parents=True, exist_ok=True)
    return _open_with_retry(str(path), {}, lock_timeout())[0]


def lock_timeout() -> float:
    """Seconds to wait for another process to release the file (``MCP_STATE_LOCK_TIMEOUT``)."""
    raw = os.environ.get("MCP_STATE_LOCK_TIMEOUT")
    if raw is None:
        return DEFAULT_LOCK_TIMEOUT
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):  # also refuses nan
        raise InvalidArgumentError(
            f"MCP_STATE_LOCK_TIMEOUT must be a number of seconds, 0 or more; got {raw!r}"
        )
    return seconds


def connect(
    path: str | os.PathLike[str],
    *,
    config: Mapping[str, Any] | None = None,
    wait: float | None = None,
    migrate: bool = True,
) -> duckdb.DuckDBPyConnection:
    """Open ``path`` (or ``:memory:``) with UTC time, retrying while another process holds it.

    Creates the parent folder, applies pending schema migrations (unless ``migrate`` is
    false) and refuses a database whose schema is newer than this code.
    """
    conn = _connect(path, config=config, wait=wait, migrate=migrate)
    if str(path) != ":memory:":
        # A raw connection can write to the file (and shares the instance with a Database on
        # it in this process) without a Database knowing: no cached reads for that file.
        _RAW_PATHS.add(_real(str(path)))
    return conn


# Files this process has opened through ``connect()``: their Databases never cache reads.
_RAW_PATHS: set[str] = set()


def _real(path: str) -> str:
    return os.path.realpath(path)


def _connect(
    path: str | os.PathLike[str],
    *,
    config: Mapping[str, Any] | None = None,
    wait: float | None = None,
    migrate: bool = True,
    read_only: bool = False,
) -> duckdb.DuckDBPyConnection:
    target = str(path)
    if read_only:  # an existing file, under DuckDB's shared lock (readers together, never beside a writer)
        sharing.require_database(target)
        config = {**(config or {}), "access_mode": "READ_ONLY"}
    elif target != ":memory:":
        try:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseUnavailableError(
                f"cannot create the folder for the database {target}: {exc.strerror}. "
                "Choose a writable location with --db or DATA_DIR."
            ) from exc
    is_new = target != ":memory:" and not Path(target).exists()
    try:
        conn, replayed = _open_with_retry(
            target, dict(config or {}), lock_timeout() if wait is None else wait, check=True
        )
    except DatabaseUnavailableError:
        if is_new:  # a failed create (full disk) must not leave a broken file that blocks the next try
            _remove_partial(target)
        raise
    try:
        if migrate and not read_only:
            apply_migrations(conn)
        elif (version := check_schema_version(conn)) < LATEST_VERSION and read_only:
            raise SchemaError(
                f"the database {target} has schema version {version}, older than this mcp-state "
                f"({LATEST_VERSION}); a read-only open cannot upgrade it: open it once read-write."
            )
        if is_new:
            recovery.created(target)
        recovery.after_open(conn, target, replayed)  # checkpoints a replayed WAL
        if not read_only:
            recovery.after_write(target)
    except BaseException:
        conn.close()
        if is_new:
            _remove_partial(target)
        raise
    return conn


def _remove_partial(target: str) -> None:
    for path in (Path(target), Path(target + ".wal")):
        with suppress(OSError):
            path.unlink()


def _open_with_retry(
    target: str, config: dict[str, Any], wait: float, *, check: bool = False
) -> tuple[duckdb.DuckDBPyConnection, bool]:
    """The open connection, and whether a WAL was there to replay (checked when ``check``)."""
    deadline = time.monotonic() + wait
    delay = 0.01
    asked = False
    while True:
        replayed = False
        try:
            if check:
                replayed = recovery.preflight(target)  # names a damaged or missing WAL
            conn = duckdb.connect(target, config=config)
        except duckdb.Error as exc:
            message = str(exc)
            if not (isinstance(exc, duckdb.IOException) and _LOCK_MESSAGE.search(message)):
                raise recovery.open_failure(target, exc) from exc
            if time.monotonic() >= deadline:
                pid = _LOCK_PID.search(message)
                holder = f"another process (PID {pid.group(1)})" if pid else "another process"
                raise DatabaseLockedError(
                    f"the database {target} is held by {holder} "
                    f"and was not released within {wait:g}s. An mcp-state process lets go when asked, "
                    "as soon as its calls in flight finish; another program (such as the duckdb CLI) "
                    "must close it. Stop that process, or raise MCP_STATE_LOCK_TIMEOUT to wait longer."
                ) from exc
            sharing.ask(target)  # the holder, if it is an mcp-state Database, lets go soon
            asked = True
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, sharing.RETRY_DELAY)
            continue
        if asked:
            sharing.got_in(target)
        # Every timestamp is UTC, whatever the machine's zone: current_timestamp defaults
        # and casts from TIMESTAMPTZ follow the session zone. Set before any lock_configuration.
        # (An instance this process already has open, shared by DuckDB, is UTC and may be locked.)
        if conn.execute("SELECT current_setting('TimeZone')").fetchone() != ("UTC",):
            conn.execute("SET GLOBAL TimeZone = 'UTC'")
        return conn, replayed


# One lock serializes every write in this process. DuckDB aborts concurrent updates of one
# row ("Conflict on update!") instead of waiting; writers queue here instead.
WRITE_LOCK = threading.RLock()


MISS = _MISS = object()


class Database:
    """A database file shared politely with other processes.

    Opens on first use; every operation runs on its own cursor (``session()``). The file stays
    open until another process asks for it (``mcp_state.sharing``; then the calls in flight
    finish first) or ``idle_release`` seconds pass with no call (None: never); ``:memory:``
    is never let go. ``read_only=True``: an existing file, read-only (beside readers only).

    ``read_cache=N`` keeps the answers of up to N cached reads (``Gateway.fetch_one(...,
    cache=True)``; the repositories' lookups by key). A cached answer is never stale:

    - while this process has the file open it holds DuckDB's lock on it, so no other process
      can change it; every opening (and closing) of the file drops the cache;
    - in this process, every operation that may write (every ``session()`` and ``hold()``
      except the cached reads' own) drops the cache when it starts and when it ends, and
      while one is in flight the cache is neither read nor filled; a read's answer is kept
      only if no such operation started while it ran;
    - handing out the root connection (``open()``) or a bare cursor (``cursor()``), or
      opening the same file with ``connect()``, turns the cache off for good, since writes
      through those are not seen. (A ``duckdb.connect`` of the same file elsewhere in this
      process shares this instance unseen too: do not write through one to a file a cached
      Database has open.)

    A ``postgresql://`` URL gives a ``mcp_state.postgres.PostgresDatabase`` instead (same interface).
    """

    dialect = DUCKDB

    def __new__(cls, path: str | os.PathLike[str], *args: Any, **kwargs: Any) -> Database:
        if cls is Database and is_postgres_url(path):
            from mcp_state.postgres import PostgresDatabase  # psycopg: the optional [postgres] extra

            return super().__new__(PostgresDatabase)
        return super().__new__(cls)

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        config: Mapping[str, Any] | None = None,
        idle_release: float | None = DEFAULT_IDLE_RELEASE,
        lock_wait: float | None = None,
        on_open: Any = None,
        read_cache: int = 0,
        read_only: bool = False,
    ) -> None:
        self.path = str(path)
        self.read_only = read_only
        self.config = dict(config or {})
        self.idle_release = None if self.path == ":memory:" else idle_release
        self.lock_wait = lock_wait
        self.on_open = on_open
        self.read_cache = read_cache
        self._conn: duckdb.DuckDBPyConnection | None = None
        self._state = threading.Condition()
        self._active = 0
        self._last_used = time.monotonic()
        self._closed = False
        self._watcher: threading.Thread | None = None
        self._checkpointer: threading.Thread | None = None  # recovery.start_idle_checkpoints
        self._opened_ns = 0
        self._yielding = False  # another process asked: start nothing new, let go when idle
        self._holding = threading.local()  # this thread's operations in flight (nested ones go on)
        # The read cache: answers by key, valid for one generation; any possible change bumps it.
        self._cache: OrderedDict[Hashable, Any] = OrderedDict()
        self._generation = 0
        self._writers = 0
        self._uncached = read_cache <= 0
        self.marks = WriteMarks()  # what changed, for the SQL tool's copies (see ``write_marks``)
        self._real_path = self.path if self.path == ":memory:" else _real(self.path)
        self.dirty = False  # written since the last checkpoint (see recovery.start_idle_checkpoints)

    # -- lifecycle -------------------------------------------------------------------
    def open(self) -> duckdb.DuckDBPyConnection:
        """The root connection, opened (and migrated) if it is not open now.

        Whoever holds the root can write without this object seeing it: the read cache is
        turned off.
        """
        with self._state:
            self._uncached = True
            self._cache.clear()
            self.marks.lose_track()
            return self._open()

    def _open(self) -> duckdb.DuckDBPyConnection:
        with self._state:
            if self._closed:
                raise DatabaseUnavailableError("the database was closed; open a new one")
            if self._conn is None:
                sharing.give_way(self.path)  # another process asked for the file: it goes first
                conn = _connect(self.path, config=self.config, wait=self.lock_wait, read_only=self.read_only)
                if self.on_open is not None:
                    try:
                        self.on_open(conn)
                    except BaseException:
                        conn.close()
                        raise
                self._conn = conn
                self._opened_ns = time.time_ns()
                self._changed()  # another process may have written while the file was closed
                self.marks.new_epoch()
                if self.path != ":memory:" and not (self._watcher and self._watcher.is_alive()):
                    self._watcher = threading.Thread(
                        target=self._watch, name="mcp-state-sharing", daemon=True
                    )
                    self._watcher.start()
                recovery.start_idle_checkpoints(self)
            return self._conn

    def _changed(self) -> None:
        """Something may have changed: no cached answer from before is valid (under ``_state``)."""
        self._generation += 1
        self._cache.clear()

    @property
    def is_open(self) -> bool:
        """Open, and not about to be let go (no other process has asked for it)."""
        return self._conn is not None and not self._yielding

    def release(self) -> bool:
        """Close the file now if no operation is in flight; True when it was closed."""
        with self._state:
            if self._conn is None or self._active or self.path == ":memory:":  # closing it would lose it
                return False
            self._let_go("release")
            return True

    def close(self) -> None:
        with self._state:
            self._closed = True
            while self._active:
                self._state.wait(0.05)
            if self._conn is not None:
                self._let_go("close")
            self._changed()
            self._state.notify_all()
        # No helper thread may still be inside DuckDB when the process exits (that aborts it).
        for thread in (self._watcher, self._checkpointer):
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=5)

    def _let_go(self, reason: str) -> None:
        """The one place the open file is closed (under ``_state``, nothing in flight), after a checkpoint."""
        assert self._conn is not None and self._active == 0
        recovery.before_close(self)  # a checkpoint, if anything was written since the last one
        self._conn.close()
        self._conn = None
        self._yielding = False
        self._changed()
        self._state.notify_all()

    def _watch(self) -> None:
        """While the file is open: let go when another process asks for it, or when idle long enough."""
        with self._state:
            while not self._closed and self._conn is not None:
                if not self._yielding and sharing.asked_since(self.path, self._opened_ns):
                    self._yielding = True
                idle = (
                    self.idle_release is not None and time.monotonic() - self._last_used >= self.idle_release
                )
                if self._active == 0 and (self._yielding or idle):
                    self._let_go("asked" if self._yielding else "idle")
                else:
                    self._state.wait(sharing.POLL)

    # -- operations --------------------------------------------------------------------
    @contextmanager
    def hold(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Keep the file open for one operation; yields the open root connection.

        For callers that keep cursors of their own between operations (the SQL engine): a
        cursor belongs to the root it came from, and closing the root closes it, so a kept
        cursor is only valid while ``hold()`` yields that same root. Never close the root.
        The operation counts as one that may write (see the read cache).
        """
        with self._hold(writes=True) as (root, _):
            yield root

    @contextmanager
    def _hold(
        self, *, writes: bool, tracked: bool = False
    ) -> Iterator[tuple[duckdb.DuckDBPyConnection, int | None]]:
        """The root, kept open, and the generation a read may be cached under (or None); ``tracked``:
        the caller names the tables it writes (``marks.wrote``)."""
        depth = getattr(self._holding, "depth", 0)
        with self._state:
            while self._yielding and not depth:  # another process asked for the file: it goes first
                self._state.wait(sharing.POLL)
            root = self._open()
            self._active += 1
            self._holding.depth = depth + 1
            if writes:
                self._writers += 1
                self._changed()
                ticket = None
            else:
                ticket = None if self._uncached or self._writers else self._generation
        try:
            yield root, ticket
        finally:
            with self._state:
                self._active -= 1
                self._holding.depth = depth
                if writes:
                    self._writers -= 1
                    self._changed()
                    if not tracked:
                        self.marks.new_epoch()
                    self.dirty = True
                    recovery.after_write(self.path)  # before the caller is told the write is done
                self._last_used = time.monotonic()
                if self._yielding and self._active == 0 and self._conn is not None:
                    self._let_go("asked")  # the last call in flight is done: no need to wait for the watcher
                self._state.notify_all()

    @contextmanager
    def session(self, *, tracked: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A fresh cursor for one operation; the file stays open until it is done. ``tracked``:
        the caller names every table it writes with ``marks.wrote`` (as the gateway does)."""
        with self._hold(writes=True, tracked=tracked) as (root, _):
            cursor = root.cursor()
            try:
                yield cursor
            finally:
                cursor.close()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor on the open database (no idle accounting, read cache off; prefer ``session()``)."""
        return self.open().cursor()

    def write_marks(self) -> tuple[int, dict[str, int]] | None:
        """``marks.read()``; None while the file is closed (others may write it) or opened raw."""
        return None if self._conn is None or self._real_path in _RAW_PATHS else self.marks.read()

    def watch(self, callback: Callable[[frozenset[str] | None], None]) -> Callable[[], None]:
        """Hear other processes' writes (``PostgresDatabase``); a file tells no one. Returns a stop."""
        return lambda: None

    # -- the read cache ------------------------------------------------------------------
    @property
    def caching(self) -> bool:
        """Whether reads may be answered from the cache (see the class notes)."""
        return not self._uncached and self._real_path not in _RAW_PATHS

    def cached(self, key: Hashable) -> Any:
        """The cached answer for ``key``, or ``MISS``."""
        with self._state:
            if self._writers or not self.caching:
                return _MISS
            value = self._cache.get(key, _MISS)
            if value is not _MISS:
                self._cache.move_to_end(key)
            return value

    @contextmanager
    def reading(self) -> Iterator[tuple[duckdb.DuckDBPyConnection, int | None]]:
        """A fresh cursor for one read whose answer may be cached, and its ticket for ``keep``.

        Only for statements that do not write: the read does not drop the cache.
        """
        with self._hold(writes=False) as (root, ticket):
            cursor = root.cursor()
            try:
                yield cursor, ticket
            finally:
                cursor.close()

    def keep(self, key: Hashable, value: Any, ticket: int | None) -> None:
        """Cache ``value`` read under ``ticket``, unless something may have changed since."""
        with self._state:
            if ticket is None or ticket != self._generation or self._writers or not self.caching:
                return
            self._cache[key] = value
            self._cache.move_to_end(key)
            while len(self._cache) > self.read_cache:
                self._cache.popitem(last=False)

    def __enter__(self) -> Database:
        self._open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
