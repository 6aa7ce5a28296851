"""The state on a PostgreSQL server: ``Database("postgresql://…")`` returns a ``PostgresDatabase``.

The same interface as the DuckDB ``Database`` (``session()``, ``reading()``, ``hold()``,
``marks``, ``close()``...), over a ``psycopg_pool.ConnectionPool`` (at most
``MCP_STATE_PG_POOL_MAX`` connections, default 10). Every connection runs in autocommit with
``TimeZone = 'UTC'``; the gateway sends BEGIN and COMMIT itself, at READ COMMITTED. JSON
columns come back as text, for the gateway to decode as it does DuckDB's.

On first open the schema migrations are applied (several processes at once take turns;
``mcp_state.migrations``). There is no read cache (``caching`` is False: other processes
write at any time). ``marks`` follow every process's writes: the gateway announces the tables
each transaction wrote (``NOTIFY mcp_state_changes``, with its commit) and a daemon thread here
LISTENs, from the first ``write_marks()`` or ``watch(callback)`` (which hears of other writers'
transactions: for resource subscriptions) on.
The URL's password never appears in ``path``, a message or a log line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import uuid
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from mcp_state.errors import DatabaseUnavailableError, InvalidArgumentError, SchemaError

try:
    import psycopg
    import psycopg_pool
    from psycopg.conninfo import conninfo_to_dict
    from psycopg.types.string import TextLoader
except ImportError as missing:  # the driver is the optional [postgres] extra
    raise DatabaseUnavailableError(
        f"a postgresql:// database needs the PostgreSQL driver ({missing.name} is not installed): "
        'pip install "mcp-state[postgres]"'
    ) from None

from mcp_state.db import MISS, Database, lock_timeout
from mcp_state.dialect import ALL_TABLES, CHANNEL, POSTGRES
from mcp_state.migrations import apply_migrations, check_schema_version
from mcp_state.schema import LATEST_VERSION
from mcp_state.write_marks import WriteMarks

logger = logging.getLogger("mcp_state.postgres")
# The pool logs each failed attempt to connect; callers get one translated error instead (``unreachable``).
logging.getLogger("psycopg.pool").setLevel(logging.ERROR)

POOL_MAX_ENV = "MCP_STATE_PG_POOL_MAX"
DEFAULT_POOL_MAX = 10
CONNECT_TIMEOUT = 10  # seconds to reach the server before saying it cannot be reached

# A URL's password (group 2): after the user name, or as a parameter.
_PASSWORD_IN_URL = re.compile(r"(://[^:/@?#]*):([^@/?#]*)@")
_PASSWORD_PARAM = re.compile(r"([?&]password=)([^&#]*)", re.IGNORECASE)
_NOISE = re.compile(r"connection failed:\s*|connection to server at .*? failed:\s*|FATAL:\s*")


def shown_url(url: str) -> str:
    """``url`` without its password: what messages, logs and ``Database.path`` show."""
    return _PASSWORD_PARAM.sub(r"\1***", _PASSWORD_IN_URL.sub(r"\1@", url))


def _passwords(url: str) -> set[str]:
    """Every password ``url`` holds, as written and as libpq reads it (when it can)."""
    found = {m.group(2) for pattern in (_PASSWORD_IN_URL, _PASSWORD_PARAM) for m in pattern.finditer(url)}
    with contextlib.suppress(psycopg.Error):  # malformed: libpq's reason may repeat its tokens
        found.add(conninfo_to_dict(url).get("password") or "")
    return {password for password in found if password}


def pool_max() -> int:
    """The most connections one ``PostgresDatabase`` opens (``MCP_STATE_PG_POOL_MAX``)."""
    raw = os.environ.get(POOL_MAX_ENV, str(DEFAULT_POOL_MAX))
    if not raw.isdigit() or int(raw) < 1:
        raise InvalidArgumentError(
            f"{POOL_MAX_ENV} must be a whole number of connections, 1 or more; got {raw!r}"
        )
    return int(raw)


class PgCursor:
    """A psycopg cursor that takes ``?`` placeholders, as DuckDB's does (``execute`` returns it)."""

    dialect = POSTGRES

    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self.raw = cursor

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> PgCursor:
        if params is None:  # no placeholders: may hold several statements (migrations)
            self.raw.execute(sql)
        else:
            self.raw.execute(POSTGRES.to_native(sql), list(params))
        return self

    @property
    def description(self) -> Any:
        return self.raw.description

    @property
    def rowcount(self) -> int:
        return self.raw.rowcount

    def fetchone(self) -> Any:
        return self.raw.fetchone() if self.raw.description else None

    def fetchall(self) -> list[Any]:
        return self.raw.fetchall() if self.raw.description else []

    def fetchmany(self, size: int) -> list[Any]:
        return self.raw.fetchmany(size) if self.raw.description else []

    def close(self) -> None:
        self.raw.close()


