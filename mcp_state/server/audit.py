"""The one wrapper every tool call goes through: identity, scope, transaction, audit, errors.

A tool is a plain function ``fn(call, **arguments)`` whose body calls a repository method;
``Toolset.read`` / ``Toolset.write`` describe it, ``register_tools`` turns it into an MCP
tool. Each call of a mutating tool writes exactly one ``audit_log`` row: on success in the
same transaction as the change, on failure (after the rollback) on its own, except when the
file is held by another process (see ``record_failure``). Reads are not audited. Writes run on a worker thread (they may wait for the write lock); see ``run_tool``
for reads.
"""

from __future__ import annotations

import inspect
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated, Any, cast

import anyio.to_thread
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import TypeAdapter

from mcp_state.errors import DatabaseLockedError, PermissionDeniedError
from mcp_state.server import confirm
from mcp_state.server.authz import allows
from mcp_state.server.errors import error_kind, permission_denied, tool_error
from mcp_state.server.live import AUDIT, affected, live_of
from mcp_state.server.results import DEFAULT_MAX_RESULT_CHARS, tool_result
from mcp_state.server.state import AppState, Repos, ServerSettings

logger = logging.getLogger("mcp_state.server")

REDACTED = "[redacted]"
_SECRET_KEY = re.compile(
    r"pass(word|wd|phrase)?|secret|token|api[_-]?key|credential|authorization|cookie", re.IGNORECASE
)
_SECRET_NAMES = frozenset({"code", "pending_code", "one_time_code", "verification_code", "otp", "pin"})
_MAX_TEXT = 500
_MAX_NAME = 100
_MAX_KEYS = 50
_MAX_ITEMS = 100
# The most JSON characters one audit row's params may hold.
MAX_PARAMS_CHARS = 4096


@dataclass(frozen=True)
class Caller:
    """Who is calling: the audit actor and the scope of their credential."""

    actor: str
    scope: str


@dataclass(frozen=True, slots=True)
class Call:
    """What a tool body gets besides its arguments."""

    repos: Repos
    actor: str
    scope: str  # of the caller's credential: read, write or admin (stdio: admin)
    budget: int = DEFAULT_MAX_RESULT_CHARS  # the result budget, for tools that read large fields in parts


Resource = str | Callable[[Mapping[str, Any], Any], str | None] | None


@dataclass(frozen=True)
class ToolSpec:
    fn: Callable[..., Any]
    name: str
    title: str
    description: str
    scope: str = "read"
    destructive: bool = False
    idempotent: bool = True
    resource: Resource = None
    hint: str = ""
    toolset: str = ""

    @property
    def mutating(self) -> bool:
        return self.scope != "read"

    def annotations(self) -> ToolAnnotations:
        return ToolAnnotations(
            title=self.title,
            read_only_hint=not self.mutating,
            destructive_hint=self.destructive,
            idempotent_hint=self.idempotent,
            open_world_hint=False,
        )

    def resource_of(self, arguments: Mapping[str, Any], result: Any = None) -> str | None:
        if self.resource is None:
            return None
        if isinstance(self.resource, str):
            value = arguments.get(self.resource)
            return None if value is None else str(value)
        try:
            return self.resource(arguments, result)
        except (KeyError, TypeError):
            return None

    @cached_property
    def output(self) -> TypeAdapter[Any]:
        """Checks a result against the output schema before its transaction commits."""
        return TypeAdapter(inspect.signature(self.fn, eval_str=True).return_annotation)


