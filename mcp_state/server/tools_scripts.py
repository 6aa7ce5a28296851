"""Script tools: scheduled scripts deployed by users, and their last run."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from mcp_state.repositories.references import References
from mcp_state.server.audit import Call, Toolset
from mcp_state.server.shapes import DEFAULT_LIMIT, Deleted, Limit, Offset, ScriptId, ScriptPage, found, page
from mcp_state.types import Script, ScriptStatus

scripts = Toolset("scripts", hint="Call list_scripts to see deployed scripts.")


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
) -> Script:
    """Deploy a script, or redeploy one (replacing its name, source and schedule; its run history stays)."""
    owner = References(call.repos.gateway).user(owner or call.actor, "owner (you, when left out)")
    return call.repos.scripts.deploy(id, name, owner=owner, schedule=schedule, source=source)


@scripts.write("Undeploy script", resource="script_id", destructive=True, idempotent=True)
def undeploy_script(call: Call, script_id: ScriptId) -> Deleted:
    """Remove a deployed script so it no longer runs."""
    call.repos.scripts.undeploy(script_id)
    return {"deleted": True, "id": script_id}


@scripts.read("Get script")
def get_script(call: Call, script_id: ScriptId) -> Script:
    """Get one script: its source, schedule, owner and last run."""
    return found(call.repos.scripts.get(script_id), "script", script_id)


@scripts.read("List scripts")
def list_scripts(
    call: Call,
    owner: Annotated[str | None, Field(max_length=1024, description="Only this user's scripts.")] = None,
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> ScriptPage:
    """List deployed scripts by name, optionally only one owner's."""
    if owner is not None:
        References(call.repos.gateway).user(owner, "owner")
    repo = call.repos.scripts
    return page(lambda n, skip: repo.list_all(owner, limit=n, offset=skip), limit, offset, repo.count(owner))  # type: ignore[no-any-return]


@scripts.write("Record script run", resource="script_id", destructive=True, idempotent=False)
def record_script_run(
    call: Call,
    script_id: ScriptId,
    status: Annotated[ScriptStatus, Field(description="Outcome of the run.")],
) -> Script:
    """Record that a script just ran and how it went (sets its last_run and last_status)."""
    return call.repos.scripts.record_run(script_id, status)
