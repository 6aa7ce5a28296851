"""Script tools: scheduled scripts deployed by users, and their last run."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from mcp_state.server import authz
from mcp_state.server.audit import Call, Toolset
from mcp_state.server.paging import after_of, page
from mcp_state.server.results import read_field
from mcp_state.server.shapes import (
    DEFAULT_LIMIT,
    Cursor,
    Deleted,
    Limit,
    ScriptDetail,
    ScriptId,
    ScriptPage,
    ScriptSummary,
    found,
)
from mcp_state.types import ScriptStatus

scripts = Toolset("scripts", hint="Call list_scripts to see deployed scripts.")


def summary(call: Call, script_id: str) -> ScriptSummary:
    """The stored script without its source: what a write confirms."""
    row = found(call.repos.scripts.get(script_id), "script", script_id)
    out: dict[str, Any] = {k: v for k, v in row.items() if k != "source"}
    return {**out, "source_chars": len(row["source"] or "")}  # type: ignore[typeddict-item]


@scripts.write("Deploy script", resource="id", destructive=True, idempotent=True)
def deploy_script(
    call: Call,
    id: Annotated[
        str, Field(min_length=1, max_length=1024, description="Script id; an existing id is redeployed.")
    ],
    name: Annotated[str, Field(min_length=1, max_length=200, description="Human-readable name.")],
    source: Annotated[str, Field(max_length=1_000_000, description="The script's source code.")],
    schedule: Annotated[
        str | None, Field(max_length=200, description="Cron expression, e.g. '0 6 * * *'.")
    ] = None,
    owner: Annotated[str | None, Field(max_length=1024, description="Owning user; defaults to you.")] = None,
) -> ScriptSummary:
    """Deploy a script, or redeploy one (replacing its name, source and schedule; its run history stays)."""
    call.repos.scripts.deploy(
        id, name, owner=authz.script_owner(call, id, owner), schedule=schedule, source=source
    )
    return summary(call, id)


@scripts.write("Undeploy script", resource="script_id", destructive=True, idempotent=True)
def undeploy_script(call: Call, script_id: ScriptId) -> Deleted:
    """Remove a deployed script so it no longer runs."""
    call.repos.scripts.undeploy(script_id)
    return {"deleted": True, "id": script_id}


@scripts.read("Get script")
def get_script(
    call: Call,
    script_id: ScriptId,
    source_offset: Annotated[
        int, Field(ge=0, description="Start the source here (next_source_offset of a cut result).")
    ] = 0,
) -> ScriptDetail:
    """Get one script: its source (in parts when long), schedule, owner and last run."""
    row = found(call.repos.scripts.get(script_id), "script", script_id)
    return read_field(dict(row), "source", source_offset, call.budget)  # type: ignore[return-value]


@scripts.read("List scripts")
def list_scripts(
    call: Call,
    owner: Annotated[str | None, Field(max_length=1024, description="Only this user's scripts.")] = None,
    last_status: Annotated[
        ScriptStatus | None, Field(description="Only scripts whose last run had this.")
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> ScriptPage:
    """List deployed scripts by name, without source (get_script for it); filter by owner, last status."""
    repo = call.repos.scripts
    rows = repo.list_summaries(owner, last_status, limit=limit + 1, after=after_of("scripts", cursor))
    return page(rows, limit, kind="scripts", key=repo.key_of, total=repo.count(owner, last_status))


@scripts.write("Record script run", resource="script_id", destructive=True, idempotent=False)
def record_script_run(
    call: Call,
    script_id: ScriptId,
    status: Annotated[ScriptStatus, Field(description="Outcome of the run.")],
) -> ScriptSummary:
    """Record that a script just ran and how it went (sets its last_run and last_status)."""
    call.repos.scripts.record_run(script_id, status)
    return summary(call, script_id)
