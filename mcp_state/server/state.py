"""Server settings and the state a running server holds: one open database and its repositories.

``open_database(settings)`` is the one place the server's ``Database`` is built, so that
toolsets with their own needs (the read-only SQL engine's connection config and
``on_open`` hook) can be passed through it. ``Runtime`` owns the lifespan: the first
connection opens the state, the last one to leave closes it.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import duckdb

from mcp_state.db import DEFAULT_IDLE_RELEASE, Database, lock_timeout
from mcp_state.errors import DatabaseUnavailableError, InvalidArgumentError
from mcp_state.gateway import Gateway
from mcp_state.repositories.audit import AuditRepository
from mcp_state.repositories.knowledge import KnowledgeRepository
from mcp_state.repositories.notifications import PendingCodeRepository, ScriptRepository, TelegramRepository
from mcp_state.repositories.permissions import DatasetPermissionRepository
from mcp_state.repositories.profiles import ProfileRepository
from mcp_state.repositories.sync_settings import SyncSettingsRepository
from mcp_state.repositories.sync_state import SyncStateRepository
from mcp_state.repositories.table_registry import TableRegistryRepository
from mcp_state.repositories.tokens import TokenRepository
from mcp_state.repositories.users import UserRepository
from mcp_state.server.results import max_result_chars
from mcp_state.server.sessions import (
    DEFAULT_MAX_SESSIONS,
    DEFAULT_MAX_SESSIONS_PER_ACTOR,
    DEFAULT_SESSION_IDLE,
)
from mcp_state.sharing import database_location
from mcp_state.sql.engine import ReadOnlySql, sql_engine_for
from mcp_state.sql.hardening import harden, hardened_config

Transport = Literal["stdio", "http"]
DEFAULT_PORT = 8765
DEFAULT_CODE_TTL = 600.0
READ_CACHE_ROWS = 1024


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise InvalidArgumentError(f"{name} must be a number of seconds; got {raw!r}") from None


def _env_count(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise InvalidArgumentError(f"{name} must be a whole number of at least 1; got {raw!r}")
    return int(raw)


def default_actor() -> str:
    """``MCP_STATE_ACTOR``, else the operating-system user, else ``local``."""
    actor = os.environ.get("MCP_STATE_ACTOR", "").strip()
    if actor:
        return actor
    try:
        return getpass.getuser() or "local"
    except (KeyError, OSError):
        return "local"


@dataclass(frozen=True)
class ServerSettings:
    """How one server runs. ``None`` fields are filled from the environment by ``resolved()``."""

    db_path: str | None = None
    read_only: bool = False
    toolsets: tuple[str, ...] | None = None
    actor: str | None = None
    transport: Transport = "stdio"
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    allowed_hosts: tuple[str, ...] = ()
    lock_timeout: float | None = None
    idle_release: float | None = None
    code_ttl: float | None = None
    # HTTP sessions: caps in total and per token actor, and the idle time after which one closes.
    max_sessions: int | None = None
    max_sessions_per_actor: int | None = None
    session_idle: float | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "WARNING"
    max_result_chars: int | None = None

    def serves(self, toolset: str) -> bool:
        """Whether ``toolset`` (its tools, resources and prompts) is served: ``--toolsets``."""
        return self.toolsets is None or toolset in self.toolsets

    def resolved(self) -> ServerSettings:
        """These settings with every ``None`` taken from the environment (read now, not at import)."""
        return replace(
            self,
            db_path=database_location(self.db_path),
            actor=self.actor or default_actor(),
            lock_timeout=lock_timeout() if self.lock_timeout is None else self.lock_timeout,
            idle_release=(
                _env_float("MCP_STATE_IDLE_RELEASE", DEFAULT_IDLE_RELEASE)
                if self.idle_release is None
                else self.idle_release
            ),
            max_result_chars=max_result_chars(self.max_result_chars),
            code_ttl=_env_float("MCP_STATE_CODE_TTL", DEFAULT_CODE_TTL)
            if self.code_ttl is None
            else self.code_ttl,
            max_sessions=self.max_sessions or _env_count("MCP_STATE_MAX_SESSIONS", DEFAULT_MAX_SESSIONS),
            max_sessions_per_actor=self.max_sessions_per_actor
            or _env_count("MCP_STATE_MAX_SESSIONS_PER_ACTOR", DEFAULT_MAX_SESSIONS_PER_ACTOR),
            session_idle=self.session_idle or _env_float("MCP_STATE_SESSION_IDLE", DEFAULT_SESSION_IDLE),
        )


def open_database(
    settings: ServerSettings,
    *,
    config: Mapping[str, Any] | None = None,
    on_open: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
) -> Database:
    """The server's database (opened lazily, let go when another process asks for it).

    With ``settings.read_only`` the file is opened read-only (it must exist).

    Hardened for the read-only SQL tool by default (no file access beyond the database, no
    extension loading, configuration locked): the SQL tool and the other tools share it.
    Lookups by key are cached (``READ_CACHE_ROWS`` rows; see ``Database`` for why a cached
    answer is never stale): an agent reads the same rows again and again.
    """
    if not settings.db_path:
        raise DatabaseUnavailableError("no database: pass --db, or set MCP_STATE_DATABASE_URL or DATA_DIR")
    # (The file settings, cache and release are DuckDB's: PostgreSQL's Database does not use them.)
    return Database(
        settings.db_path,
        config=hardened_config(settings.db_path) if config is None else config,
        idle_release=settings.idle_release,
        lock_wait=settings.lock_timeout,
        on_open=harden if on_open is None else on_open,
        read_cache=READ_CACHE_ROWS,
        read_only=settings.read_only,
    )


@dataclass(frozen=True)
class Repos:
    """Every repository, on one gateway: calls inside ``gateway.transaction()`` share it."""

    gateway: Gateway
    sync_state: SyncStateRepository
    sync_settings: SyncSettingsRepository
    users: UserRepository
    permissions: DatasetPermissionRepository
    knowledge: KnowledgeRepository
    audit: AuditRepository
    telegram: TelegramRepository
    codes: PendingCodeRepository
    scripts: ScriptRepository
    registry: TableRegistryRepository
    profiles: ProfileRepository
    tokens: TokenRepository

    @classmethod
    def on(cls, db: Database, code_ttl: float = DEFAULT_CODE_TTL) -> Repos:
        g = Gateway(db)
        return cls(
            gateway=g,
            sync_state=SyncStateRepository(g),
            sync_settings=SyncSettingsRepository(g),
            users=UserRepository(g),
            permissions=DatasetPermissionRepository(g),
            knowledge=KnowledgeRepository(g),
            audit=AuditRepository(g),
            telegram=TelegramRepository(g),
            codes=PendingCodeRepository(g, ttl=code_ttl),
            scripts=ScriptRepository(g),
            registry=TableRegistryRepository(g),
            profiles=ProfileRepository(g),
            tokens=TokenRepository(g),
        )


@dataclass
class AppState:
    """What the lifespan yields: ``ctx.request_context.lifespan_context`` in every handler."""

    settings: ServerSettings
    db: Database
    repos: Repos = field(repr=False)
    sql: ReadOnlySql = field(repr=False)
    unwatch: Callable[[], None] = field(default=lambda: None, repr=False)

    def close(self) -> None:
        self.unwatch()  # other processes' writes (PostgreSQL): no subscriber to tell any more
        self.sql.close()
        self.db.close()


class Runtime:
    """Opens the state for the first connection and closes it after the last one.

    Handlers reach the state through their context; static resources, completions and the
    HTTP token check (which get no context) through ``Runtime.state``.
    """

    def __init__(
        self, settings: ServerSettings, open_db: Callable[[ServerSettings], Database] = open_database
    ):
        self.settings = settings
        self._open_db = open_db
        self._state: AppState | None = None
        self._users = 0

    @property
    def state(self) -> AppState:
        if self._state is None:
            raise DatabaseUnavailableError("the server is not running (its lifespan has not started)")
        return self._state

    @asynccontextmanager
    async def lifespan(self, server: object) -> AsyncIterator[AppState]:
        if self._state is None:
            db = self._open_db(self.settings)
            self._state = AppState(
                self.settings,
                db,
                Repos.on(db, self.settings.code_ttl or DEFAULT_CODE_TTL),
                sql_engine_for(db),
            )
            live = getattr(server, "live", None)  # the server's subscribers (server/live.py)
            if live is not None:
                self._state.unwatch = live.watching(db)
        self._users += 1
        try:
            yield self._state
        finally:
            self._users -= 1
            if self._users == 0 and self._state is not None:
                state, self._state = self._state, None
                state.close()
