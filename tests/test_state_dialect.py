"""Every repository query the two engines write differently (``mcp_state.dialect``) gives the same
answer on both: column lists without hidden or secret columns, JSON lookups, the word index and
ranked search, "last value by sequence" aggregates, upserts that keep stored values.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mcp_state.repositories import (
    KnowledgeRepository,
    ProfileRepository,
    ScriptRepository,
    SyncStateRepository,
)
from mcp_state.repositories.tokens import TokenRepository

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def test_knowledge_rows_summaries_tags_and_ranked_search(state_db):
    repo = KnowledgeRepository(state_db)
    repo.create(
        "k1", "Churn rate", "How churn is measured.  Monthly   cohorts.", "metrics", tags=["KPI", "churn"]
    )
    repo.create("k2", "Revenue", "Straße and école: churn of revenue", "finance", tags=["money"])
    repo.create("k3", "Öl", "nothing here", "misc", tags=None)
    repo.vote("k2", "u1", 1)
    repo.vote("k2", "u2", 1)
    repo.vote("k1", "u1", -1)

    item = repo.get_by_id("k1")
    assert item is not None and "change_seq" not in item and item["tags"] == ["KPI", "churn"]
    assert [r["id"] for r in repo.list_summaries(sort="updated")] == ["k3", "k2", "k1"]
    assert [r["id"] for r in repo.list_summaries(sort="votes")][:1] == ["k2"]
    assert [r["id"] for r in repo.list_summaries(tag="kpi")] == ["k1"]  # tags match case-insensitively
    first = repo.list_summaries(sort="created", limit=1)
    rest = repo.list_summaries(sort="created", after=(first[0]["created_at"], first[0]["id"]))
    assert len(first) + len(rest) == 3
    summary = repo.list_summaries(tag="churn", include_content=True, content_limit=9)[0]
    assert summary["snippet"] == "How churn is measured. Monthly cohorts."
    assert summary["content"] == "How churn" and summary["content_chars"] == 42
    assert (summary["upvotes"], summary["downvotes"]) == (0, 1)

    assert repo.query_words("Straße, ÉCOLE 42!") == ["straße", "école", "42"]
    ranked = repo.search_ranked("churn revenue")
    assert [(r["id"], r["score"]) for r in ranked] == [("k2", 2.25), ("k1", 1.375)]
    assert [r["id"] for r in repo.search_ranked("öl")] == ["k3"]
    assert [r["id"] for r in repo.search_ranked("churn", tag="money")] == ["k2"]
    assert [r["id"] for r in repo.search("CHURN R")] == ["k1"]
    repo.update("k3", title="Oil")
    assert repo.search_ranked("öl") == [] and [r["id"] for r in repo.search_ranked("oil")] == ["k3"]


def test_sync_failure_summary_takes_the_last_failure_by_commit_order(state_db):
    sync = SyncStateRepository(state_db)
    sync.record("orders", status="error", error="first", synced_at=T0)
    sync.record("orders", status="error", error="second", synced_at=T0 - timedelta(hours=1))  # clock back
    sync.record("orders", status="ok", rows=5, synced_at=T0 + timedelta(minutes=1))
    sync.record("users", status="ok", rows=1, synced_at=T0)
    [summary] = sync.failure_summary(since=T0 - timedelta(days=1))
    assert summary["table_id"] == "orders" and (summary["failures"], summary["syncs"]) == (2, 3)
    assert summary["last_error"] == "second" and summary["last_failure_at"] == T0 - timedelta(hours=1)
    assert summary["current_status"] == "ok" and summary["last_sync"] == T0 + timedelta(minutes=1)
    state = sync.record("orders", status="ok")  # left out: rows keep what is stored
    assert state["rows"] == 5


def test_profile_summaries_count_columns_of_a_list_or_an_object(state_db):
    profiles = ProfileRepository(state_db)
    profiles.save("a", {"columns": [{"name": "x"}, {"name": "y"}], "row_count": 3})
    profiles.save("b", {"columns": {"x": {}, "y": {}, "z": {}}})
    profiles.save("c", {"row_count": 1})
    counts = {row["table_id"]: row["column_count"] for row in profiles.list_summaries()}
    assert counts == {"a": 2, "b": 3, "c": 0}
    assert profiles.get_summary("c")["size_chars"] == len('{"row_count": 1}')
    assert profiles.get("a")["row_count"] == 3


def test_script_summaries_leave_the_source_out_and_a_redeploy_keeps_the_owner(state_db):
    scripts = ScriptRepository(state_db)
    scripts.deploy("s1", "Nightly", owner="ada", source="print(1)")
    scripts.deploy("s1", "Nightly", source="print(2)")  # no owner given: the stored one stays
    [row] = scripts.list_summaries()
    assert "source" not in row and row["source_chars"] == 8 and row["owner"] == "ada"


def test_tokens_are_created_verified_and_revoked(state_db):
    tokens = TokenRepository(state_db)
    token, record = tokens.create("agent", "write")
    assert "token_hash" not in record
    assert tokens.verify(token)["id"] == record["id"]
    tokens.revoke(record["id"])
    assert tokens.verify(token) is None and tokens.count_active() == 0
