"""Fault suite: 8 concurrent clients over HTTP against a real ``mcp-state serve`` on 127.0.0.1.

Each client (its own bearer token, so its own audit actor) makes a few hundred mixed calls, and
they all aim at the same rows: one sync table, one knowledge item's votes (each client's own vote
and one shared voter), one Telegram link. Two races have exactly one winner each: creating the
same knowledge item ids, and consuming the same one-time codes. Nothing else may fail, and the
final counts are exact: history rows, audit rows per actor and tool, vote totals.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from fault_support import http_client, make_tokens, query, serving
from server_support import BOB, seeded_copy

from mcp_state.db import Database
from mcp_state.repositories.notifications import PendingCodeRepository
from mcp_state.repositories.sync_state import SyncStateRepository
from mcp_state.repositories.users import UserRepository

pytestmark = pytest.mark.slow

CLIENTS = 8
CALLS = 200  # per client
RACE_ITEMS = 10  # every client tries to create each of these ids once: one wins
CODES = 12  # every client tries each one-time code once: one consumes it
SHARED_TABLE = "shared"
SHARED_USER = "shared-user"
MUTATING = {
    "record_sync",
    "vote_knowledge_item",
    "link_telegram_user",
    "log_audit_event",
    "create_knowledge_item",
    "verify_pending_code",
}
EXPECTED_ERRORS = {"create_knowledge_item": "[conflict]", "verify_pending_code": "[not_found]"}


@dataclass
class Tally:
    """What one client sent and saw."""

    actor: str
    calls: Counter[str] = field(default_factory=Counter)
    ok: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    rows_sent: set[int] = field(default_factory=set)
    chats_sent: set[int] = field(default_factory=set)
    crowd_votes: set[int] = field(default_factory=set)
    last_vote: int | None = None
    race_won: set[str] = field(default_factory=set)
    codes_won: set[str] = field(default_factory=set)


def plan(index: int, codes: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """A client's calls: each race once, the rest drawn; all shuffled by the client's own seed."""
    rng = random.Random(index)
    calls: list[tuple[str, dict[str, Any]]] = [
        ("create_knowledge_item", {"id": f"km_race-{k}", "title": f"race {k} by client {index}"})
        for k in range(RACE_ITEMS)
    ]
    calls += [("verify_pending_code", {"user_id": BOB, "code": code}) for code in codes]
    while len(calls) < CALLS:
        n = len(calls)
        calls.append(
            rng.choices(
                [
                    (
                        "record_sync",
                        {
                            "table_id": SHARED_TABLE,
                            "rows": index * 100_000 + n,
                            "file_size_bytes": n,
                            "hash": f"c{index}-{n}",
                        },
                    ),
                    ("vote_knowledge_item", {"item_id": "km_1", "vote": rng.choice([1, -1])}),
                    (
                        "vote_knowledge_item",
                        {"item_id": "km_1", "vote": rng.choice([1, -1]), "user_id": "crowd"},
                    ),
                    ("link_telegram_user", {"user_id": SHARED_USER, "chat_id": index * 100_000 + n}),
                    ("log_audit_event", {"action": "concurrent_event", "resource": f"c{index}-{n}"}),
                    ("get_sync_state", {"table_id": SHARED_TABLE}),
                    ("get_knowledge_votes", {"item_id": "km_1", "limit": 5}),
                    ("query_audit_log", {"action": "record_sync", "limit": 3}),
                    ("list_sync_states", {}),
                ],
                weights=[25, 12, 4, 8, 10, 12, 10, 10, 9],
            )[0]
        )
    rng.shuffle(calls)
    return calls


async def run_client(url: str, token: str, tally: Tally, calls: list[tuple[str, dict[str, Any]]]) -> None:
    async with http_client(url, token) as client:
        for tool, args in calls:
            result = await client.call_tool(tool, args)
            tally.calls[tool] += 1
            text = " ".join(getattr(block, "text", "") for block in result.content)
            if result.is_error:
                if not text.endswith(EXPECTED_ERRORS.get(tool, "(no error expected)")):
                    tally.unexpected.append(f"{tool}: {text}")
                continue
            tally.ok[tool] += 1
            if tool == "record_sync":
                tally.rows_sent.add(args["rows"])
            elif tool == "link_telegram_user":
                tally.chats_sent.add(args["chat_id"])
            elif tool == "vote_knowledge_item" and "user_id" in args:
                tally.crowd_votes.add(args["vote"])
            elif tool == "vote_knowledge_item":
                tally.last_vote = args["vote"]
            elif tool == "create_knowledge_item":
                tally.race_won.add(args["id"])
            elif tool == "verify_pending_code":
                tally.codes_won.add(args["code"])


def test_eight_clients_over_http_get_exact_counts(tmp_path: Path) -> None:
    db_path = seeded_copy(tmp_path)[0]
    codes = [f"race-code-{k}" for k in range(CODES)]
    with Database(db_path, idle_release=None) as db:
        pending = PendingCodeRepository(db)
        for k, code in enumerate(codes):
            pending.create_code(code, 7_000 + k)
        users = UserRepository(db)  # votes and links name existing users
        for user_id in [*(f"client-{i}" for i in range(CLIENTS)), "crowd", SHARED_USER]:
            users.create(user_id, f"{user_id}@example.com", None)
        SyncStateRepository(db).update_sync(SHARED_TABLE, rows=0, file_size_bytes=0, hash="first")
    actors = [f"client-{i}" for i in range(CLIENTS)]
    tokens = make_tokens(db_path, dict.fromkeys(actors, "admin"))  # link_telegram_user needs admin
    audit_before = query(db_path, "SELECT count(*) FROM audit_log")[0][0]
    tallies = [Tally(actor) for actor in actors]

    with serving(db_path, "http", tmp_path / "logs") as server:
        started = time.monotonic()

        async def main() -> None:
            with anyio.fail_after(240):
                async with anyio.create_task_group() as group:
                    for i, tally in enumerate(tallies):
                        group.start_soon(run_client, server.url, tokens[tally.actor], tally, plan(i, codes))

        anyio.run(main)
        elapsed = time.monotonic() - started
        assert server.popen.poll() is None, server.log()[-2000:]
    # The server is gone now: the file is ours to read.
    assert [line for tally in tallies for line in tally.unexpected] == []
    assert sum(sum(t.calls.values()) for t in tallies) == CLIENTS * CALLS, f"in {elapsed:.1f}s"

    def one(sql: str, params: list[Any] | None = None) -> Any:
        return query(db_path, sql, params)[0][0]

    # Syncs of the one shared table: one history row per call (and the first one, recorded before),
    # and the state is the newest of them.
    syncs = sum(t.ok["record_sync"] for t in tallies)
    assert syncs == sum(t.calls["record_sync"] for t in tallies) > CLIENTS * 20
    assert one("SELECT count(*) FROM sync_history WHERE table_id = ?", [SHARED_TABLE]) == syncs + 1
    sent = set().union({0}, *(t.rows_sent for t in tallies))
    assert {
        row[0] for row in query(db_path, "SELECT rows FROM sync_history WHERE table_id = ?", [SHARED_TABLE])
    } == sent
    newest = one(
        "SELECT arg_max(rows, (synced_at, seq)) FROM sync_history WHERE table_id = ?", [SHARED_TABLE]
    )
    assert one("SELECT rows FROM sync_state WHERE table_id = ?", [SHARED_TABLE]) == newest

    # Votes on km_1: the seeded two, each client's last own vote, and the shared voter's one row.
    rows = query(db_path, "SELECT user_id, vote FROM knowledge_votes WHERE item_id = 'km_1'")
    votes = dict(rows)
    assert len(votes) == len(rows), "two rows for one voter"
    crowd = set().union(*(t.crowd_votes for t in tallies))
    assert votes.pop("crowd") in crowd
    assert votes == {
        "ana@example.com": 1,
        BOB: -1,
        **{t.actor: t.last_vote for t in tallies if t.last_vote is not None},
    }

    # One Telegram link for the shared user, from one of the calls.
    links = query(db_path, "SELECT chat_id FROM telegram_links WHERE user_id = ?", [SHARED_USER])
    assert len(links) == 1 and links[0][0] in set().union(*(t.chats_sent for t in tallies))

    # Each race had exactly one winner, and the losers were told so.
    winners = Counter(item for t in tallies for item in t.race_won)
    assert winners == Counter({f"km_race-{k}": 1 for k in range(RACE_ITEMS)})
    assert one("SELECT count(*) FROM knowledge_items WHERE id LIKE 'km_race-%'") == RACE_ITEMS
    consumed = Counter(code for t in tallies for code in t.codes_won)
    assert consumed == Counter(dict.fromkeys(codes, 1))
    assert one("SELECT count(*) FROM pending_codes WHERE code LIKE 'race-code-%'") == 0
    assert one("SELECT chat_id FROM telegram_links WHERE user_id = ?", [BOB]) in range(7_000, 7_000 + CODES)

    # The audit log: exactly one row per mutating call, by actor, tool and outcome; plus the events.
    audited = Counter(
        {
            (actor, action, result): n
            for actor, action, result, n in query(
                db_path,
                "SELECT user_id, action, result, count(*) FROM audit_log WHERE user_id LIKE 'client-%' GROUP BY ALL",
            )
        }
    )
    expected: Counter[tuple[str, str, str]] = Counter()
    for t in tallies:
        for tool in MUTATING:
            expected[(t.actor, tool, "ok")] += t.ok[tool]
            failed = t.calls[tool] - t.ok[tool]
            if failed:
                expected[(t.actor, tool, EXPECTED_ERRORS[tool].strip("[]"))] += failed
        expected[(t.actor, "concurrent_event", None)] += t.ok["log_audit_event"]
    assert +audited == +expected
    mutating_calls = sum(t.calls[tool] for t in tallies for tool in MUTATING)
    events = sum(t.ok["log_audit_event"] for t in tallies)
    assert one("SELECT count(*) FROM audit_log") - audit_before == mutating_calls + events