class PgConnection:
    """A psycopg connection seen as DuckDB's: ``execute`` and ``cursor`` (what ``hold()`` yields)."""

    dialect = POSTGRES

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.raw = conn

    def cursor(self) -> PgCursor:
        return PgCursor(self.raw.cursor())

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> PgCursor:
        return self.cursor().execute(sql, params)

    def close(self) -> None:
        self.raw.close()


def _configure(conn: psycopg.Connection[Any], read_only: bool = False) -> None:
    """Every connection: UTC, JSON as text (the gateway decodes it), read-only if asked."""
    for name in ("json", "jsonb"):
        conn.adapters.register_loader(name, TextLoader)
    conn.execute("SET TimeZone TO 'UTC'")
    if read_only:
        conn.execute("SET default_transaction_read_only TO on")


def connect(url: str, *, read_only: bool = False) -> PgConnection:
    """One connection to ``url`` (autocommit, UTC), or ``DatabaseUnavailableError`` in one line
    saying which server could not be reached and why, without the password."""
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT)
        _configure(conn, read_only)
    except psycopg.Error as exc:
        raise unreachable(url, exc) from None
    return PgConnection(conn)


def unreachable(url: str, exc: BaseException) -> DatabaseUnavailableError:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    reason = lines[0] if lines else type(exc).__name__
    reason = _NOISE.sub("", reason).strip()
    for password in sorted(_passwords(url), key=len, reverse=True):
        reason = reason.replace(password, "***")
    return DatabaseUnavailableError(
        f"cannot connect to the PostgreSQL database {shown_url(url)}: {reason}. "
        "Check that the server is running and the URL (user, password, database) is right."
    )


