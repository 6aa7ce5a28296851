"""One page shape for every list tool and paged resource, and the opaque cursors that page it.

Paging is keyset: a list is sorted by a key that is unique per row (e.g. ``(updated_at, id)``),
a page fetches ``limit + 1`` rows after the previous page's last key (so ``has_more`` is
exact), and the cursor is the sort key of the last row returned. Rows inserted or changed
between two calls are neither repeated nor skipped by the pages still to come.

A cursor is the key as JSON (datetimes tagged so they come back as datetimes), prefixed with
the kind of list it belongs to and a short checksum, base64url-encoded: opaque to agents,
and a cursor that was edited, cut short or taken from another list is refused with a hint.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, NotRequired

from typing_extensions import TypedDict

from mcp_state.errors import InvalidArgumentError
from mcp_state.gateway import to_utc, utc_now

_CHECK_BYTES = 6


class Truncation(TypedDict):
    """Present on any result the character budget cut: what was left out and how to get it."""

    truncated: NotRequired[bool]
    omitted: NotRequired[str]
    next_step: NotRequired[str]


class Page(Truncation):
    """One page of a list: pass ``next_cursor`` back as ``cursor`` while ``has_more`` is true.

    Each list's page type adds ``items: list[<its row type>]``, e.g.
    ``class UserPage(Page): items: list[PublicUser]``.
    """

    has_more: bool
    next_cursor: str | None
    total: int | None
    as_of: datetime


def _checksum(body: bytes) -> bytes:
    return hashlib.blake2b(body, digest_size=_CHECK_BYTES, person=b"mcp-state-cur").digest()


def _tag(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"t": to_utc(value).isoformat()}
    if isinstance(value, tuple | list):
        return [_tag(v) for v in value]
    return value


def _untag(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"t"}:
        return to_utc(datetime.fromisoformat(value["t"]))
    if isinstance(value, list):
        return tuple(_untag(v) for v in value)
    return value


def encode_cursor(kind: str, key: tuple[Any, ...]) -> str:
    """An opaque cursor for the row with sort key ``key`` in lists of ``kind``."""
    body = json.dumps([kind, _tag(tuple(key))], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(_checksum(body) + body).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str) -> tuple[Any, ...]:
    """The sort key inside ``cursor``; ``InvalidArgumentError`` if it is damaged or from another list."""
    refusal = InvalidArgumentError(
        "cursor is not a cursor of this list (damaged, or from another tool or filter); "
        "pass next_cursor from this tool's previous page exactly, or leave cursor out to start over"
    )
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        check, body = raw[:_CHECK_BYTES], raw[_CHECK_BYTES:]
        if len(check) != _CHECK_BYTES or _checksum(body) != check:
            raise refusal
        found_kind, key = json.loads(body)
        if found_kind != kind or not isinstance(key, list):
            raise refusal
        return tuple(_untag(v) for v in key)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise refusal from None


def after_of(kind: str, cursor: str | None) -> tuple[Any, ...] | None:
    """``decode_cursor`` for an optional cursor argument: ``None`` starts at the first row."""
    return None if cursor is None else decode_cursor(kind, cursor)


class PageResult(dict):
    """A ``Page`` dict that also knows each item's cursor, so the budget can cut it short.

    ``results.fit`` keeps the first items that fit and points ``next_cursor`` at the last
    one kept (``cursor_after(i)``); everything else treats it as the plain dict it is.
    """

    def __init__(self, value: dict[str, Any], cursors: Sequence[str]) -> None:
        super().__init__(value)
        self._cursors = list(cursors)

    def cursor_after(self, index: int) -> str:
        return self._cursors[index]


def page(
    rows: Sequence[Any],
    limit: int,
    *,
    kind: str,
    key: Callable[[Any], tuple[Any, ...]],
    total: int | None = None,
    shape: Callable[[Any], Any] | None = None,
    **extra: Any,
) -> Any:
    """A page from ``rows`` fetched with ``limit + 1`` (the extra row only says more exist).

    ``key`` gives a row's sort key (what the next page starts after), ``shape`` turns a row
    into the item shown (a summary, a row without secrets); ``extra`` adds fields before
    ``items`` (e.g. the item a list of votes belongs to).
    """
    has_more = len(rows) > limit
    kept = list(rows[:limit])
    cursors = [encode_cursor(kind, key(row)) for row in kept]
    value = {
        **extra,
        "items": [shape(row) for row in kept] if shape else kept,
        "has_more": has_more,
        "next_cursor": cursors[-1] if has_more and cursors else None,
        "total": total,
        "as_of": utc_now(),
    }
    return PageResult(value, cursors)
