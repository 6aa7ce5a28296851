"""The one home of the result budget: every tool result, resource and prompt text goes through here.

The pipeline, in order (``render``):

1. **shape**: the value as plain JSON types (datetimes as ISO strings);
2. **fit**: cut to the budget minus what the boundary step reserves. A page keeps its first
   items that fit and points ``next_cursor`` at the last one kept; anything else has its
   longest strings, then its longest lists, shortened. A cut result says so:
   ``truncated: true``, ``omitted`` (what was left out) and ``next_step`` (how to get it);
3. **text**: compact JSON;
4. **boundary**: ``BOUNDARY.apply`` puts text written by people or outside systems inside the
   untrusted-data boundary (``untrusted.bounded``); its ``reserve`` is what the wrapping may add,
   so the final text still fits the budget.

The structured content of a tool result is the fitted value of step 2, so it is bounded too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pydantic_core
from mcp_types import CallToolResult, TextContent

from mcp_state.errors import InvalidArgumentError
from mcp_state.server import untrusted
from mcp_state.server.paging import PageResult

DEFAULT_MAX_RESULT_CHARS = 20_000
MIN_RESULT_CHARS = 2_000
ENV_MAX_RESULT_CHARS = "MCP_STATE_MAX_RESULT_CHARS"
_MIN_STRING = 80  # strings are not cut shorter than this before lists are cut
# Values never cut: they are how the caller gets the rest, or what says a cut happened.
_KEEP = frozenset({"next_cursor", "truncated", "omitted", "next_step", "id", "as_of"})


@dataclass(frozen=True)
class Boundary:
    """The last step of rendering: ``apply`` wraps the text and adds at most ``reserve`` characters."""

    reserve: int
    apply: Callable[[str, Any, str], str]  # (text, the value it renders, the tool or resource name)


BOUNDARY = Boundary(reserve=400, apply=untrusted.bounded)


def max_result_chars(value: int | None = None) -> int:
    """The budget: ``value``, else ``$MCP_STATE_MAX_RESULT_CHARS``, else 20,000 characters."""
    if value is None:
        raw = os.environ.get(ENV_MAX_RESULT_CHARS, "").strip()
        if not raw:
            return DEFAULT_MAX_RESULT_CHARS
        try:
            value = int(raw)
        except ValueError:
            raise InvalidArgumentError(
                f"{ENV_MAX_RESULT_CHARS} must be a whole number of characters; got {raw!r}"
            ) from None
    if value < MIN_RESULT_CHARS:
        raise InvalidArgumentError(
            f"the result budget must be at least {MIN_RESULT_CHARS} characters; got {value}"
        )
    return value


def room(budget: int) -> int:
    """Characters the fitted JSON may use: the budget minus the boundary's reserve."""
    return budget - BOUNDARY.reserve


# -- 1. shape ---------------------------------------------------------------------------------
def shape(value: Any) -> Any:
    """``value`` as plain JSON types (datetimes as ISO 8601 strings)."""
    return pydantic_core.to_jsonable_python(value, fallback=str)


# -- 3. text ----------------------------------------------------------------------------------
def to_text(shaped: Any) -> str:
    """Compact JSON (no indentation, no spaces after separators, non-ASCII kept)."""
    return json.dumps(shaped, separators=(",", ":"), ensure_ascii=False)


def size(shaped: Any) -> int:
    return len(to_text(shaped))


# -- 2. fit -----------------------------------------------------------------------------------
def fit(value: Any, limit: int, next_step: str = "") -> Any:
    """``value`` shaped and cut so that its compact JSON has at most ``limit`` characters."""
    shaped = shape(value)
    if size(shaped) <= limit:
        return shaped
    if isinstance(value, PageResult):
        return _fit_page(value, shaped, limit)
    return cut(shaped, limit, next_step or "ask for less (a narrower filter or a single item)")


