"""Callers act as themselves: the scope rules beyond "a tool needs at least this scope".

A tool's own scope (``Toolset.read/write(scope=...)``) decides who may call it at all, and
``tools/list`` shows a token only those tools (``hidden`` names the others). Within a write tool, acting for
someone else needs ``admin``; tool bodies call these checks with one line each:

- ``vote_knowledge_item``: voting as another user (``acting_user``);
- ``create_knowledge_item`` / ``set_knowledge_status``: an item created as, or moved to,
  ``approved`` or ``rejected`` skips review (``review_decision``);
- ``deploy_script``: owning it as another user, or redeploying a script someone else owns
  (``script_owner``).

A refusal raises ``PermissionDeniedError`` naming the scope needed; the wrapper in
``server/audit.py`` audits it like every failed write. A stdio server's local user has
``admin``, so it keeps full rights.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from mcp_state.errors import PermissionDeniedError

if TYPE_CHECKING:
    from mcp_state.server.audit import Call, ToolSpec

SCOPE_RANK = {"none": -1, "read": 0, "write": 1, "admin": 2}
REVIEW_DECISIONS = frozenset({"approved", "rejected"})


def allows(scope: str, needed: str) -> bool:
    return SCOPE_RANK.get(scope, -1) >= SCOPE_RANK[needed]


def hidden(specs: Iterable[ToolSpec], scope: str) -> set[str]:
    """Names of the tools among ``specs`` a caller with ``scope`` may not call (hidden from tools/list)."""
    return {spec.name for spec in specs if not allows(scope, spec.scope)}


def _require_admin(call: Call, action: str, instead: str) -> None:
    if not allows(call.scope, "admin"):
        raise PermissionDeniedError(
            f"this token has the '{call.scope}' scope and {action} needs 'admin'. {instead}, or ask the "
            "operator for a token created with `mcp-state token create --scope admin`"
        )


def acting_user(call: Call, user_id: str | None, action: str) -> str:
    """The user a call acts for: the caller, unless ``user_id`` names someone else (admin only)."""
    if user_id is None or user_id == call.actor:
        return call.actor
    _require_admin(call, f"{action} as another user", f"Leave user_id out to act as yourself ({call.actor})")
    return user_id


def review_decision(call: Call, status: str | None) -> None:
    """Approving or rejecting a knowledge item (also by creating it so) is a review decision (admin only)."""
    if status in REVIEW_DECISIONS:
        _require_admin(
            call, f"setting a knowledge item to '{status}'", "Create or leave the item 'pending' for review"
        )


def script_owner(call: Call, script_id: str, owner: str | None) -> str:
    """The owner of a (re)deployed script: the caller, unless admin acts for someone else (or redeploys
    another user's script, which keeps its owner when none is given)."""
    chosen = acting_user(call, owner, "deploying a script")
    current = call.repos.scripts.get(script_id)
    if current is not None and current["owner"] not in (None, call.actor):
        _require_admin(
            call,
            f"redeploying script {script_id!r}, owned by {current['owner']},",
            "Deploy it under a new id",
        )
        if owner is None:  # a redeploy by an admin keeps the script's owner unless told otherwise
            return str(current["owner"])
    return chosen
