"""Prompts: ready-made tasks that start from the current state and say which tools to use.

The task is the user's message; the state it starts from follows as a labelled data block
(see ``with_data``), never as the user's own words.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.prompts.base import AssistantMessage, Message, UserMessage
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS
from pydantic import Field

from mcp_state.errors import InvalidArgumentError
from mcp_state.server.results import DEFAULT_MAX_RESULT_CHARS, prompt_data
from mcp_state.server.state import Runtime
from mcp_state.timespec import parse_time

SHOWN = 20
AUDIT_SAMPLE = 1000


def parse_since(since: str) -> datetime:
    """``since`` by the one parser (``mcp_state.timespec``), refused as invalid params."""
    try:
        start = parse_time("since", since)
    except InvalidArgumentError as exc:
        raise MCPError(code=INVALID_PARAMS, message=str(exc)) from None
    assert start is not None
    return start


def with_data(task: str, label: str, data: Any, budget: int) -> list[Message]:
    """The task as the user's request; the state it starts from as a labelled data block, never the user's words.

    The data goes in an assistant message (what the model itself read from the server, like a
    tool result), inside the untrusted-data boundary: it never speaks with the user's authority.
    """
    request = f"{task}\n\nNext message: {label.lower()}, as data read from mcp-state."
    # The budget holds for the whole prompt: the data gets what the request leaves.
    return [UserMessage(request), AssistantMessage(prompt_data(label, data, budget - len(request)))]


def register(mcp: MCPServer[Any], runtime: Runtime) -> None:
    budget = runtime.settings.max_result_chars or DEFAULT_MAX_RESULT_CHARS

    def prompt(toolset: str, title: str) -> Any:
        """``mcp.prompt`` when ``toolset`` is served (``--toolsets``), else nothing."""
        return mcp.prompt(title=title) if runtime.settings.serves(toolset) else (lambda fn: fn)

    @prompt("sync", "Triage sync failures")
    def triage_sync_failures() -> str | list[Message]:
        """Investigate the tables whose latest sync failed and propose fixes."""
        repos = runtime.state.repos
        failing = repos.sync_state.get_all_states(status="error", limit=SHOWN)
        total = repos.sync_state.count_states(status="error")
        if not failing:
            return "No table's latest sync failed (state://sync has the overview). Report that all syncs are healthy."
        return with_data(
            f"{total} table(s) have a failed latest sync; the first {len(failing)} are below.\n"
            "For each table: call get_sync_history(table_id) to see when it started failing and whether it "
            "ever succeeded, get_registered_table(table_id) for its sync strategy and primary key, and "
            "get_table_profile(table_id) if the error points at the data. Then group the tables by likely "
            "cause, and for each group propose the fix and who should act. Do not change any state unless asked. "
            "Latest status is not history: summarize_sync_failures(since='7d') also shows tables that failed "
            "often this week but whose latest sync succeeded.",
            "Failing tables",
            failing,
            budget,
        )

    @prompt("knowledge", "Review pending knowledge")
    def review_pending_knowledge() -> str | list[Message]:
        """Review knowledge items waiting for approval and recommend approve or reject for each."""
        repos = runtime.state.repos
        items = repos.knowledge.list_summaries(["pending"], limit=SHOWN)
        total = repos.knowledge.count_items(["pending"])
        if not items:
            return "No knowledge item is pending review. Report that the review queue is empty."
        return with_data(
            f"{total} knowledge item(s) are pending review; the {len(items)} most recently changed are below "
            "with their votes (get_knowledge_item has the full content). For each: check it is accurate, specific and not a duplicate "
            "(search_knowledge with its key terms), then recommend approve or reject with one line of reasoning. "
            "Only after the user confirms, apply each decision with set_knowledge_status(item_id, 'approved' or "
            "'rejected').",
            "Pending items",
            items,
            budget,
        )

    @prompt("audit", "Summarize audit activity")
    def summarize_audit_activity(
        since: Annotated[
            str, Field(description="From when: a duration like 24h, 7d, 30m, or an ISO date like 2025-01-31.")
        ] = "24h",
    ) -> list[Message]:
        """Summarize who changed what since a time, and which changes failed."""
        start = parse_since(since)
        repos = runtime.state.repos
        total = repos.audit.count(since=start)
        entries = repos.audit.query(since=start, limit=AUDIT_SAMPLE)
        failures = [
            {k: e[k] for k in ("timestamp", "user_id", "action", "resource", "result")}
            for e in entries
            if e["result"] not in (None, "ok")
        ][:SHOWN]
        summary = {
            "since": start,
            "entries": total,
            "counted": len(entries),
            "by_action": dict(Counter(e["action"] for e in entries).most_common()),
            "by_actor": dict(Counter(e["user_id"] or "unknown" for e in entries).most_common()),
            "by_result": dict(Counter(e["result"] or "none" for e in entries).most_common()),
            "recent_failures": failures,
        }
        return with_data(
            f"Summarize the audit activity since {start.isoformat()} for an operator: the main kinds of change, "
            "who made them, anything unusual (bursts, failures, deletes, permission changes), and what deserves a "
            "follow-up. Use query_audit_log(since=..., action=...) to look closer at anything notable.",
            "Activity",
            summary,
            budget,
        )
