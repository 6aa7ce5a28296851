"""Fault suite: ``kill -9`` of a real ``mcp-state serve`` in the middle of mixed writes, repeated.

Four rounds on one database file, alternating transports: over stdio a raw JSON-RPC client keeps
eight calls in flight; over HTTP four SDK clients call concurrently. Each round the server is
killed with SIGKILL once a drawn number of writes has been acknowledged, while more are in flight.
The next round's server opens the file the killed one left (replaying its write-ahead log).

After every round, on a copy of the file as the killed server left it, and at the end on the file
itself: every write a client saw acknowledged is there, and nothing is there in part or twice. Each
change and its audit row were one transaction, so each side must match the other one to one.
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from fault_support import RawStdio, ServeProcess, http_client, make_tokens, query, serving, snapshot
from server_support import seeded_copy

from mcp_state.db import Database

pytestmark = pytest.mark.slow

# Transport, and acknowledged writes before the kill (which then comes 0 to 50 ms later).
ROUNDS = [("stdio", 40), ("http", 60), ("stdio", 15), ("http", 90)]
WINDOW = 8  # stdio: calls in flight
HTTP_CLIENTS = 4
SYNC_TABLES = ("t0", "t1", "t2")  # record_sync upserts these few rows over and over
ROUND_TIMEOUT = 60


@dataclass(frozen=True)
class Op:
    tool: str
    args: dict[str, Any]


def mixed_write(rng: random.Random, round_no: int, n: int) -> Op:
    """The n-th write of a round; every one carries a key no other write uses."""
    key = f"r{round_no}-{n}"
    number = round_no * 1_000_000 + n
    kind = rng.choices(["sync", "vote", "item", "event", "link"], weights=[3, 2, 2, 2, 1])[0]
    if kind == "sync":
        table = rng.choice(SYNC_TABLES)
        return Op("record_sync", {"table_id": table, "rows": number, "file_size_bytes": n, "hash": key})
    if kind == "vote":
        return Op(
            "vote_knowledge_item", {"item_id": "km_1", "vote": rng.choice([1, -1]), "user_id": f"voter-{key}"}
        )
    if kind == "item":
        content = "x" * rng.randint(0, 4000)
        return Op(
            "create_knowledge_item", {"id": f"km-{key}", "title": key, "content": content, "tags": [key]}
        )
    if kind == "event":
        return Op("log_audit_event", {"action": "fault_event", "resource": key, "params": {"n": n}})
    return Op("link_telegram_user", {"user_id": f"tg-{key}", "chat_id": number})


def run_stdio_round(server: ServeProcess, rng: random.Random, round_no: int, kill_after: int) -> list[Op]:
    raw = RawStdio(server)
    raw.initialize()
    in_flight: dict[int, Op] = {}
    acked: list[Op] = []
    killer: threading.Timer | None = None
    n = 0
    deadline = time.monotonic() + ROUND_TIMEOUT
    while time.monotonic() < deadline:
        while server.popen.poll() is None and len(in_flight) < WINDOW:
            op = mixed_write(rng, round_no, n)
            n += 1
            in_flight[raw.call_tool(op.tool, op.args)] = op
        message = raw.responses.get(timeout=ROUND_TIMEOUT)
        if message is None:  # end of stream: the killed server's last answers have been read
            break
        op = in_flight.pop(message["id"])
        result = message.get("result", {})
        assert "error" not in message and not result.get("isError"), (op, message)
        acked.append(op)
        if len(acked) == kill_after:  # answers already in the pipe still arrive, and count as acknowledged
            killer = threading.Timer(rng.uniform(0, 0.05), server.kill)
            killer.start()
    else:
        raise AssertionError(f"round {round_no} did not finish within {ROUND_TIMEOUT}s")
    assert killer is not None, f"the server stopped before {kill_after} writes: {server.log()[-2000:]}"
    killer.join()
    assert in_flight, "the kill should catch calls in flight"
    return acked


def run_http_round(
    server: ServeProcess, token: str, rng: random.Random, round_no: int, kill_after: int
) -> list[Op]:
    acked: list[Op] = []
    refused: list[str] = []
    counter = iter(range(10**9))

    async def client() -> None:
        try:
            async with http_client(server.url, token, read_timeout=ROUND_TIMEOUT) as session:
                while True:
                    op = mixed_write(rng, round_no, next(counter))
                    result = await session.call_tool(op.tool, op.args)
                    if result.is_error:
                        refused.append(f"{op.tool}: {result.content[0].text}")
                    else:
                        acked.append(op)
        except Exception:
            if server.popen.poll() is None:  # it is alive: this is no kill, but a failure
                raise

    async def killer() -> None:
        while len(acked) < kill_after:
            await anyio.sleep(0.005)
        await anyio.sleep(rng.uniform(0, 0.05))  # so the kill lands anywhere in a call, commit included
        server.kill()

    async def main() -> None:
        with anyio.fail_after(ROUND_TIMEOUT):
            async with anyio.create_task_group() as group:
                group.start_soon(killer)
                for _ in range(HTTP_CLIENTS):
                    group.start_soon(client)

    anyio.run(main)
    assert refused == []
    return acked


def key_of(op: Op) -> str:
    """How ``check_file`` finds an acknowledged write among the rows."""
    args = op.args
    if op.tool == "record_sync":
        return str(args["rows"])
    if op.tool == "vote_knowledge_item":
        return f"{args['user_id']}:{args['vote']}"
    if op.tool == "create_knowledge_item":
        return f"{args['id']}:{len(args['content'])}"
    if op.tool == "log_audit_event":
        return str(args["resource"])
    return f"{args['user_id']}:{args['chat_id']}"


def check_file(db_path: Path, acked: list[Op]) -> None:
    """Every acknowledged write present; every change matches exactly one audit row, and back."""

    def rows(sql: str) -> list[tuple[Any, ...]]:
        return query(db_path, sql)

    ok_audit = "FROM audit_log WHERE result = 'ok' AND action = "
    assert rows("SELECT count(*) - count(DISTINCT id) FROM audit_log") == [(0,)]
    assert rows(
        "SELECT count(*) FROM audit_log WHERE result <> 'ok' AND action IN "
        "('record_sync', 'vote_knowledge_item', 'create_knowledge_item', 'log_audit_event', 'link_telegram_user')"
    ) == [(0,)], "a write failed"

    # record_sync: one history row per acknowledged call, matched one to one with its audit rows.
    history = rows("SELECT rows FROM sync_history WHERE table_id IN ('t0', 't1', 't2')")
    audited = rows(f"SELECT CAST(params->>'rows' AS BIGINT) {ok_audit} 'record_sync' AND resource LIKE 't_'")
    assert sorted(history) == sorted(audited), "a sync and its audit row were not committed together"
    assert len(set(history)) == len(history), "a sync recorded twice"
    # ... and each table's state is its newest history entry (the upsert and the insert were one).
    newest = rows(
        "SELECT table_id, arg_max(rows, (synced_at, seq)) FROM sync_history WHERE table_id LIKE 't_' GROUP BY ALL"
    )
    assert sorted(newest) == sorted(rows("SELECT table_id, rows FROM sync_state WHERE table_id LIKE 't_'"))

    votes = rows(
        "SELECT user_id, vote FROM knowledge_votes WHERE item_id = 'km_1' AND user_id LIKE 'voter-%'"
    )
    audited = rows(
        f"SELECT params->>'user_id', CAST(params->>'vote' AS INTEGER) {ok_audit} 'vote_knowledge_item'"
        " AND params->>'user_id' LIKE 'voter-%'"
    )
    assert sorted(votes) == sorted(audited)

    items = rows("SELECT id, title, length(content), tags FROM knowledge_items WHERE id LIKE 'km-r%'")
    assert sorted(row[0] for row in items) == sorted(
        row[0] for row in rows(f"SELECT resource {ok_audit} 'create_knowledge_item'")
    )
    assert all(row[0] == f"km-{row[1]}" and json.loads(row[3]) == [row[1]] for row in items), "a partial item"

    events = rows("SELECT id, resource FROM audit_log WHERE action = 'fault_event'")
    calls = rows(f"SELECT resource {ok_audit} 'log_audit_event'")
    assert sorted(row[0] for row in events) == sorted(row[0] for row in calls), (
        "an event without its call, or back"
    )
    assert len({row[1] for row in events}) == len(events), "an event logged twice"

    links = rows("SELECT user_id, chat_id FROM telegram_links WHERE user_id LIKE 'tg-%'")
    audited = rows(f"SELECT resource, CAST(params->>'chat_id' AS BIGINT) {ok_audit} 'link_telegram_user'")
    assert sorted(links) == sorted(audited)

    # Every acknowledged write is there.
    present = {
        "record_sync": {str(row[0]) for row in history},
        "vote_knowledge_item": {f"{user}:{vote}" for user, vote in votes},
        "create_knowledge_item": {f"{row[0]}:{row[2]}" for row in items},
        "log_audit_event": {row[1] for row in events},
        "link_telegram_user": {f"{user}:{chat}" for user, chat in links},
    }
    for op in acked:
        wanted = key_of(op)
        assert wanted in present[op.tool], f"acknowledged but lost: {op.tool} {wanted}"


def test_kill_9_in_the_middle_of_writes_loses_no_acknowledged_write(tmp_path: Path) -> None:
    db_path = seeded_copy(tmp_path)[0]
    with Database(db_path, idle_release=None) as db:  # votes and links name existing users
        db.cursor().execute(
            """INSERT INTO users (id, email)
               SELECT p || 'r' || r || '-' || n, p || 'r' || r || '-' || n || '@example.com'
               FROM (VALUES ('voter-'), ('tg-')) AS v(p), range(?) AS a(r), range(10000) AS b(n)""",
            [len(ROUNDS)],
        )
    token = make_tokens(db_path, {"killer": "admin"})["killer"]
    acked: list[Op] = []
    for round_no, (transport, kill_after) in enumerate(ROUNDS):
        rng = random.Random(round_no)
        with serving(db_path, transport, tmp_path / "logs") as server:
            if transport == "stdio":
                acked += run_stdio_round(server, rng, round_no, kill_after)
            else:
                acked += run_http_round(server, token, rng, round_no, kill_after)
        assert server.popen.returncode == -9, (
            f"round {round_no}: the server was not killed: {server.log()[-2000:]}"
        )
        assert len(acked) >= sum(after for _, after in ROUNDS[: round_no + 1])
        check_file(snapshot(db_path, tmp_path / f"after-round-{round_no}"), acked)
    check_file(db_path, acked)  # the file itself, its log replayed by a plain open
    assert {op.tool for op in acked} == {
        "record_sync", "vote_knowledge_item", "create_knowledge_item", "log_audit_event", "link_telegram_user",
    }  # fmt: skip
