"""Notification tools: Telegram chats linked to users, and one-time link codes.

No tool lists or shows a code: ``verify_pending_code`` takes one from the user and consumes it.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from mcp_state.errors import NotFoundError
from mcp_state.server.audit import Call, Toolset
from mcp_state.server.paging import after_of, page
from mcp_state.server.shapes import (
    DEFAULT_LIMIT,
    Cursor,
    Deleted,
    Limit,
    TelegramLinkPage,
    UserId,
    found,
)
from mcp_state.types import TelegramLink

notifications = Toolset("notifications", hint="Call list_telegram_links to see linked users.")

ChatId = Annotated[int, Field(ge=-(2**63), lt=2**63, description="Telegram chat id.")]


# admin: it skips the one-time-code flow (verify_pending_code) that proves the chat is the user's.
@notifications.write(
    "Link Telegram chat", resource="user_id", destructive=True, idempotent=True, scope="admin"
)
def link_telegram_user(call: Call, user_id: UserId, chat_id: ChatId) -> TelegramLink:
    """Link a user to a Telegram chat for notifications, replacing any chat linked before."""
    return call.repos.telegram.link_user(user_id, chat_id)


@notifications.write("Unlink Telegram chat", resource="user_id", destructive=True, idempotent=True)
def unlink_telegram_user(call: Call, user_id: UserId) -> Deleted:
    """Stop Telegram notifications for a user by removing their chat link."""
    call.repos.telegram.unlink_user(user_id)
    return {"deleted": True, "id": user_id}


@notifications.read("Get Telegram link")
def get_telegram_link(call: Call, user_id: UserId) -> TelegramLink:
    """Get the Telegram chat a user is linked to."""
    return found(call.repos.telegram.get_link(user_id), "Telegram link for user", user_id)


@notifications.read("List Telegram links")
def list_telegram_links(call: Call, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None) -> TelegramLinkPage:
    """List every user linked to a Telegram chat."""
    repo = call.repos.telegram
    rows = repo.get_all_links(limit=limit + 1, after=after_of("telegram", cursor))
    return page(rows, limit, kind="telegram", key=repo.key_of, total=repo.count())


@notifications.write(
    "Verify one-time code",
    resource="user_id",
    destructive=True,
    idempotent=False,
    hint="Ask the user to request a new code from the Telegram bot, then call again with it.",
)
def verify_pending_code(
    call: Call,
    user_id: Annotated[
        str, Field(min_length=1, max_length=1024, description="The existing user to link the chat to.")
    ],
    code: Annotated[
        str,
        Field(
            min_length=1, max_length=128, description="The one-time code the user got from the Telegram bot."
        ),
    ],
) -> TelegramLink:
    """Consume a user's one-time Telegram code and link that chat to them (a code works once, then expires)."""
    found(call.repos.users.get_by_id(user_id), "user", user_id)
    pending = call.repos.codes.verify_code(code)
    if pending is None:
        raise NotFoundError("that code is unknown, already used or expired")
    return call.repos.telegram.link_user(user_id, pending["chat_id"])
