"""Sync tools: each data table's latest sync, its history, and users' sync settings."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from mcp_state.gateway import utc_now
from mcp_state.repositories.references import References
from mcp_state.server.audit import Call, Toolset
from mcp_state.server.paging import after_of, page
from mcp_state.server.shapes import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    Count,
    Cursor,
    Dataset,
    Limit,
    Millis,
    Since,
    SyncFailures,
    SyncHistoryPage,
    SyncStatePage,
    TableId,
    Until,
    UserId,
    UserSyncSettings,
    found,
)
from mcp_state.timespec import FORMS, parse_window
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
    cursor: Cursor = None,
) -> SyncStatePage:
    """List every table's latest sync, by table id. Latest only: for failure counts use summarize_sync_failures."""
    repo = call.repos.sync_state
    after = after_of("sync_states", cursor)
    rows = repo.list_states(status=status, after=after, limit=limit + 1)
    total = repo.count_states(status=status)
    return page(rows, limit, kind="sync_states", key=lambda row: (row["table_id"],), total=total)


@sync.read("Get sync history")
def get_sync_history(
    call: Call,
    table_id: Annotated[
        str | None, Field(max_length=1024, description="Only this table; omit for all.")
    ] = None,
    status: Annotated[SyncStatus | None, Field(description="Only runs with this outcome.")] = None,
    since: Since = None,
    until: Until = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> SyncHistoryPage:
    """List sync runs of one table or all, newest first; filter by status and time (since='7d')."""
    if table_id is not None:
        References(call.repos.gateway).table(table_id)
    start, end = parse_window(since, until)
    after = after_of("sync_history", cursor)
    rows = call.repos.sync_state.history(
        table_id,
        status=status,
        since=start,
        until=end,
        after=after,
        limit=limit + 1,
    )
    total = call.repos.sync_state.count_history(table_id, status=status, since=start, until=end)
    return page(rows, limit, kind="sync_history", key=lambda row: (row["seq"],), total=total)


@sync.read("Summarize sync failures")
def summarize_sync_failures(
    call: Call,
    since: Annotated[str, Field(max_length=64, description=f"From: {FORMS}.")] = "7d",
    until: Until = None,
) -> SyncFailures:
    """Per table: failed syncs in a window, the last failure's time and error, current status; most failures first."""
    start, end = parse_window(since, until)
    assert start is not None
    rows = call.repos.sync_state.failure_summary(start, end, limit=MAX_LIMIT + 1)
    return {
        "since": start,
        "until": end,
        "items": rows[:MAX_LIMIT],
        "has_more": len(rows) > MAX_LIMIT,
        "as_of": utc_now(),
    }


@sync.write("Record a sync", resource="table_id", destructive=True, idempotent=False)
def record_sync(
    call: Call,
    table_id: TableId,
    rows: Annotated[Count | None, Field(description="Rows in the table after the sync.")] = None,
    status: Annotated[SyncStatus, Field(description="Outcome of the sync.")] = "ok",
    error: Annotated[
        str | None, Field(max_length=10_000, description="Error message; required when status is error.")
    ] = None,
    file_size_bytes: Annotated[Count | None, Field(description="Size of the synced file in bytes.")] = None,
    hash: Annotated[str | None, Field(max_length=256, description="Content hash of the synced file.")] = None,
    uncompressed_size_bytes: Annotated[Count | None, Field(description="Uncompressed size in bytes.")] = None,
    columns: Annotated[int | None, Field(ge=0, le=100_000, description="Number of columns.")] = None,
    duration_ms: Annotated[Millis | None, Field(description="How long the sync took, in ms.")] = None,
) -> SyncState:
    """Record a finished sync of a table and append it to the history; values left out keep what is stored."""
    return call.repos.sync_state.record(
        table_id,
        rows=rows,
        status=status,
        error=error,
        file_size_bytes=file_size_bytes,
        hash=hash,
        uncompressed_size_bytes=uncompressed_size_bytes,
        columns=columns,
        duration_ms=duration_ms,
    )


@sync.read("Get sync settings")
def get_sync_settings(
    call: Call,
    user_id: UserId,
    dataset: Annotated[str | None, Field(max_length=1024, description="Only this dataset.")] = None,
) -> UserSyncSettings:
    """Get which datasets (and tables) a user syncs; empty items when the user has no settings."""
    References(call.repos.gateway).user(user_id)
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
    References(call.repos.gateway).user(user_id)
    return call.repos.sync_settings.set(user_id, dataset, enabled, table_mode=table_mode, tables=tables)
