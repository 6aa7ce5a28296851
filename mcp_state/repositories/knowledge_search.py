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

Filters (``status``, ``tag``) join the items' rows on ``item_key`` in steps 1 and 2. In
step 3 the one-word items are read in their order in batches (``PROBE_FIRST`` candidates,
then as many as the share the filters kept so far predicts), each batch's keys checked
against the filters, until the page is full: joining every hit with the items instead cost
~120 ms at 1M items (~9x the cost at 1,000). When a batch would be larger than ``PROBED``
(filters that keep few items), the rest is joined in one query. Snippets are read for the
page's items only (by the caller).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mcp_state.gateway import Gateway
from mcp_state.repositories.base import Order, keyset, order_sql

ORDER: Order = (("score", True), ("id", False))
# Up to this many items with two or more words are read out once and passed to the steps.
MULTI_LISTED = 10_000
PAIRED = 4  # up to this many words, items with two or more are found pair by pair (_multi)
_SCORE = "matched + 0.5 * titled / {n} + 0.25 * tagged / {n}"  # rounded to 6 decimals
PROBE_FIRST = 1024  # step 3 with filters: the first batch of candidates, or PROBE_PER_ROW
PROBE_PER_ROW = 8  # ... per row needed if that is more
PROBED = 8192  # a batch the filters' share predicts larger than this: the rest joined at once
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
    items = _joined(where)
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
        steps = " AND ".join(clauses)

        def single(join: str, past: str) -> str:
            return f"""SELECT item_key, id, flags, {score} AS score FROM (
                    SELECT h.item_key, h.item_id AS id, {_FLAGS} AS flags, 1 AS matched,
                           CAST(h.in_title AS INTEGER) AS titled, CAST(h.in_tags AS INTEGER) AS tagged
                    FROM ({hits}) AS h {join} WHERE {steps}{past}
                    ORDER BY {_FLAGS} DESC, h.item_id LIMIT ?) AS page
                ORDER BY flags DESC, id"""

        tail = [*(multi[1] if multi else []), *more]
        rows += _single_page(db, single, (hit_params, tail), filters, limit - len(rows))
    return [{"id": row["id"], "score": row["score"]} for row in rows]


def _single_page(
    db: Gateway,
    single: Callable[[str, str], str],
    params: tuple[list[Any], list[Any]],
    filters: tuple[str, list[Any]],
    limit: int,
) -> list[dict[str, Any]]:
    """``limit`` rows of step 3: ``single(join, past)`` is its query, joined with ``join`` and
    after the candidate ``past``; ``params`` are its parameters before and after the join's.
    With filters, the candidates are read in batches (the module's doc)."""
    head, tail = params
    where, where_params = filters
    if not where:
        return db.fetch_all(single("", ""), [*head, *tail, limit])
    rows: list[dict[str, Any]] = []
    past = ""
    past_params: list[Any] = []
    batch = max(PROBE_FIRST, PROBE_PER_ROW * limit)
    read = kept_count = 0
    while batch <= PROBED:
        candidates = db.fetch_all(single("", past), [*head, *tail, *past_params, batch])
        if not candidates:
            return rows
        kept = {
            row["item_key"]
            for row in db.fetch_all(
                "SELECT item_key FROM knowledge_items "
                f"WHERE item_key IN (SELECT unnest(CAST(? AS BIGINT[]))) AND {where}",
                [[row["item_key"] for row in candidates], *where_params],
            )
        }
        rows += [row for row in candidates if row["item_key"] in kept][: limit - len(rows)]
        if len(rows) == limit or len(candidates) < batch:
            return rows
        last = candidates[-1]
        past = f" AND ({_FLAGS} < ? OR ({_FLAGS} = ? AND h.item_id > ?))"
        past_params = [last["flags"], last["flags"], last["id"]]
        read, kept_count = read + len(candidates), kept_count + len(kept)
        # Twice the candidates that the share kept so far predicts for the rows still needed.
        batch = -(-2 * (limit - len(rows)) * read // kept_count) if kept_count else PROBED + 1
    return rows + db.fetch_all(
        single(_joined(where), past), [*head, *where_params, *tail, *past_params, limit - len(rows)]
    )


def _joined(where: str) -> str:
    """The join of the hits ``h`` with the items that pass the filters ``where``: filters need
    the item's row; without them the index alone ranks the page."""
    return f"JOIN knowledge_items k ON k.item_key = h.item_key AND {where}" if where else ""


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
