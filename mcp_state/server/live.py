"""Live state: resource subscriptions, log messages and progress, on both protocol eras.

- **Subscriptions.** A client subscribes to ``state://sync``, ``state://sync/{table_id}``,
  ``state://knowledge/{item_id}``, ``state://tables/{table_id}``, ``state://users/{user_id}``
  or ``state://audit/recent``: with ``resources/subscribe`` up to 2025-11-25, with a
  ``subscriptions/listen`` stream from 2026-07-28. When a write of *this process* commits, the
  write wrapper (``server/audit.py``) calls ``Live.committed`` and every subscriber of an
  affected URI gets ``notifications/resources/updated`` at once. On PostgreSQL, other processes'
  committed writes are heard too (``Database.watch``: the tables each transaction wrote, through
  LISTEN/NOTIFY): every subscribed URI whose resource reads one of those tables (``reads``) is
  updated the same way, from the server's event loop (``Live.watching``, for the lifespan).
  A file tells no one: another process's change to it is seen when a client next reads.
- **Logging.** ``logging/setLevel`` (up to 2025-11-25), or the request's own log level (from
  2026-07-28): warnings of the ``mcp_state`` loggers (a call waiting for the database lock, a
  query stopped by its time limit, a refused bearer token) go to those clients
  as ``notifications/message``, as well as to stderr. Log messages never carry secrets.
- **Progress.** A call that runs longer than a second sends ``notifications/progress`` every
  second while it runs, when its request carries a progress token (``Live.ticking``).

Capabilities say only what is sent: ``resources.subscribe`` and ``logging``, no
``listChanged`` (tools, prompts and resources never change while the server runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import time
import warnings
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any, cast

from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.session import ServerSession
from mcp.server.subscriptions import InMemorySubscriptionBus, ResourceUpdated, ServerEvent
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp_types import (
    DiscoverResult,
    EmptyResult,
    LoggingLevel,
    RequestParams,
    SetLevelRequestParams,
    SubscribeRequestParams,
    SubscriptionsListenRequestParams,
    UnsubscribeRequestParams,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from mcp_state.db import Database

logger = logging.getLogger("mcp_state.server")

PROGRESS_EVERY = 1.0
AUDIT = "state://audit/recent"
LEVELS: tuple[LoggingLevel, ...] = (
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
)
_PY_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "notice": logging.INFO,
    "warning": logging.WARNING,
}
# The session of the request being served, for log messages emitted while it runs (2026-07-28).
_current: contextvars.ContextVar[tuple[ServerSession, asyncio.AbstractEventLoop] | None] = (
    contextvars.ContextVar("mcp_state_request", default=None)
)


def affected(tool: str, toolset: str, arguments: Mapping[str, Any]) -> set[str]:
    """The resource URIs a committed call of ``tool`` with ``arguments`` changes."""
    uris = {AUDIT}  # every write is audited

    def named(*keys: str) -> str | None:
        return next((str(arguments[k]) for k in keys if arguments.get(k) is not None), None)

    if tool == "record_sync" and (table := named("table_id")):
        uris |= {"state://sync", f"state://sync/{table}", f"state://sync/{table}/history"}
        uris.add(f"state://tables/{table}")
    elif (toolset in ("users", "notifications") or tool == "set_sync_settings") and (
        user := named("user_id", "id")
    ):
        uris.add(f"state://users/{user}")
    elif toolset == "knowledge" and (item := named("item_id", "id")):
        uris.add(f"state://knowledge/{item}")
    elif toolset == "registry" and (table := named("table_id", "id")):
        uris.add(f"state://tables/{table}")
    return uris


# The tables each resource reads, for writes of other processes (heard as the tables they wrote).
_USER_TABLES = frozenset({"users", "dataset_permissions", "user_sync_settings", "telegram_links"})
_READS: tuple[tuple[str, str, frozenset[str]], ...] = (  # (prefix, suffix, tables), first match wins
    (AUDIT, "", frozenset({"audit_log"})),
    ("state://sync/", "/history", frozenset({"sync_history"})),
    ("state://sync", "", frozenset({"sync_state"})),
    ("state://knowledge/", "", frozenset({"knowledge_items", "knowledge_votes"})),
    ("state://users/", "", _USER_TABLES),
    ("state://tables/", "", frozenset({"table_registry", "table_profiles", "sync_state"})),
)


def reads(uri: str) -> frozenset[str]:
    """The tables the resource at ``uri`` reads (none for ``state://schema``: it never changes)."""
    bare = uri.split("?", 1)[0]
    for prefix, suffix, tables in _READS:
        if bare.startswith(prefix) and bare.endswith(suffix):
            return tables
    return frozenset()


def _mcp_level(levelno: int) -> LoggingLevel:
    if levelno >= logging.CRITICAL:
        return "critical"
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warning"
    return "info" if levelno >= logging.INFO else "debug"


def _connection(ctx: ServerRequestContext[Any]) -> Connection:
    """The client's connection (one per client; ``ctx.session`` is one per request)."""
    return cast(Connection, ctx.session._connection)  # the SDK exposes it to handlers only this way


def _log_message(
    to: ServerSession | Connection, level: LoggingLevel, data: str, name: str
) -> Coroutine[Any, Any, None]:
    """A ``notifications/message``: on a request's session (its stream, if it opted in) or a connection."""
    with warnings.catch_warnings():  # deprecated from 2026-07-28 (SEP-2577), still the way to send one
        warnings.simplefilter("ignore", MCPDeprecationWarning)
        if isinstance(to, Connection):
            return to.log(level, data, name)
        return to.send_log_message(level, data, name)


def _first_line(record: logging.LogRecord) -> str:
    """What a client is told: the message's first line (a crash's code path stays in the server log)."""
    message = record.getMessage()
    return message.splitlines()[0] if message else message


def _send(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any]) -> None:
    """Run ``coro`` on ``loop`` from any thread: waited for (briefly) from a worker thread, so a
    message about a request goes out before its response; scheduled from the loop's own thread."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    try:
        if loop.is_closed():
            coro.close()
        elif running is loop:
            loop.create_task(coro)
        else:
            asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=1.0)
    except Exception:  # a client gone or slow must not break the call that logged
        pass


class _Bus(InMemorySubscriptionBus):
    """The SDK's in-process bus, counting its listeners so a write with none publishes nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.listeners = 0

    def subscribe(self, listener: Callable[[ServerEvent], None]) -> Callable[[], None]:
        unsubscribe = super().subscribe(listener)
        self.listeners += 1
        done = False

        def once() -> None:
            nonlocal done
            if not done:
                done = True
                self.listeners -= 1
            unsubscribe()

        return once


