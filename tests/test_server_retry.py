"""A write tool that collides with a concurrent transaction runs again whole, body and audit row.

On PostgreSQL a deadlock or serialization failure rolls one transaction back; the server's write
wrapper (``server/audit.py``) runs the tool's body and its audit row again through
``Gateway.retrying``. The collision is injected once into the repository method (a real one is
provoked in test_state_postgres.py); the database and the MCP client are real.
"""

from __future__ import annotations

from typing import Any

import pytest
from server_support import connect

from mcp_state.db import Database
from mcp_state.errors import TransientConflictError
from mcp_state.repositories import AuditRepository, KnowledgeRepository, UserRepository

pytestmark = pytest.mark.anyio


async def test_a_collision_reruns_the_body_and_its_audit_row_once(pg_state_url, monkeypatch):
    with Database(pg_state_url) as db:
        UserRepository(db).create("tester", "tester@example.com", "Tester")
        KnowledgeRepository(db).create("k1", "Churn", "How churn is measured", "metrics")
    calls: list[int] = []
    vote = KnowledgeRepository.vote

    def collide_once(self: KnowledgeRepository, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        result = vote(self, *args, **kwargs)  # the vote is written, then the transaction collides
        if len(calls) == 1:
            raise TransientConflictError("the change collided with concurrent changes (a deadlock)")
        return result

    monkeypatch.setattr(KnowledgeRepository, "vote", collide_once)
    async with connect(pg_state_url) as client:
        result = await client.call_tool("vote_knowledge_item", {"item_id": "k1", "vote": 1})
    assert not result.is_error, result.content[0].text
    assert result.structured_content["upvotes"] == 1
    assert len(calls) == 2
    with Database(pg_state_url) as db:
        entries = AuditRepository(db).query(action="vote_knowledge_item")
        assert [e["result"] for e in entries] == ["ok"]  # the first try's row was rolled back with it
        assert KnowledgeRepository(db).get_votes("k1") == {"upvotes": 1, "downvotes": 0}


async def test_collisions_past_the_retries_are_a_conflict_the_agent_can_retry(pg_state_url, monkeypatch):
    with Database(pg_state_url) as db:
        UserRepository(db).create("tester", "tester@example.com", "Tester")
        KnowledgeRepository(db).create("k1", "Churn", "How churn is measured", "metrics")

    def always(self: KnowledgeRepository, *args: Any, **kwargs: Any) -> Any:
        raise TransientConflictError("the change collided with concurrent changes (a deadlock); retry")

    monkeypatch.setattr(KnowledgeRepository, "vote", always)
    async with connect(pg_state_url) as client:
        result = await client.call_tool("vote_knowledge_item", {"item_id": "k1", "vote": 1})
    assert result.is_error and "[transient_conflict]" in result.content[0].text
    with Database(pg_state_url) as db:
        assert [e["result"] for e in AuditRepository(db).query(action="vote_knowledge_item")] == [
            "transient_conflict"
        ]
        assert KnowledgeRepository(db).get_votes("k1") == {"upvotes": 0, "downvotes": 0}