def _fit_page(value: PageResult, shaped: dict[str, Any], limit: int) -> Any:
    """The first items of the page that fit, with ``next_cursor`` after the last one kept."""
    items: list[Any] = shaped["items"]
    lengths = [size(item) for item in items]
    n = len(items)

    def page_of(k: int) -> dict[str, Any]:
        kept = k < n
        out = {
            **shaped,
            "items": items[:k],
            "has_more": True if kept else shaped["has_more"],
            "next_cursor": value.cursor_after(k - 1) if kept and k > 0 else shaped["next_cursor"],
            "truncated": True,
            "omitted": f"{n - k} of the {n} items of this page (the result budget is {limit} characters)",
            "next_step": "call again with cursor=next_cursor for the rest, or ask for a smaller limit "
            "or a narrower filter; use the get_ tool for one item in full",
        }
        return out

    base = size(page_of(0)) + 2  # room for a longer "omitted" count
    k, used = 0, base
    for length in lengths:
        if used + length + (1 if k else 0) > limit:
            break
        used += length + (1 if k else 0)
        k += 1
    if k == 0:  # not even one item fits whole: keep one, cut inside it
        return cut(page_of(1), limit, "call get_ for the item, or pass next_cursor as cursor")
    return page_of(k)


def cut(shaped: Any, limit: int, next_step: str) -> Any:
    """``shaped`` with its longest strings, then its longest lists, shortened to fit ``limit``."""
    marker_room = 600  # for truncated/omitted/next_step and the cut markers
    target = max(limit - marker_room, 0)
    notes: list[str] = []
    longest = max(_string_lengths(shaped), default=0)
    if longest > _MIN_STRING:
        cap = _largest(_MIN_STRING, longest, lambda n: size(_cap_strings(shaped, n, [])) <= target)
        shaped = _cap_strings(shaped, cap, notes)
    if size(shaped) > target:
        longest = max(_list_lengths(shaped), default=0)
        cap = _largest(0, longest, lambda n: size(_cap_lists(shaped, n, [])) <= target)
        shaped = _cap_lists(shaped, cap, notes)
    omitted = "; ".join(notes[:8]) + (f"; and {len(notes) - 8} more" if len(notes) > 8 else "")
    note = {"truncated": True, "omitted": omitted[:300], "next_step": next_step[:200]}
    if isinstance(shaped, dict) and size(shaped) <= target:
        return {**shaped, **note}
    return note  # nothing sensible fits: say so rather than send a broken value


def _largest(low: int, high: int, fits: Callable[[int], bool]) -> int:
    """The largest cap in ``low..high`` for which ``fits`` holds (``low`` if none does)."""
    best = low
    while low <= high:
        mid = (low + high) // 2
        if fits(mid):
            best, low = mid, mid + 1
        else:
            high = mid - 1
    return best


def _string_lengths(node: Any) -> list[int]:
    if isinstance(node, str):
        return [len(node)]
    if isinstance(node, dict):
        return [n for v in node.values() for n in _string_lengths(v)]
    if isinstance(node, list):
        return [n for v in node for n in _string_lengths(v)]
    return []


def _list_lengths(node: Any) -> list[int]:
    if isinstance(node, dict):
        return [n for v in node.values() for n in _list_lengths(v)]
    if isinstance(node, list):
        return [len(node), *(n for v in node for n in _list_lengths(v))]
    return []


def _cap_strings(node: Any, cap: int, notes: list[str], path: str = "") -> Any:
    if isinstance(node, str) and len(node) > cap:
        notes.append(f"{path or 'text'}: {len(node) - cap} of {len(node)} characters")
        return node[:cap] + "…"
    if isinstance(node, dict):
        return {
            k: v if k in _KEEP else _cap_strings(v, cap, notes, f"{path}.{k}" if path else k)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_cap_strings(v, cap, notes, f"{path}[{i}]") for i, v in enumerate(node)]
    return node


def _cap_lists(node: Any, cap: int, notes: list[str], path: str = "") -> Any:
    if isinstance(node, dict):
        return {k: _cap_lists(v, cap, notes, f"{path}.{k}" if path else k) for k, v in node.items()}
    if isinstance(node, list):
        if len(node) > cap:
            notes.append(f"{path or 'list'}: {len(node) - cap} of {len(node)} entries")
        return [_cap_lists(v, cap, notes, f"{path}[{i}]") for i, v in enumerate(node[:cap])]
    return node


