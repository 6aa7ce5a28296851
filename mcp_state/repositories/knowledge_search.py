"""The ranked page of ``search_knowledge``, from the word index alone (``knowledge_words``).

``score`` = the number of query words the item has (``matched``), plus up to 0.5 for words in
its title and 0.25 for words in its tags (``0.5 * titled / n + 0.25 * tagged / n``), so more
words rank first, then title matches, then tag matches; ties by id. Order: score descending,
id ascending, paged by keyset on (score, id).

An item that has ``m`` of the words scores at least ``m`` and less than ``m + 1``, so the items
with two or more words all rank above the items with one. Scoring every hit takes a hash
aggregate over all of them (at 1M items with two words in half of them: 500,000 groups,
~55 ms in DuckDB); the page is found in steps instead, each cheap:

1. the items with two or more words: joins of the words' hits on the integer ``item_key``
   (``_multi``). Usually few: their keys are read out once.
2. their page, if the cursor is not already past them (score 2 or more): only their rows
   grouped and scored.
3. if the page is not full, the items with exactly one word: that word's index row alone is
   the item's score, so a top-N over the rows (the items of step 1 left out) ordered by
   (in_title, in_tags, item_id), the same order as (score, id) among them; scores are
   computed for the page's rows only.

Filters (``status``, ``tag``) join the items' rows on ``item_key``; snippets are read for
the page's items only (by the caller).
"""

from __future__ import annotations

from typing import Any

from mcp_state.gateway import Gateway
from mcp_state.repositories.base import Order, keyset, order_sql

ORDER: Order = (("score", True), ("id", False))
# Up to this many items with two or more words are read out once and passed to the steps.
MULTI_LISTED = 10_000
PAIRED = 4  # up to this many words, items with two or more are found pair by pair (_multi)
_SCORE = "matched + 0.5 * titled / {n} + 0.25 * tagged / {n}"  # rounded to 6 decimals
# An item with one word: its rank among those is this (3: in title and tags ... 0: content).
_FLAGS = "(2 * CAST(h.in_title AS INTEGER) + CAST(h.in_tags AS INTEGER))"


def _marks(values: list[Any]) -> str:
    return ", ".join("?" for _ in values)


def _hits(words: list[str], columns: str = "item_key") -> tuple[str, list[str]]:
    """The index rows of ``words``: one equality scan per word (pushed into the scan, which
    skips row groups by their min/max and reads the other columns of matching rows only)."""
    return " UNION ALL ".join(f"SELECT {columns} FROM knowledge_words WHERE word = ?" for _ in words), words


def _multi(words: list[str]) -> tuple[str, list[str]]:
    """Keys of the items that have at least two of ``words``. Up to ``PAIRED`` words: an inner
    join of each pair of words' hits (a word has one row per item, so the join's build side has
    unique integer keys, which DuckDB joins about twice as fast as a semi-join); more words:
    each word's hits that an earlier word also has (a semi-join per word)."""
    parts: list[str] = []
    params: list[str] = []
    if len(words) <= PAIRED:
        for j in range(1, len(words)):
            for i in range(j):
                parts.append(
                    "SELECT a.item_key FROM knowledge_words a JOIN knowledge_words b "
                    "ON a.item_key = b.item_key WHERE a.word = ? AND b.word = ?"
                )
                params += [words[j], words[i]]
        return " UNION ".join(parts), params
    for j in range(1, len(words)):
        earlier, earlier_params = _hits(words[:j])
        parts.append(f"SELECT item_key FROM knowledge_words WHERE word = ? AND item_key IN ({earlier})")
        params += [words[j], *earlier_params]
    return " UNION ".join(parts), params


def ranked_page(
    db: Gateway,
    words: list[str],
    filters: tuple[str, list[Any]],
    limit: int,
    after: tuple[Any, ...] | None,
) -> list[dict[str, Any]]:
    """``limit`` items (``id``, ``score``) after ``after``, best first; ``filters`` (a
    condition on ``knowledge_items`` and its parameters) narrow the items."""
    n = len(words)
    multi: tuple[str, list[Any]] | None = None  # the items with two or more words, as SQL
    if n > 1:
        sql, params = _multi(words)
        keys = [row["item_key"] for row in db.fetch_all(f"{sql} LIMIT {MULTI_LISTED + 1}", params)]
        if len(keys) > MULTI_LISTED:  # many: each step finds them again
            multi = (sql, params)
        elif keys:
            multi = ("SELECT unnest(CAST(? AS BIGINT[]))", [keys])
    score = db.dialect.double(_SCORE.format(n=n), 6)
    where, params = filters
    hits, hit_params = _hits(words, "item_key, item_id, in_title, in_tags")
    # Filters need the item's row; without them the index alone ranks the page.
    items = f"JOIN knowledge_items k ON k.item_key = h.item_key AND {where}" if where else ""
    rows: list[dict[str, Any]] = []
    condition, more = keyset(ORDER, after)  # (a cursor of the wrong shape is refused here)
    past_multi = after is not None and isinstance(after[0], int | float) and after[0] < 2
    if multi and not past_multi:
        rows = db.fetch_all(
            f"""WITH counted AS (
                    SELECT item_key, min(item_id) AS item_id, count(*) AS matched,
                           count(*) FILTER (WHERE in_title) AS titled, count(*) FILTER (WHERE in_tags) AS tagged
                    FROM ({hits}) AS w WHERE item_key IN ({multi[0]}) GROUP BY item_key),
                ranked AS (SELECT h.item_id AS id, {score} AS score FROM counted h {items})
                SELECT id, score FROM ranked {"WHERE " + condition if condition else ""}
                ORDER BY {order_sql(ORDER)} LIMIT ?""",
            [*hit_params, *multi[1], *params, *more, limit],
        )
    if len(rows) < limit:
        condition, more = _single_after(n, after if past_multi else None)
        clauses = ["true"]
        if multi:
            clauses.append(f"h.item_key NOT IN ({multi[0]})")
        if condition:
            clauses.append(condition)
        rows += db.fetch_all(
            f"""SELECT id, {score} AS score FROM (
                    SELECT h.item_id AS id, 1 AS matched, CAST(h.in_title AS INTEGER) AS titled,
                           CAST(h.in_tags AS INTEGER) AS tagged
                    FROM ({hits}) AS h {items} WHERE {" AND ".join(clauses)}
                    ORDER BY {_FLAGS} DESC, h.item_id LIMIT ?) AS page
                ORDER BY {order_sql(ORDER)}""",
            [*hit_params, *params, *(multi[1] if multi else []), *more, limit - len(rows)],
        )
    return rows


def _single_after(n: int, after: tuple[Any, ...] | None) -> tuple[str, list[Any]]:
    """The keyset condition for a cursor at (score, id) on the rows of the items with one
    word, in their own order (``_FLAGS`` descending, item_id)."""
    if after is None:
        return "", []
    score, item_id = after
    # Each _FLAGS value has its score; distinct ones differ by 0.25 / n, far above rounding.
    scores = {flags: round(1 + 0.5 * (flags // 2) / n + 0.25 * (flags % 2) / n, 6) for flags in range(4)}
    below = [flags for flags, s in scores.items() if s < score - 1e-9]
    equal = [flags for flags, s in scores.items() if abs(s - score) <= 1e-9]
    parts = [f"{_FLAGS} IN ({_marks(below)})"] if below else []
    if equal:
        parts.append(f"({_FLAGS} = ? AND h.item_id > ?)")
    condition = "(" + " OR ".join(parts) + ")" if parts else "false"
    return condition, [*below, *([equal[0], item_id] if equal else [])]
