"""``state://`` resources: JSON views an agent (or a person in Inspector) can browse.

Users appear without secrets; audit params are masked again on the way out. Templates
offer completions for their ids.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import anyio.to_thread
from mcp.server.mcpserver import MCPServer
from mcp_types import (
    Completion,
    CompletionArgument,
    CompletionContext,
    PromptReference,
    ResourceTemplateReference,
)

from mcp_state.repositories.users import public_user
from mcp_state.schema import (
    COLUMN_DESCRIPTIONS,
    JSON_COLUMNS,
    REDACTED_FLAG_COLUMNS,
    REDACTED_SCHEMA,
    SECRET_COLUMNS,
    TABLE_DESCRIPTIONS,
)
from mcp_state.server.audit import redact
from mcp_state.server.errors import resource_error
from mcp_state.server.paging import after_of, page
from mcp_state.server.results import DEFAULT_MAX_RESULT_CHARS, resource_text
from mcp_state.server.shapes import found
from mcp_state.server.state import Repos, Runtime
from mcp_state.server.untrusted import TRUSTED_RESULTS
from mcp_state.types import SYNC_STATUSES

JSON = "application/json"
PAGE = 100  # tables a page of state://sync
RECENT = 50  # runs or entries a page of the history and audit resources

# Where each template's id comes from, for completions.
TEMPLATE_IDS = {
    "state://sync/{table_id}": ("sync_state", "table_id"),
    "state://sync/{table_id}/history{?cursor}": ("sync_state", "table_id"),
    "state://knowledge/{item_id}": ("knowledge_items", "id"),
    "state://users/{user_id}": ("users", "id"),
    "state://tables/{table_id}": ("table_registry", "id"),
}
PROMPT_SUGGESTIONS = {("summarize_audit_activity", "since"): ["1h", "24h", "7d", "30d"]}


def schema_document(repos: Repos) -> dict[str, Any]:
    """Every table and column with its type and description, for writing SQL."""
    columns = repos.gateway.fetch_all(
        """SELECT table_name, column_name, data_type FROM information_schema.columns
           WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"""
    )
    tables: dict[str, dict[str, Any]] = {}
    for col in columns:
        name = col["table_name"]
        table = tables.setdefault(
            name, {"name": name, "description": TABLE_DESCRIPTIONS.get(name, ""), "columns": []}
        )
        secret = col["column_name"] in SECRET_COLUMNS.get(name, ())
        table["columns"].append(
            {
                "name": col["column_name"],
                "type": col["data_type"],
                "description": COLUMN_DESCRIPTIONS.get(name, {}).get(col["column_name"], ""),
                **({"secret": True} if secret else {}),
            }
        )
    return {
        "database": repos.gateway.dialect.title,
        "notes": [
            "Timestamps are TIMESTAMP values (without a time zone) holding UTC.",
            f"JSON columns: {', '.join(sorted(JSON_COLUMNS))}.",
            "Columns marked secret are never returned by tools or resources.",
            f"The read-only SQL tools read the views in schema '{REDACTED_SCHEMA}': each table without its "
            "secret columns; users there also has "
            + ", ".join(sorted(REDACTED_FLAG_COLUMNS.get("users", {})))
            + " (true/false).",
            "audit_log is append-only; 'newest first' is commit order: seq DESC (sync_history too), "
            "knowledge_items by change_seq DESC.",
        ],
        "tables": list(tables.values()),
    }


# The toolset each resource belongs to: ``--toolsets`` serves only those of the toolsets chosen.
RESOURCE_TOOLSETS = {
    "state://schema": "sql",
    "state://sync": "sync",
    "state://sync/{table_id}": "sync",
    "state://sync/{table_id}/history": "sync",
    "state://knowledge/{item_id}": "knowledge",
    "state://users/{user_id}": "users",
    "state://tables/{table_id}": "registry",
    "state://audit/recent": "audit",
}


def register(mcp: MCPServer[Any], runtime: Runtime) -> None:
    budget = runtime.settings.max_result_chars or DEFAULT_MAX_RESULT_CHARS
    served: set[str] = set()

    def resource(
        uri: str, title: str, description: str, *, paged: bool = False
    ) -> Callable[[Callable[..., Any]], Any]:
        """Register ``fn`` at ``uri``; ``paged``: also at ``uri{?cursor}`` (a template), which
        reads the page after a ``next_cursor`` (a paged template URI only has that form)."""

        def decorator(fn: Callable[..., Any]) -> Any:
            if not runtime.settings.serves(RESOURCE_TOOLSETS[uri]):
                return fn  # --toolsets: only the resources of the toolsets served
            # JSON, inside the untrusted-data boundary when it carries text written by others.
            mime = JSON if uri in TRUSTED_RESULTS else "text/plain"
            sig = _without_repos(fn)
            uris = [uri] if not paged else [f"{uri}{{?cursor}}"] if "{" in uri else [uri, f"{uri}{{?cursor}}"]
            for registered in uris:
                served.add(registered)
                params = [p for p in sig.parameters.values() if p.name != "cursor" or "?cursor" in registered]

                def guarded(**kwargs: Any) -> str:
                    try:
                        value = fn(runtime.state.repos, **kwargs)
                    except Exception as exc:
                        raise resource_error(uri, exc) from None
                    return resource_text(value, budget, uri)

                guarded.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
                guarded.__annotations__ = {p.name: p.annotation for p in params} | {"return": str}
                guarded.__name__ = guarded.__qualname__ = fn.__name__
                guarded.__doc__ = description
                mcp.resource(
                    registered, name=fn.__name__, title=title, description=description, mime_type=mime
                )(guarded)
            return fn

        return decorator

    @resource(
        "state://schema", "Database schema", "Every table and column with its type and meaning, for SQL."
    )
    def schema(repos: Repos) -> Any:
        return schema_document(repos)

    @resource(
        "state://sync",
        "Sync overview",
        f"Every table's latest sync status with counts by status, {PAGE} tables a page (next_cursor: "
        "read state://sync?cursor=…).",
        paged=True,
    )
    def sync_overview(repos: Repos, cursor: str | None = None) -> Any:
        rows = repos.sync_state.list_states(after=after_of("sync_states", cursor), limit=PAGE + 1)
        counts = {status: repos.sync_state.count_states(status=status) for status in SYNC_STATUSES}
        return page(
            rows,
            PAGE,
            kind="sync_states",
            key=lambda row: (row["table_id"],),
            total=repos.sync_state.count_states(),
            shape=lambda s: {k: s[k] for k in ("table_id", "status", "last_sync", "rows", "error")},
            by_status=counts,
        )

    @resource("state://sync/{table_id}", "Table sync state", "One table's latest sync.")
    def sync_table(repos: Repos, table_id: str) -> Any:
        return found(repos.sync_state.get_table_state(table_id), "sync state for table", table_id)

    @resource(
        "state://sync/{table_id}/history",
        "Table sync history",
        f"One table's sync runs, newest first, {RECENT} a page (next_cursor: add ?cursor=…).",
        paged=True,
    )
    def sync_history(repos: Repos, table_id: str, cursor: str | None = None) -> Any:
        rows = repos.sync_state.history(table_id, after=after_of("sync_history", cursor), limit=RECENT + 1)
        total = repos.sync_state.count_history(table_id)
        return page(
            rows, RECENT, kind="sync_history", key=lambda row: (row["seq"],), total=total, table_id=table_id
        )

    @resource("state://knowledge/{item_id}", "Knowledge item", "A knowledge item with its vote counts.")
    def knowledge_item(repos: Repos, item_id: str) -> Any:
        item = found(repos.knowledge.get_by_id(item_id), "knowledge item", item_id)
        return {**item, **repos.knowledge.get_votes(item_id)}

    @resource(
        "state://users/{user_id}",
        "User",
        "A user (no secrets) with permissions, sync settings, Telegram link.",
    )
    def user(repos: Repos, user_id: str) -> Any:
        row = found(repos.users.get_by_id(user_id), "user", user_id)
        return {
            "user": public_user(row),
            "dataset_permissions": repos.permissions.list_for_user(user_id),
            "sync_settings": repos.sync_settings.get(user_id),
            "telegram_link": repos.telegram.get_link(user_id),
        }

    @resource(
        "state://tables/{table_id}", "Registered table", "A registered table with its profile and sync state."
    )
    def table(repos: Repos, table_id: str) -> Any:
        entry = found(repos.registry.get(table_id), "registered table", table_id)
        return {
            "table": entry,
            "profile": repos.profiles.get_record(table_id),
            "sync_state": repos.sync_state.get_table_state(table_id),
        }

    @resource(
        "state://audit/recent",
        "Recent audit log",
        f"The audit log, newest first, {RECENT} entries a page (next_cursor: read "
        "state://audit/recent?cursor=…).",
        paged=True,
    )
    def audit_recent(repos: Repos, cursor: str | None = None) -> Any:
        rows = repos.audit.query(limit=RECENT + 1, after=after_of("audit", cursor))
        return page(
            rows,
            RECENT,
            kind="audit",
            key=lambda row: (row["seq"],),
            total=repos.audit.count(),
            shape=lambda e: {**e, "params": redact(e["params"])},
        )

    @mcp.completion()
    async def complete(
        ref: PromptReference | ResourceTemplateReference,
        argument: CompletionArgument,
        context: CompletionContext | None,
    ) -> Completion | None:
        if isinstance(ref, PromptReference):
            values = PROMPT_SUGGESTIONS.get((ref.name, argument.name))
            if values is None:
                return None
            return Completion(values=[v for v in values if v.startswith(argument.value)])
        source = TEMPLATE_IDS.get(ref.uri) if ref.uri in served else None
        if source is None:
            return None
        values = await anyio.to_thread.run_sync(
            _ids_starting_with, runtime.state.repos, *source, argument.value
        )
        return Completion(values=values[:100], has_more=len(values) > 100)


def _ids_starting_with(repos: Repos, table: str, column: str, prefix: str) -> list[str]:
    # table and column come from TEMPLATE_IDS above, never from the caller.
    rows = repos.gateway.fetch_all(
        f"SELECT {column} AS id FROM {table} WHERE starts_with({column}, ?) ORDER BY {column} LIMIT 101",
        [prefix],
    )
    return [row["id"] for row in rows]


def _without_repos(fn: Callable[..., Any]) -> inspect.Signature:
    sig = inspect.signature(fn)
    params = [p.replace(annotation=str) for p in list(sig.parameters.values())[1:]]
    return sig.replace(parameters=params, return_annotation=str)
