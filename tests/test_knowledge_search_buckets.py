"""search_knowledge in steps (items with several words first, then the one-word items' rows
alone) ranks exactly as scoring every hit would: checked against a ranking computed here in
Python, across ties, pages that cross from one bucket to the next, filters, an item edited
between pages, and the item keys migration 6 gives the items already there."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import pytest
from server_support import connect

from mcp_state.consistency import check
from mcp_state.db import Database, apply_migrations
from mcp_state.db import connect as connect_file
from mcp_state.repositories import knowledge_search
from mcp_state.repositories.knowledge import KnowledgeRepository

WORDS = ["alpha", "beta", "gamma", "delta"]


def expected(
    items: dict[str, dict[str, Any]], query: str, status: str | None = None
) -> list[tuple[str, float]]:
    """(id, score) of every item with a word of ``query``, best first: the documented ranking."""
    words = list(dict.fromkeys(re.findall(r"[a-z0-9]+", query.lower())))
    n = len(words)
    ranked = []
    for item_id, item in items.items():
        if status and item["status"] != status:
            continue
        title = set(re.findall(r"[a-z0-9]+", item["title"].lower()))
        tags = set(re.findall(r"[a-z0-9]+", json.dumps(item["tags"]).lower()))
        text = title | tags | set(re.findall(r"[a-z0-9]+", item["content"].lower()))
        matched = [w for w in words if w in text]
        if matched:
            score = len(matched) + 0.5 * len(title & set(words)) / n + 0.25 * len(tags & set(words)) / n
            ranked.append((item_id, round(score, 6)))
    return sorted(ranked, key=lambda pair: (-pair[1], pair[0]))


def random_items(repo: KnowledgeRepository, count: int, seed: int) -> dict[str, dict[str, Any]]:
    rng = random.Random(seed)
    items: dict[str, dict[str, Any]] = {}
    for i in rng.sample(range(1000), count):  # ids not in creation order
        item = {
            "title": " ".join(rng.sample(WORDS, rng.randint(0, 2))) or "untitled",
            "content": " ".join(rng.choice([*WORDS, "filler"]) for _ in range(rng.randint(0, 4))),
            "tags": rng.sample(WORDS, rng.randint(0, 1)),
            "status": rng.choice(["pending", "approved"]),
        }
        repo.create(
            f"k{i:03}", item["title"], item["content"], None, tags=item["tags"], status=item["status"]
        )
        items[f"k{i:03}"] = item
    return items


def paged(repo: KnowledgeRepository, query: str, limit: int, **filters: Any) -> list[tuple[str, float]]:
    """Every hit, ``limit`` at a time, each page after the last row of the one before."""
    found: list[tuple[str, float]] = []
    after = None
    while True:
        page = repo.search_ranked(query, limit=limit, after=after, **filters)
        found += [(row["id"], row["score"]) for row in page]
        if len(page) < limit:
            return found
        after = (page[-1]["score"], page[-1]["id"])


@pytest.mark.parametrize(
    ("listed", "probes"),
    [
        (knowledge_search.MULTI_LISTED, None),
        (1, None),
        (knowledge_search.MULTI_LISTED, (1, 1, 6)),
        (1, (1, 1, 1000)),
    ],
    ids=["listed", "found-again", "batches-then-join", "batches-to-the-end"],
)
def test_steps_rank_and_page_exactly_as_scoring_every_hit(
    state_db: Database, monkeypatch: pytest.MonkeyPatch, listed: int, probes: tuple[int, int, int] | None
) -> None:
    """On each backend; also with the items of several words found again by each step (more
    than MULTI_LISTED), and with filters checked in small batches (``probes``: the first batch,
    per row needed, the largest): several batches, then the rest joined at once (6), or
    batches until the hits run out (1000)."""
    monkeypatch.setattr(knowledge_search, "MULTI_LISTED", listed)
    if probes:
        for name, value in zip(("PROBE_FIRST", "PROBE_PER_ROW", "PROBED"), probes, strict=True):
            monkeypatch.setattr(knowledge_search, name, value)
    repo = KnowledgeRepository(state_db)
    items = random_items(repo, 30, seed=9)
    for query in ("alpha beta", "beta delta alpha gamma", "delta nothing", "a b gamma alpha beta"):
        want = expected(items, query)
        assert len(want) > 5, query
        assert [(r["id"], r["score"]) for r in repo.search_ranked(query, limit=100)] == want, query
        limit = 5 if listed == 1 else 3  # pages that end inside a bucket and cross into the next
        assert paged(repo, query, limit) == want, (query, limit)
        assert paged(repo, query, 4, statuses=["approved"]) == expected(items, query, "approved")
        tagged = [pair for pair in want if "alpha" in items[pair[0]]["tags"]]
        assert paged(repo, query, 3, tag="ALPHA") == tagged, query


def test_a_page_crosses_from_several_words_to_one(state_db: Database) -> None:
    repo = KnowledgeRepository(state_db)
    for item_id, content in [
        ("b2", "red blue"),
        ("b1", "blue red"),
        ("s3", "red"),
        ("s1", "blue"),
        ("s2", "red"),
    ]:
        repo.create(item_id, "Note", content, None)
    ties = [("b1", 2.0), ("b2", 2.0), ("s1", 1.0), ("s2", 1.0), ("s3", 1.0)]  # ties by id
    assert paged(repo, "red blue", 3) == ties
    assert paged(repo, "red blue", 2) == ties  # a page ends exactly where the bucket does
    after_both = repo.search_ranked("red blue", limit=5, after=(2.0, "b2"))
    assert [r["id"] for r in after_both] == ["s1", "s2", "s3"]


def test_an_item_edited_between_pages_neither_repeats_nor_hides_the_others(state_db: Database) -> None:
    repo = KnowledgeRepository(state_db)
    for i in range(6):
        repo.create(f"i{i}", "Note", "red" if i % 2 else "blue", None)
    first = repo.search_ranked("red blue", limit=2)
    assert [r["id"] for r in first] == ["i0", "i1"]
    repo.update("i4", content="red and blue")  # now has both words: ranks before the cursor
    repo.update("i1", content="green")  # already shown, now matches nothing
    rest = repo.search_ranked("red blue", limit=10, after=(first[-1]["score"], first[-1]["id"]))
    assert [r["id"] for r in rest] == ["i2", "i3", "i5"]
    assert [r["id"] for r in repo.search_ranked("red blue", limit=10)] == ["i4", "i0", "i2", "i3", "i5"]


@pytest.mark.anyio
async def test_the_tool_pages_across_the_buckets_with_an_exact_has_more(tmp_path: Path) -> None:
    path = tmp_path / "t.duckdb"
    with Database(path, idle_release=None) as db:
        repo = KnowledgeRepository(db)
        for item_id, title, content in [
            ("a", "Red", "blue"),
            ("b", "Other", "red blue"),
            ("c", "Other", "red"),
        ]:
            repo.create(item_id, title, content, None)
    async with connect(path) as client:
        pages, cursor = [], None
        while True:
            args: dict[str, Any] = {"query": "red blue", "limit": 1, **({"cursor": cursor} if cursor else {})}
            page = (await client.call_tool("search_knowledge", args)).structured_content
            pages.append(([(i["id"], i["score"]) for i in page["items"]], page["has_more"]))
            if not page["has_more"]:
                break
            cursor = page["next_cursor"]
    assert pages == [([("a", 2.25)], True), ([("b", 2.0)], True), ([("c", 1.0)], False)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_migration_6_keys_the_items_already_there(tmp_path: Path) -> None:
    path = tmp_path / "v5.duckdb"
    conn = connect_file(path, migrate=False)
    apply_migrations(conn, target=3)
    conn.execute(
        "INSERT INTO knowledge_items (id, title, content, tags) VALUES "
        "('k1', 'Churn', 'Revenue lost to churn', '[\"MRR\"]'), ('k2', 'Other', 'churn', NULL), "
        "('k3', 'Third', 'nothing', NULL)"
    )
    apply_migrations(conn, target=5)  # migration 4 indexes them, by id only
    conn.close()
    with Database(path, idle_release=None) as db:  # opening migrates to the latest version
        repo = KnowledgeRepository(db)
        repo.create("k4", "Churn again", "more churn", None)
        keys = {r["id"]: r["item_key"] for r in repo.db.fetch_all("SELECT id, item_key FROM knowledge_items")}
        hits = [(r["id"], r["score"]) for r in repo.search_ranked("churn revenue")]
        assert "item_key" not in repo.get_by_id("k1")  # bookkeeping, like change_seq
    assert sorted(keys.values()) == [1, 2, 3, 4] and keys["k4"] == 4
    assert hits == [("k1", 2.25), ("k4", 1.25), ("k2", 1.0)]
    conn = connect_file(path, migrate=False, config={"access_mode": "READ_ONLY"})
    try:
        indexed = conn.execute("SELECT DISTINCT item_id, item_key FROM knowledge_words ORDER BY 1").fetchall()
        assert indexed == sorted(keys.items())
        assert check(conn, str(path)).problems == []
    finally:
        conn.close()