class PostgresDatabase(Database):
    """The state in a PostgreSQL database (see the module notes); made by ``Database(url)``.

    ``config`` and ``on_open`` are DuckDB's (file settings, the SQL tool's hardening) and are
    not used here; ``read_cache`` is accepted and off (``caching`` is False).
    """

    dialect = POSTGRES

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        config: Mapping[str, Any] | None = None,
        idle_release: float | None = None,
        lock_wait: float | None = None,
        on_open: Any = None,
        read_cache: int = 0,
        read_only: bool = False,
        pool_size: int | None = None,
    ) -> None:
        self.url = str(path)
        self.path = shown_url(self.url)
        self.read_only = read_only
        self.config = dict(config or {})
        self.idle_release = None
        self.lock_wait = lock_wait
        self.on_open = on_open
        self.read_cache = 0
        self.pool_size = pool_size or pool_max()
        self.marks = WriteMarks()
        self.dirty = False
        self._lock = threading.RLock()
        self._pool: psycopg_pool.ConnectionPool[Any] | None = None
        self._root: PgConnection | None = None
        self._closed = False
        self._listener: threading.Thread | None = None
        self._listening = threading.Event()
        self.origin = uuid.uuid4().hex[:16]  # names this Database's own announcements
        self._watchers: list[Callable[[frozenset[str] | None], None]] = []

    # -- lifecycle -------------------------------------------------------------------
    def _open(self) -> Any:
        """The pool, opened (after migrating the schema) if it is not yet."""
        with self._lock:
            if self._closed:
                raise DatabaseUnavailableError("the database was closed; open a new one")
            if self._pool is None:
                first = connect(self.url, read_only=self.read_only)
                try:
                    self._migrate(first)
                finally:
                    first.close()
                wait = lock_timeout() if self.lock_wait is None else self.lock_wait
                pool: psycopg_pool.ConnectionPool[Any] = psycopg_pool.ConnectionPool(
                    self.url,
                    min_size=1,
                    max_size=self.pool_size,
                    kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT},
                    configure=lambda conn: _configure(conn, self.read_only),
                    timeout=max(wait, 1.0),
                    name="mcp-state",
                    open=False,
                )
                pool.open(wait=False)
                self._pool = pool
            return self._pool

    def _migrate(self, conn: PgConnection) -> None:
        try:
            if not self.read_only:
                apply_migrations(conn)
            elif (version := check_schema_version(conn)) < LATEST_VERSION:
                raise SchemaError(
                    f"the database {self.path} has schema version {version}, older than this mcp-state "
                    f"({LATEST_VERSION}); a read-only open cannot upgrade it: open it once read-write."
                )
        except psycopg.Error as exc:
            raise unreachable(self.url, exc) from None

    def open(self) -> Any:
        """A connection of this database's own (``execute``/``cursor``), open until ``close()``."""
        with self._lock:
            self._open()
            if self._root is None:
                self._root = connect(self.url, read_only=self.read_only)
            return self._root

    @property
    def is_open(self) -> bool:
        return self._pool is not None and not self._closed

    def release(self) -> bool:
        return False  # a server is shared by design: nothing to let go of

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
            root, self._root = self._root, None
        # The listener notices within half a second and closes its connection (not waited for).
        if root is not None:
            root.close()
        if pool is not None:
            pool.close()

    def watch(self, callback: Callable[[frozenset[str] | None], None]) -> Callable[[], None]:
        """Call ``callback(tables)`` (on the listener's thread) after each transaction that another
        process, or another ``Database``, committed here; None: tables it could not name. This
        Database's own writes are not reported (their caller knows them). Returns how to stop."""
        self._watchers.append(callback)
        self._start_listening()

        def stop() -> None:
            if callback in self._watchers:
                self._watchers.remove(callback)

        return stop

    def _start_listening(self) -> None:
        """The listener starts with the first caller of ``watch`` or ``write_marks`` (one connection)."""
        with self._lock:
            if self._listener is None and not self._closed:
                self._listener = threading.Thread(target=self._listen, name="mcp-state-listen", daemon=True)
                self._listener.start()

    def _listen(self) -> None:
        """Feed ``marks`` (and the watchers) with the tables other writers' transactions announced."""
        pause = 0.5
        while not self._closed:
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._heard(None)  # whatever happened before listening went unseen
                    self._listening.set()
                    pause = 0.5
                    while not self._closed:
                        for note in conn.notifies(timeout=0.5):
                            origin, _, names = note.payload.rpartition("|")
                            if origin != self.origin:
                                tables = (
                                    None if names == ALL_TABLES else frozenset(filter(None, names.split(",")))
                                )
                                self._heard(tables)
            except psycopg.Error:
                if self._listening.is_set():
                    self._listening.clear()
                    self._heard(None)
                pause = min(pause * 2, 30.0)  # the server may be restarting: try again, less and less often
                if not self._closed:
                    threading.Event().wait(pause)

    def _heard(self, tables: frozenset[str] | None) -> None:
        self.marks.wrote(tables)
        for callback in list(self._watchers):
            try:
                callback(tables)
            except Exception:  # a watcher's failure must not stop the others or the listener
                logger.exception("a watcher of %s failed", self.path)

    # -- operations --------------------------------------------------------------------
    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        pool = self._open()
        try:
            context = pool.connection()
            conn = context.__enter__()
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            raise POSTGRES.translate(exc) from None
        try:
            yield conn
        except BaseException as exc:
            context.__exit__(type(exc), exc, exc.__traceback__)
            raise
        else:
            context.__exit__(None, None, None)

    @contextmanager
    def hold(self) -> Iterator[Any]:
        """One pooled connection for the block (``execute``/``cursor``)."""
        with self._connection() as conn:
            yield PgConnection(conn)
        self.marks.new_epoch()

    @contextmanager
    def session(self, *, tracked: bool = False) -> Iterator[Any]:
        with self._connection() as conn:
            cursor = PgCursor(conn.cursor())
            try:
                yield cursor
            finally:
                cursor.close()
        if not tracked:
            self.marks.new_epoch()

    @contextmanager
    def reading(self) -> Iterator[tuple[Any, int | None]]:
        with self._connection() as conn:
            cursor = PgCursor(conn.cursor())
            try:
                yield cursor, None
            finally:
                cursor.close()

    def cursor(self) -> Any:
        return self.open().cursor()

    def write_marks(self) -> tuple[int, dict[str, int]] | None:
        """``marks.read()`` once other writers are listened to (the first call starts listening: None)."""
        self._start_listening()
        return self.marks.read() if self._listening.is_set() else None

    # -- no read cache -------------------------------------------------------------------
    @property
    def caching(self) -> bool:
        return False

    def cached(self, key: Hashable) -> Any:
        return MISS

    def keep(self, key: Hashable, value: Any, ticket: int | None) -> None:
        return None

    def __enter__(self) -> PostgresDatabase:
        self._open()
        return self
