"""Ask before destroying: destructive calls are confirmed by the person behind the agent.

When the client declares elicitation support, ``delete_user``, ``delete_knowledge_item``,
``unregister_table``, ``undeploy_script``, ``revoke_dataset_access`` and
``unlink_telegram_user`` first ask "remove …?" naming what goes. The SDK's resolvers carry
the question on both protocol eras: a mid-call ``elicitation/create`` request up to
2025-11-25, an ``InputRequiredResult`` the client answers and retries with from 2026-07-28.
A decline or cancel changes nothing; the wrapper in ``server/audit.py`` audits it as
``cancelled``. A client without elicitation is not asked (its host confirms on the tool's
``destructiveHint``, as before).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Any

from mcp.server.elicitation import AcceptedElicitation, ElicitationResult
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.resolve import Elicit, Resolve
from pydantic import BaseModel, Field

from mcp_state.errors import NotConfirmedError

CONFIRMED = frozenset(
    {
        "delete_user",
        "delete_knowledge_item",
        "unregister_table",
        "undeploy_script",
        "revoke_dataset_access",
        "unlink_telegram_user",
    }
)
PARAMETER = "confirmation"
NOT_ASKED = "not asked: the client has no elicitation"


class Confirm(BaseModel):
    """What the person is asked: one yes/no."""

    confirm: bool = Field(title="Remove it", description="Yes: remove it for good.")


def question(title: str, arguments: dict[str, Any]) -> str:
    """``Delete user: user_id=del@example.com. This cannot be undone; go ahead?``"""
    what = ", ".join(f"{name}={value}" for name, value in arguments.items())
    return f"{title}: {what}. This cannot be undone; go ahead?"


def parameter(title: str, names: list[str], may_call: Callable[[Context], bool]) -> inspect.Parameter:
    """The hidden handler parameter (not in the input schema) the SDK fills by asking, for a tool
    whose arguments are ``names``. A caller whose scope cannot call the tool is not asked (it is
    refused next)."""

    async def ask(ctx: Context, **arguments: Any) -> Elicit[Confirm] | str:
        capabilities = ctx.client_capabilities
        if capabilities is None or capabilities.elicitation is None or not may_call(ctx):
            return NOT_ASKED
        return Elicit(question(title, arguments), Confirm)

    ask.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Context)]
        + [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=Any) for name in names]
    )
    ask.__annotations__ = {"ctx": Context, **dict.fromkeys(names, Any), "return": Elicit[Confirm] | str}
    annotation = Annotated[ElicitationResult[Confirm], Resolve(ask)]
    return inspect.Parameter(PARAMETER, inspect.Parameter.KEYWORD_ONLY, annotation=annotation)


def check(outcome: Any, tool: str) -> None:
    """Raise ``NotConfirmedError`` unless the person said yes (or could not be asked)."""
    if isinstance(outcome, AcceptedElicitation) and (
        outcome.data == NOT_ASKED or (isinstance(outcome.data, Confirm) and outcome.data.confirm)
    ):
        return
    raise NotConfirmedError(
        f"{tool} was not confirmed by the user; nothing was changed. Do not retry unless asked"
    )
