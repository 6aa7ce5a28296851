"""Audit tools: read the append-only audit log, and add events to it. Nothing edits or deletes it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import Field

from mcp_state.server.audit import Call, Toolset, redact
from mcp_state.server.shapes import DEFAULT_LIMIT, AuditPage, Limit, LoggedEvent, Millis, Offset, page

audit = Toolset("audit", hint="Call query_audit_log to see recent entries.")


@audit.write(
    "Log audit event",
    resource=lambda args, result: result["id"] if result else None,
    destructive=False,
    idempotent=False,
)
def log_audit_event(
    call: Call,
    action: Annotated[
        str, Field(min_length=1, max_length=200, description="What happened, e.g. 'export_report'.")
    ],
    resource: Annotated[str | None, Field(max_length=1024, description="Id of what it touched.")] = None,
    params: Annotated[
        dict[str, Any] | None, Field(description="Details as a JSON object; secret-looking keys are masked.")
    ] = None,
    result: Annotated[str | None, Field(max_length=200, description="Outcome, e.g. 'ok' or 'error'.")] = None,
    duration_ms: Annotated[Millis | None, Field(description="How long it took, in ms.")] = None,
) -> LoggedEvent:
    """Record something you did outside these tools in the audit log, with you as the actor."""
    entry_id = call.repos.audit.log(
        user_id=call.actor,
        action=action,
        resource=resource,
        params=redact(params) if params is not None else None,
        result=result,
        duration_ms=duration_ms,
    )
    return {"id": entry_id}


@audit.read("Query audit log")
def query_audit_log(
    call: Call,
    user_id: Annotated[str | None, Field(max_length=1024, description="Only this actor's entries.")] = None,
    action: Annotated[
        str | None, Field(max_length=200, description="Only this action, e.g. a tool name.")
    ] = None,
    resource: Annotated[str | None, Field(max_length=1024, description="Only entries about this id.")] = None,
    result: Annotated[
        str | None,
        Field(max_length=200, description="Only this outcome: ok, or an error kind like not_found."),
    ] = None,
    since: Annotated[
        datetime | None, Field(description="From this time on (ISO 8601; UTC if no zone).")
    ] = None,
    until: Annotated[
        datetime | None, Field(description="Before this time (ISO 8601; UTC if no zone).")
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> AuditPage:
    """Search the audit log, newest first, by actor, action, resource, outcome and time range."""
    repo = call.repos.audit
    filters: dict[str, Any] = {"resource": resource, "since": since, "until": until, "result": result}
    found = page(
        lambda n, skip: repo.query(user_id, action, n, offset=skip, **filters),
        limit,
        offset,
        repo.count(user_id, action, **filters),
    )
    found["items"] = [{**entry, "params": redact(entry["params"])} for entry in found["items"]]
    return found
