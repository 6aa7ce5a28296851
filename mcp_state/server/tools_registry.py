"""Registry tools: the data tables registered for syncing, and their data profiles."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from mcp_state.server.audit import Call, Toolset
from mcp_state.server.paging import after_of, page
from mcp_state.server.results import fit, room
from mcp_state.server.shapes import (
    DEFAULT_LIMIT,
    Cursor,
    Deleted,
    Limit,
    ProfileConfirmation,
    ProfileDetail,
    RegisteredTablePage,
    TableId,
    TableProfilePage,
    found,
)
from mcp_state.types import RegisteredTable

registry = Toolset("registry", hint="Call list_registered_tables to see registered tables.")


@registry.write("Register table", resource="id", destructive=True, idempotent=True)
def register_table(
    call: Call,
    id: Annotated[str, Field(min_length=1, max_length=1024, description="Table id, e.g. 'orders'.")],
    name: Annotated[str, Field(min_length=1, max_length=200, description="Display name.")],
    folder: Annotated[str | None, Field(max_length=1024, description="Folder it syncs into.")] = None,
    sync_strategy: Annotated[
        str | None, Field(max_length=100, description="e.g. full or incremental.")
    ] = None,
    primary_key: Annotated[str | None, Field(max_length=1024, description="Primary key column(s).")] = None,
    description: Annotated[str | None, Field(max_length=10_000, description="What the table holds.")] = None,
) -> RegisteredTable:
    """Register a table for syncing, or replace a registered table's details (who first registered it stays)."""
    return call.repos.registry.register(
        id,
        name,
        folder=folder,
        sync_strategy=sync_strategy,
        primary_key=primary_key,
        description=description,
        registered_by=call.actor,
    )


@registry.write("Unregister table", resource="table_id", destructive=True, idempotent=True)
def unregister_table(call: Call, table_id: TableId) -> Deleted:
    """Remove a table from the registry (its sync state, history and profile stay)."""
    call.repos.registry.unregister(table_id)
    return {"deleted": True, "id": table_id}


@registry.read("Get registered table")
def get_registered_table(call: Call, table_id: TableId) -> RegisteredTable:
    """Get a registered table's details: name, folder, sync strategy, primary key, description."""
    return found(call.repos.registry.get(table_id), "registered table", table_id)


@registry.read("List registered tables")
def list_registered_tables(
    call: Call,
    folder: Annotated[str | None, Field(max_length=1024, description="Only tables in this folder.")] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> RegisteredTablePage:
    """List registered tables by name, optionally only one folder's."""
    repo = call.repos.registry
    rows = repo.list_all(folder, limit=limit + 1, after=after_of("tables", cursor))
    return page(rows, limit, kind="tables", key=repo.key_of, total=repo.count(folder))


@registry.write("Save table profile", resource="table_id", destructive=True, idempotent=True)
def save_table_profile(
    call: Call,
    table_id: TableId,
    profile: Annotated[
        dict[str, Any],
        Field(description="The profile as a JSON object, e.g. {'row_count': 10, 'columns': [...]}."),
    ],
) -> ProfileConfirmation:
    """Save a table's latest data profile, replacing the previous one."""
    repo = call.repos.profiles
    repo.save(table_id, profile)
    return found(repo.get_summary(table_id), "profile for table", table_id)  # type: ignore[return-value]


@registry.read("Get table profile", hint="Call list_table_profiles to see which tables have a profile.")
def get_table_profile(call: Call, table_id: TableId) -> ProfileDetail:
    """Get a table's latest data profile (row count, columns and their statistics)."""
    record = found(call.repos.profiles.get_record(table_id), "profile for table", table_id)
    return fit(
        record,
        room(call.budget),
        "read the rest with sql_query on table_profiles (json_extract(profile, '$.columns[100]'), ...)",
    )


@registry.read("List table profiles")
def list_table_profiles(call: Call, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None) -> TableProfilePage:
    """List profiled tables: time, column count and size of each profile (get_table_profile for one)."""
    repo = call.repos.profiles
    rows = repo.list_summaries(limit=limit + 1, after=after_of("profiles", cursor))
    return page(rows, limit, kind="profiles", key=repo.key_of, total=repo.count())
