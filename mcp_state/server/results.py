"""Stand-in for issue 9 part A's ``server/results.py`` (cursor helpers only), coded against
its announced contract so part B's tools run before part A lands; part A's file replaces it.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from mcp_state.errors import InvalidArgumentError


def encode_cursor(kind: str, key: tuple[Any, ...]) -> str:
    raw = json.dumps([kind, list(key)], separators=(",", ":"), default=str)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str | None) -> tuple[Any, ...] | None:
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        found, key = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if found == kind and isinstance(key, list):
            return tuple(key)
    except (ValueError, TypeError):
        pass
    raise InvalidArgumentError(
        "cursor is not one this tool gave out: pass next_cursor from the previous page unchanged"
    )