class Live:
    """One server's subscribers and log listeners."""

    def __init__(self) -> None:
        self.bus = _Bus()  # subscriptions/listen streams (2026-07-28)
        # Handshake-era clients, by connection: subscribed URIs; log level (and the loop to send on).
        self._subscribed: dict[int, tuple[Connection, set[str]]] = {}
        self._logging: dict[int, tuple[Connection, asyncio.AbstractEventLoop, int]] = {}
        self._listened: Counter[str] = Counter()  # URIs of the open subscriptions/listen streams
        _HANDLER.servers.add(self)

    def install(self, mcp: MCPServer[Any]) -> None:
        lowlevel = mcp._lowlevel_server  # the SDK has no public way to add these handlers
        lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, self._subscribe)
        lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, self._unsubscribe)
        lowlevel.add_request_handler("logging/setLevel", SetLevelRequestParams, self._set_level)

        async def discover(ctx: ServerRequestContext[Any], params: RequestParams | None) -> DiscoverResult:
            # 2026-07-28: the SDK claims every listChanged flag; none of those lists ever changes here.
            result = await lowlevel._handle_discover(ctx, params)
            caps = result.capabilities
            for name in ("tools", "prompts", "resources"):
                cap = getattr(caps, name)
                if cap is not None:
                    setattr(caps, name, cap.model_copy(update={"list_changed": False}))
            return result

        lowlevel.add_request_handler("server/discover", RequestParams, discover)
        listen = lowlevel._request_handlers.get("subscriptions/listen")
        if listen is not None:  # the SDK's stream handler, noting which URIs its streams watch
            inner = listen.handler

            async def listening(
                ctx: ServerRequestContext[Any], params: SubscriptionsListenRequestParams
            ) -> Any:
                uris = [str(uri) for uri in params.notifications.resource_subscriptions or ()]
                self._listened.update(uris)
                try:
                    return await inner(ctx, params)
                finally:
                    self._listened.subtract(uris)
                    self._listened += Counter()  # drops the URIs no stream watches any more

            lowlevel.add_request_handler("subscriptions/listen", SubscriptionsListenRequestParams, listening)

    async def _subscribe(self, ctx: ServerRequestContext[Any], params: SubscribeRequestParams) -> EmptyResult:
        connection = _connection(ctx)
        _, uris = self._subscribed.setdefault(id(connection), (connection, set()))
        uris.add(str(params.uri))
        return EmptyResult()

    async def _unsubscribe(
        self, ctx: ServerRequestContext[Any], params: UnsubscribeRequestParams
    ) -> EmptyResult:
        entry = self._subscribed.get(id(_connection(ctx)))
        if entry is not None:
            entry[1].discard(str(params.uri))
        return EmptyResult()

    async def _set_level(self, ctx: ServerRequestContext[Any], params: SetLevelRequestParams) -> EmptyResult:
        level = _PY_LEVELS.get(params.level, logging.ERROR)
        connection = _connection(ctx)
        self._logging[id(connection)] = (connection, asyncio.get_running_loop(), level)
        return EmptyResult()

    async def committed(self, uris: Iterable[str]) -> None:
        """Tell every subscriber of ``uris`` that they changed (a write of this process committed)."""
        if not (self.bus.listeners or self._subscribed):
            return
        for uri in sorted(uris):
            if self.bus.listeners:
                await self.bus.publish(ResourceUpdated(uri=uri))
            for key, (connection, subscribed) in list(self._subscribed.items()):
                if uri in subscribed:
                    try:
                        await connection.send_resource_updated(uri)
                    except Exception:  # the client went away
                        self._subscribed.pop(key, None)

    def watching(self, db: Database) -> Callable[[], None]:
        """Until the returned stop: tell subscribers of the writes other processes commit to ``db``
        (called on the server's event loop; the database calls back on its listener's thread)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on asyncio (trio): subscribers see other processes' changes on reading
            return lambda: None

        def heard(tables: frozenset[str] | None) -> None:
            if (self.bus.listeners or self._subscribed) and not loop.is_closed():
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: no one to tell
                    asyncio.run_coroutine_threadsafe(self.changed(tables), loop)

        return db.watch(heard)

    async def changed(self, tables: frozenset[str] | None) -> None:
        """Another process committed writes to ``tables`` (None: any): update the URIs reading them."""
        subscribed = set(self._listened)
        for _, uris in list(self._subscribed.values()):
            subscribed |= uris
        await self.committed(uri for uri in subscribed if tables is None or reads(uri) & tables)

    def log(self, record: logging.LogRecord) -> None:
        """Send a log record to the clients that asked for its level."""
        level = _mcp_level(record.levelno)
        data = _first_line(record)
        for key, (connection, loop, wanted) in list(self._logging.items()):
            if record.levelno >= wanted:
                if loop.is_closed():
                    self._logging.pop(key, None)
                    continue
                _send(loop, _log_message(connection, level, data, record.name))

    @asynccontextmanager
    async def ticking(
        self, ctx: Context[Any, Any], what: str, waiting: Callable[[], bool] = lambda: False
    ) -> AsyncIterator[None]:
        """While the body runs: progress every second (when asked for), log messages of this request,
        and a warning once if, after a second, it is still ``waiting`` for the database's lock."""
        session = ctx.request_context.session
        loop = asyncio.get_running_loop()
        reset = _current.set((session, loop))
        started = time.monotonic()
        sending: set[asyncio.Task[None]] = set()
        warned = False
        handle: asyncio.TimerHandle | None = None

        def tick() -> None:  # on the loop, every second; a timer costs far less than a task per call
            nonlocal handle, warned
            seconds = time.monotonic() - started
            if not warned and waiting():
                warned = True
                logger.warning("%s is waiting for the database, which another process holds", what)
            doing = "waiting for the database" if waiting() else "running"
            message = f"{what}: {doing} for {seconds:.0f} s"
            progress = functools.partial(session.report_progress, round(seconds, 1), None, message)
            task = loop.create_task(_quietly(progress))
            sending.add(task)
            task.add_done_callback(sending.discard)
            handle = loop.call_later(PROGRESS_EVERY, tick)

        handle = loop.call_later(PROGRESS_EVERY, tick)
        try:
            yield
        finally:
            if handle is not None:
                handle.cancel()
            for task in list(sending):
                task.cancel()
            _current.reset(reset)


async def _quietly(send: Callable[[], Awaitable[None]]) -> None:
    """Await ``send()``, made only once the task runs: a task cancelled before it starts (the
    call ended first) leaves no coroutine that was never awaited."""
    with contextlib.suppress(Exception):  # a client gone or a stream closed: nothing to tell
        await send()


class _Forward(logging.Handler):
    """Forwards ``mcp_state`` log records to the clients of every live server."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.servers: weakref.WeakSet[Live] = weakref.WeakSet()

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):  # logging must never break the call that logged
            self._forward(record)

    def _forward(self, record: logging.LogRecord) -> None:
        current = _current.get()
        if current is not None and record.levelno >= logging.WARNING:
            session, loop = current
            # 2026-07-28: sent only if this request opted in (its _meta log level); SDK-checked.
            if session.protocol_version in MODERN_PROTOCOL_VERSIONS:
                _send(
                    loop, _log_message(session, _mcp_level(record.levelno), _first_line(record), record.name)
                )
        for live in list(self.servers):
            live.log(record)


_HANDLER = _Forward()
logging.getLogger("mcp_state").addHandler(_HANDLER)


def live_of(ctx: Context[Any, Any]) -> Live | None:
    return cast(Live | None, getattr(ctx.mcp_server, "live", None))