def read_field(row: dict[str, Any], field: str, offset: int, budget: int) -> dict[str, Any]:
    """``row`` with its large text ``field`` read from ``offset`` as far as the budget allows.

    Adds ``<field>_chars`` (the whole length) and ``next_<field>_offset`` (where to read on,
    null at the end); a cut says so with ``truncated``, ``omitted`` and ``next_step``.
    """
    text = row.get(field) or ""
    if offset > len(text):
        raise InvalidArgumentError(
            f"{field}_offset {offset} is past the end of {field} ({len(text)} characters)"
        )
    head = shape({**row, field: "", f"{field}_chars": len(text), f"next_{field}_offset": len(text)})
    limit = room(budget) - size(head) - 400  # the note of a cut
    end = min(len(text), offset + max(limit, 0))
    while end > offset and len(json.dumps(text[offset:end], ensure_ascii=False)) - 2 > limit:
        over = len(json.dumps(text[offset:end], ensure_ascii=False)) - 2 - limit
        end = max(offset, end - over)
    out = {**row, field: text[offset:end] if text else row.get(field), f"{field}_chars": len(text)}
    out[f"next_{field}_offset"] = end if end < len(text) else None
    skipped = [f"{a}-{b}" for a, b in ((0, offset), (end, len(text))) if b > a]
    if skipped:
        out |= {
            "truncated": True,
            "omitted": f"{field}: characters {' and '.join(skipped)} of {len(text)}",
            "next_step": f"call again with {field}_offset={end} to read on"
            if end < len(text)
            else f"call again with {field}_offset=0 for the start",
        }
    return out


# -- the whole pipeline -----------------------------------------------------------------------
@dataclass(frozen=True)
class Rendered:
    structured: Any
    text: str


def render(value: Any, budget: int, next_step: str = "", name: str = "") -> Rendered:
    """shape → fit → text → boundary: at most ``budget`` characters of text (``name``: the tool or resource)."""
    fitted = fit(value, room(budget), next_step)
    return Rendered(fitted, BOUNDARY.apply(to_text(fitted), fitted, name))


class RenderedResult(CallToolResult):
    """A tool result that went through ``render`` (the server edge leaves it as it is)."""


def tool_result(value: Any, budget: int, next_step: str = "", name: str = "") -> RenderedResult:
    """A tool's return value as an MCP result: bounded structured content and its text."""
    out = render(value, budget, next_step, name)
    structured = out.structured if isinstance(out.structured, dict) else {"result": out.structured}
    return RenderedResult(content=[TextContent(type="text", text=out.text)], structured_content=structured)


def bound_result(result: Any, budget: int, name: str = "") -> Any:
    """A result built elsewhere (e.g. by the SQL tools) brought under the budget the same way."""
    if isinstance(result, RenderedResult) or not isinstance(result, CallToolResult) or result.is_error:
        return result
    if result.structured_content is not None:
        out = render(result.structured_content, budget, name=name)
        return RenderedResult(
            content=[TextContent(type="text", text=out.text)],
            structured_content=out.structured
            if isinstance(out.structured, dict)
            else result.structured_content,
        )
    texts = [block for block in result.content if isinstance(block, TextContent)]
    if sum(len(block.text) for block in texts) <= budget:
        return result
    return RenderedResult(
        content=[TextContent(type="text", text=text_within(" ".join(b.text for b in texts), budget))]
    )


def resource_text(value: Any, budget: int, uri: str = "") -> str:
    """A resource's JSON text within the budget."""
    return render(value, budget, "use the matching list_ tool, which pages with a cursor", uri).text


def text_within(text: str, budget: int) -> str:
    """Plain text (a prompt) cut to the budget, saying how much was left out."""
    limit = room(budget)
    if len(text) <= limit:
        return text
    note = f"\n[truncated: {{}} of {len(text)} characters left out to fit the result budget]"
    keep = limit - len(note.format(len(text)))
    return text[:keep] + note.format(len(text) - keep)


def prompt_data(label: str, data: Any, budget: int) -> str:
    """A prompt's data block: ``label``, then ``data`` as compact JSON inside the untrusted-data
    boundary, the data cut so that the whole block fits the budget."""
    head = f"{label}, as read from mcp-state:\n"
    fitted = fit(data, room(budget) - len(head), "call the tools named in the request for the rest")
    return head + untrusted.mark(to_text(fitted))
