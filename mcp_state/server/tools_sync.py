"""Sync tools: each data table's latest sync, its history, and users' sync settings."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from mcp_state.server.audit import Call, Toolset
from mcp_state.server.shapes import (
    DEFAULT_LIMIT,
    Count,
    Dataset,
    Limit,
    Millis,
    Offset,
    SyncHistoryPage,
    SyncStatePage,
    TableId,
    UserId,
    UserSyncSettings,
    found,
    page,
)
from mcp_state.types import SyncSetting, SyncState, SyncStatus, TableMode

sync = Toolset("sync", hint="Call list_sync_states to see which tables have synced.")


@sync.read("Get sync state")
def get_sync_state(call: Call, table_id: TableId) -> SyncState:
    """Get one table's latest sync (time, rows, size, hash, status, error): use it to check if a table is fresh."""
    return found(call.repos.sync_state.get_table_state(table_id), "sync state for table", table_id)


@sync.read("List sync states")
def list_sync_states(
    call: Call,
    status: Annotated[
        SyncStatus | None, Field(description="Only tables whose last sync has this status.")
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> SyncStatePage:
    """List every table's latest sync, by table id; filter by status='error' to find failing tables."""
    repo = call.repos.sync_state
    return page(
        lambda n, skip: repo.get_all_states(status=status, limit=n, offset=skip),
        limit,
        offset,
        repo.count_states(status=status),
    )


@sync.read("Get sync history")
def get_sync_history(call: Call, table_id: TableId, limit: Limit = 20, offset: Offset = 0) -> SyncHistoryPage:
    """List one table's past sync runs, newest first: use it to see when a table started failing."""
    repo = call.repos.sync_state
    return page(
        lambda n, skip: repo.get_sync_history(table_id, limit=n, offset=skip),
        limit,
        offset,
        repo.count_history(table_id),
    )


@sync.write("Record a sync", resource="table_id", destructive=True, idempotent=False)
def record_sync(
    call: Call,
    table_id: TableId,
    rows: Annotated[Count, Field(description="Rows in the table after the sync.")],
    file_size_bytes: Annotated[Count, Field(description="Size of the synced file in bytes.")],
    hash: Annotated[str, Field(max_length=256, description="Content hash of the synced file.")],
    uncompressed_size_bytes: Annotated[Count, Field(description="Uncompressed size in bytes.")] = 0,
    columns: Annotated[int, Field(ge=0, le=100_000, description="Number of columns.")] = 0,
    status: Annotated[SyncStatus, Field(description="Outcome of the sync.")] = "ok",
    error: Annotated[
        str | None, Field(max_length=10_000, description="Error message when status is error.")
    ] = None,
    duration_ms: Annotated[Millis | None, Field(description="How long the sync took, in ms.")] = None,
) -> SyncState:
    """Record a finished sync of a table: replaces its current state and appends a history entry."""
    return call.repos.sync_state.update_sync(
        table_id,
        rows=rows,
        file_size_bytes=file_size_bytes,
        hash=hash,
        uncompressed_size_bytes=uncompressed_size_bytes,
        columns=columns,
        status=status,
        error=error,
        duration_ms=duration_ms,
    )


@sync.read("Get sync settings")
def get_sync_settings(
    call: Call,
    user_id: UserId,
    dataset: Annotated[str | None, Field(max_length=1024, description="Only this dataset.")] = None,
) -> UserSyncSettings:
    """Get which datasets (and tables) a user syncs; empty items when the user has no settings."""
    repo = call.repos.sync_settings
    if dataset is not None:
        one = repo.get_one(user_id, dataset)
        return {"user_id": user_id, "items": [one] if one else []}
    return {"user_id": user_id, "items": repo.get(user_id)}


@sync.write(
    "Set sync settings",
    resource=lambda args, _: f"{args['user_id']}/{args['dataset']}",
    destructive=True,
    idempotent=True,
)
def set_sync_settings(
    call: Call,
    user_id: UserId,
    dataset: Dataset,
    enabled: Annotated[bool, Field(description="Whether the user syncs this dataset.")],
    table_mode: Annotated[
        TableMode, Field(description="all: every table; selected: only those listed in tables.")
    ] = "all",
    tables: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=1024)]] | None,
        Field(max_length=10_000, description="Table ids to sync; required with table_mode='selected'."),
    ] = None,
) -> SyncSetting:
    """Set whether and how a user syncs one dataset, replacing that dataset's previous setting."""
    return call.repos.sync_settings.set(user_id, dataset, enabled, table_mode=table_mode, tables=tables)
