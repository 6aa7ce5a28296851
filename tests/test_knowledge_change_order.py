"""Every knowledge item has a ``change_seq`` (migration 5), so newest first is a plain column sort.

Items from before (imported, or older than migration 4) are numbered without changing the
order they listed in; the legacy import numbers the items it writes, newest by time first.
"""

from __future__ import annotations

from migration_support import FIXTURE, edit_json, legacy_copy

from mcp_state.db import apply_migrations, connect
from mcp_state.legacy import migrate_all
from mcp_state.repositories import KnowledgeRepository


def ids_in_order(conn) -> list[str]:
    return [row["id"] for row in KnowledgeRepository(conn).list_summaries(limit=100)]


def test_migration_5_numbers_the_items_without_changing_their_order(tmp_path):
    conn = connect(tmp_path / "s.duckdb", migrate=False)
    apply_migrations(conn, target=4)
    conn.execute(
        """INSERT INTO knowledge_items (id, title, created_at, updated_at, change_seq) VALUES
           ('old-a', 'A', TIMESTAMP '2024-01-01', TIMESTAMP '2024-03-01', NULL),
           ('old-b', 'B', TIMESTAMP '2024-02-01', NULL, NULL),
           ('old-c', 'C', NULL, NULL, NULL),
           ('old-d', 'D', TIMESTAMP '2024-03-01', TIMESTAMP '2024-03-01', NULL),
           ('new-1', 'N1', TIMESTAMP '2020-01-01', TIMESTAMP '2020-01-01', nextval('knowledge_change_seq')),
           ('new-2', 'N2', TIMESTAMP '2019-01-01', TIMESTAMP '2019-01-01', nextval('knowledge_change_seq'))"""
    )
    # The order before: changed here (newest change first), then the others newest by time, then by id.
    before = ["new-2", "new-1", "old-a", "old-d", "old-b", "old-c"]
    assert apply_migrations(conn) >= 5
    assert conn.execute("SELECT count(*) FROM knowledge_items WHERE change_seq IS NULL").fetchone()[0] == 0
    assert ids_in_order(conn) == before
    # A row written without one still gets the next number, and lists first.
    conn.execute("INSERT INTO knowledge_items (id, title) VALUES ('raw', 'R')")
    assert ids_in_order(conn)[0] == "raw"
    KnowledgeRepository(conn).update("old-c", title="C2")
    assert ids_in_order(conn)[:2] == ["old-c", "raw"]
    conn.close()


def test_the_legacy_import_numbers_its_items_newest_first(tmp_path):
    path = tmp_path / "s.duckdb"
    migrate_all(FIXTURE, db_path=path)
    conn = connect(path)
    rows = conn.execute(
        """SELECT id, change_seq, coalesce(updated_at, created_at) AS t FROM knowledge_items
           ORDER BY change_seq DESC"""
    ).fetchall()
    assert rows and all(seq is not None for _, seq, _ in rows)
    assert len({seq for _, seq, _ in rows}) == len(rows)
    times = [t for _, _, t in rows if t is not None]
    assert times == sorted(times, reverse=True)
    assert ids_in_order(conn) == [row[0] for row in rows]
    conn.close()
    # Importing again with one item changed: that item is the latest change and lists first.
    source = legacy_copy(tmp_path)
    last = rows[-1][0]
    edit_json(
        source / "corporate-memory/knowledge.json",
        lambda items: next(i for i in items if i["id"] == last).update(title="Changed title"),
    )
    migrate_all(source, db_path=path)
    conn = connect(path)
    assert ids_in_order(conn)[0] == last
    assert ids_in_order(conn)[1:] == [row[0] for row in rows[:-1]]
    conn.close()


def test_a_one_word_search_ranks_from_the_index_rows_alone(tmp_path):
    """One word: no grouping, the same scores and order (title, then tags, then content; ties by id)."""
    conn = connect(tmp_path / "s.duckdb")
    repo = KnowledgeRepository(conn)
    repo.create("c2", "Other", "about churn here", None)
    repo.create("c1", "Other", "churn churn", None, status="approved")
    repo.create("tg", "Other", "nothing", None, tags=["Churn"])
    repo.create("ti", "Churn basics", "see content", None, tags=["churn"])
    repo.create("no", "Unrelated", "revenue", None)
    found = repo.search_ranked("CHURN", limit=10)
    assert [(r["id"], r["score"]) for r in found] == [("ti", 1.75), ("tg", 1.25), ("c1", 1.0), ("c2", 1.0)]
    assert "churn" in found[3]["snippet"]
    assert [r["id"] for r in repo.search_ranked("churn", statuses=["approved"])] == ["c1"]
    first = repo.search_ranked("churn", limit=2)
    rest = repo.search_ranked("churn", limit=10, after=(first[-1]["score"], first[-1]["id"]))
    assert [r["id"] for r in first + rest] == ["ti", "tg", "c1", "c2"]
    # Two words still add up: an item with both ranks above those with one.
    assert repo.search_ranked("churn revenue", limit=10)[0]["id"] == "ti"
    repo.update("no", content="revenue and churn")
    assert repo.search_ranked("churn revenue", limit=10)[0]["id"] == "no"
    conn.close()