@dataclass
class Toolset:
    """The tools of one domain; ``--toolsets`` picks toolsets by name."""

    name: str
    hint: str = ""
    specs: list[ToolSpec] = field(default_factory=list)

    def read(
        self, title: str, *, hint: str | None = None
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return self._add(title=title, scope="read", hint=hint)

    def write(
        self,
        title: str,
        *,
        resource: Resource,
        destructive: bool,
        idempotent: bool,
        scope: str = "write",
        hint: str | None = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return self._add(
            title=title,
            scope=scope,
            resource=resource,
            destructive=destructive,
            idempotent=idempotent,
            hint=hint,
        )

    def _add(
        self, *, title: str, hint: str | None, **kwargs: Any
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            spec = ToolSpec(
                fn=fn,
                name=fn.__name__,
                title=title,
                description=inspect.getdoc(fn) or "",
                hint=self.hint if hint is None else hint,
                toolset=self.name,
                **kwargs,
            )
            self.specs.append(spec)
            return fn

        return decorator

    def register(self, mcp: MCPServer[Any], settings: ServerSettings) -> None:
        register_tools(mcp, self.specs, settings)


def register_tools(mcp: MCPServer[Any], specs: list[ToolSpec], settings: ServerSettings) -> None:
    """Add each spec as a tool (only the reads when ``settings.read_only``)."""
    audited: dict[str, ToolSpec] | None = getattr(mcp, "audited_tools", None)
    for spec in specs:
        if settings.read_only and spec.mutating:
            continue
        mcp.add_tool(
            _handler(spec),
            name=spec.name,
            title=spec.title,
            description=spec.description,
            annotations=spec.annotations(),
            structured_output=True,
        )
        if audited is not None and spec.mutating:
            audited[spec.name] = spec


def _handler(spec: ToolSpec) -> Callable[..., Any]:
    """An async function with the body's parameters (minus ``call``) plus the MCP context."""
    sig = inspect.signature(spec.fn, eval_str=True)
    params = list(sig.parameters.values())[1:]

    async def handler(ctx: Context, **arguments: Any) -> Any:
        confirmation = arguments.pop(confirm.PARAMETER, None)
        return await run_tool(spec, ctx, arguments, confirmation)

    ctx_param = inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context)
    if spec.name in confirm.CONFIRMED:  # asked before the body runs (the SDK fills it; not in the schema)
        params.append(
            confirm.parameter(
                spec.title, [p.name for p in params if p.default is p.empty], lambda ctx: _may_call(spec, ctx)
            )
        )
    # The SDK publishes (and checks results against) the body's return type; the handler returns
    # the result already rendered within the budget (results.tool_result).
    returns = Annotated[CallToolResult, sig.return_annotation]
    handler.__signature__ = sig.replace(parameters=[*params, ctx_param], return_annotation=returns)  # type: ignore[attr-defined]
    handler.__annotations__ = {p.name: p.annotation for p in params} | {"ctx": Context, "return": returns}
    handler.__name__ = handler.__qualname__ = spec.name
    handler.__doc__ = spec.description
    return handler


def caller_of(ctx: Context, settings: ServerSettings) -> Caller:
    """Over HTTP: the bearer token's actor and scope. Over stdio: the configured actor, full scope."""
    if settings.transport != "http":
        return Caller(settings.actor or "local", "admin")
    user = None
    request = ctx.request_context.request
    scope = getattr(request, "scope", None)
    if isinstance(scope, Mapping):
        user = scope.get("user")
    token = getattr(user, "access_token", None)
    if token is None:
        token = get_access_token()
    if token is None:
        return Caller("anonymous", "none")
    return Caller(token.client_id, token.scopes[0] if token.scopes else "read")


def _may_call(spec: ToolSpec, ctx: Context) -> bool:
    state = cast(AppState, ctx.request_context.lifespan_context)
    return allows(caller_of(ctx, state.settings).scope, spec.scope)


async def run_tool(
    spec: ToolSpec, ctx: Context, arguments: dict[str, Any], confirmation: Any = None
) -> CallToolResult:
    """The call's value, rendered within the result budget (and the untrusted-data boundary)."""
    state = cast(AppState, ctx.request_context.lifespan_context)
    value = await _run(spec, ctx, state, arguments, confirmation)
    return tool_result(value, _budget(state), name=spec.name)


def _budget(state: AppState) -> int:
    return state.settings.max_result_chars or DEFAULT_MAX_RESULT_CHARS


async def _run(
    spec: ToolSpec, ctx: Context, state: AppState, arguments: dict[str, Any], confirmation: Any
) -> Any:
    started = time.perf_counter()
    caller = caller_of(ctx, state.settings)
    if not spec.mutating and state.settings.transport == "stdio" and state.db.is_open:
        # One client and the file already open: the read costs less than a hop to a worker
        # thread. Over HTTP (many clients), and when the file may need opening (which can
        # wait for another process's lock), reads run on a worker thread like writes.
        return _read(spec, state, caller, arguments)
    live = live_of(ctx)
    if live is None:
        return await _threaded(spec, state, caller, arguments, started, confirmation)
    # Progress while it runs; a warning if it waits for the file (opened on demand, held by another process).
    async with live.ticking(ctx, spec.name, waiting=lambda: not state.db.is_open):
        try:
            result = await _threaded(spec, state, caller, arguments, started, confirmation)
        except Exception:
            if spec.mutating:
                await live.committed({AUDIT})  # the failure's audit row
            raise
    if spec.mutating:  # committed: tell the subscribers of what changed
        await live.committed(affected(spec.name, spec.toolset, arguments))
    return result


async def _threaded(
    spec: ToolSpec,
    state: AppState,
    caller: Caller,
    arguments: dict[str, Any],
    started: float,
    confirmation: Any,
) -> Any:
    if spec.mutating:
        return await anyio.to_thread.run_sync(_write, spec, state, caller, arguments, started, confirmation)
    return await anyio.to_thread.run_sync(_read, spec, state, caller, arguments)


def _read(spec: ToolSpec, state: AppState, caller: Caller, arguments: dict[str, Any]) -> Any:
    try:
        _require_scope(spec, caller)
        return spec.fn(Call(state.repos, caller.actor, caller.scope, _budget(state)), **arguments)
    except Exception as exc:
        raise tool_error(spec.name, exc, spec.hint) from None


def _write(
    spec: ToolSpec,
    state: AppState,
    caller: Caller,
    arguments: dict[str, Any],
    started: float,
    confirmation: Any = None,
) -> Any:
    repos = state.repos
    try:
        _require_scope(spec, caller)
        if confirmation is not None:
            confirm.check(confirmation, spec.name)
        # The body and its audit row are one unit: run again whole if it collided with a concurrent one.
        return repos.gateway.retrying(_audited, spec, repos, caller, arguments, started, _budget(state))
    except Exception as exc:
        record_failure(state, spec, caller, arguments, error_kind(exc), started)
        raise tool_error(spec.name, exc, spec.hint) from None


def _audited(
    spec: ToolSpec, repos: Repos, caller: Caller, arguments: dict[str, Any], started: float, budget: int
) -> Any:
    """The tool body and its audit row, in one transaction."""
    with repos.gateway.transaction():
        result = spec.fn(Call(repos, caller.actor, caller.scope, budget), **arguments)
        spec.output.validate_python(result)
        repos.audit.log(
            user_id=caller.actor,
            action=spec.name,
            resource=_cut(spec.resource_of(arguments, result)),
            params=redact(arguments),
            result="ok",
            duration_ms=_elapsed_ms(started),
        )
    return result


def record_failure(
    state: AppState,
    spec: ToolSpec,
    caller: Caller,
    arguments: Mapping[str, Any],
    kind: str,
    started: float,
    refused: bool = False,
) -> None:
    """The audit row of a failed call, in its own transaction (the change was rolled back).

    A call that failed because another process holds the file gets none: writing it would wait
    for the same lock again, doubling the bounded wait the caller was promised.
    """
    if kind == DatabaseLockedError.kind and not state.db.is_open:
        logger.warning(
            "no audit row for a %s call that failed: the database is held by another process", spec.name
        )
        return
    try:
        state.repos.audit.log(
            user_id=caller.actor,
            action=spec.name,
            resource=None if refused else _cut(spec.resource_of(arguments)),
            params=redact(arguments, names_only=refused or kind == PermissionDeniedError.kind),
            result=kind,
            duration_ms=_elapsed_ms(started),
        )
    except Exception as audit_exc:
        logger.error(
            "could not write the audit row for a failed %s call: %s", spec.name, type(audit_exc).__name__
        )


def _require_scope(spec: ToolSpec, caller: Caller) -> None:
    if not allows(caller.scope, spec.scope):
        raise permission_denied(spec.name, caller.scope, spec.scope)


def _elapsed_ms(started: float) -> int:
    return max(0, round((time.perf_counter() - started) * 1000))


def redact(value: Any, names_only: bool = False) -> Any:
    """``value`` (a call's arguments) fit for the audit log, at most ``MAX_PARAMS_CHARS`` of JSON.

    Secret-looking keys are masked, text is cut at ``_MAX_TEXT`` characters, mappings at
    ``_MAX_KEYS`` keys, lists at ``_MAX_ITEMS`` entries, nesting at depth 8, each cut noted in
    place. Arguments still over the size cap, and those of a call refused for its scope or its
    schema (``names_only``: the values were never accepted), are recorded by name only.
    """
    if names_only and isinstance(value, Mapping):
        return _names_only(value, "refused for scope or schema: argument values not recorded")
    kept = _redact(value, 0)
    size = len(json.dumps(kept, ensure_ascii=False, default=str))
    if size <= MAX_PARAMS_CHARS or not isinstance(value, Mapping):
        return kept if size <= MAX_PARAMS_CHARS else f"[{size} characters cut]"
    return _names_only(value, f"arguments of {size:,} characters cut to their names")


def _cut(text: str | None) -> str | None:
    return text if text is None or len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "..."


def _names_only(arguments: Mapping[Any, Any], note: str) -> dict[str, Any]:
    names = [str(k)[:_MAX_NAME] for k in list(arguments)[:_MAX_KEYS]]
    if len(arguments) > _MAX_KEYS:
        names.append(f"[{len(arguments) - _MAX_KEYS} more]")
    return {"[note]": note, "[arguments]": names}


def _redact(value: Any, depth: int) -> Any:
    if depth > 8:
        return "[nested too deep]"
    if isinstance(value, Mapping):
        out = {
            str(k)[:_MAX_NAME]: REDACTED if is_secret_key(str(k)) else _redact(v, depth + 1)
            for k, v in list(value.items())[:_MAX_KEYS]
        }
        if len(value) > _MAX_KEYS:
            out["[cut]"] = f"{len(value) - _MAX_KEYS} more keys"
        return out
    if isinstance(value, list | tuple):
        items = [_redact(v, depth + 1) for v in value[:_MAX_ITEMS]]
        return [*items, f"[{len(value) - _MAX_ITEMS} more]"] if len(value) > _MAX_ITEMS else items
    if isinstance(value, str) and len(value) > _MAX_TEXT:
        return value[:_MAX_TEXT] + f"... [{len(value)} characters]"
    return value


def is_secret_key(key: str) -> bool:
    return key.lower() in _SECRET_NAMES or _SECRET_KEY.search(key) is not None


async def audit_rejected(spec: ToolSpec, ctx: Context[Any, Any], arguments: Mapping[str, Any]) -> None:
    """The audit row of a mutating call whose arguments failed the input schema."""
    started = time.perf_counter()
    state = cast(AppState, ctx.request_context.lifespan_context)
    caller = caller_of(ctx, state.settings)
    await anyio.to_thread.run_sync(
        record_failure, state, spec, caller, arguments, "invalid_argument", started, True
    )
