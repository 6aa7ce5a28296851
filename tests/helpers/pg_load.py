"""One process of the many-process load on a PostgreSQL database (tests/test_pg_processes.py,
tests/benchmarks/bench_backends.py): N mixed operations on rows every process shares.

    pg_load.py mcp DB INDEX N   through `mcp-state serve --db DB` over stdio, with an MCP client
    pg_load.py api DB INDEX N   through the Python API (repositories on one Database)

Prints "ready" once connected, waits for a line on stdin, runs the operations, then prints one
JSON line: {"ops", "errors", "first_errors", "seconds"}. Operation i (``plan(i)``), by i % 4:
a +1 vote on item k{j % 5} by user u{(j // 5) % 20}; a sync of table t{j % 25} (the first one
of each table inserts it, in whichever process comes first); an audit event; a grant of
dataset d{(j // 20) % 5} to u{j % 20}, where j = i // 4. ``expected(mcp, api, n)`` is what the
tables hold after such processes ran on the seeded database (``seed``).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

USERS = 20
ITEMS = 5


def plan(i: int) -> tuple[str, dict[str, Any]]:
    j = i // 4
    kind = i % 4
    if kind == 0:
        return "vote", {"item_id": f"k{j % ITEMS}", "user_id": f"u{(j // ITEMS) % USERS}", "vote": 1}
    if kind == 1:
        return "sync", {"table_id": f"t{j % 25}", "rows": i, "file_size_bytes": i, "hash": f"h{i}"}
    if kind == 2:
        return "audit", {"action": "load_test", "resource": f"r{i}"}
    return "grant", {"user_id": f"u{j % USERS}", "dataset": f"d{(j // 20) % 5}", "access": "read"}


def seed(db: Any) -> None:
    """The users and knowledge items the operations refer to."""
    from mcp_state.repositories import KnowledgeRepository, UserRepository

    users = UserRepository(db)
    for u in range(USERS):
        users.create(f"u{u}", f"u{u}@example.com", f"User {u}", role="admin")
    for k in range(ITEMS):
        KnowledgeRepository(db).create(f"k{k}", f"Item {k}", "shared", "load", source_user="u0")


def expected(mcp: int, api: int, n: int) -> dict[str, int]:
    """Rows per table after ``mcp`` MCP processes and ``api`` API processes ran ``n`` operations each."""
    per_kind = [len(range(k, n, 4)) for k in range(4)]
    procs = mcp + api
    js = range(max(per_kind))
    return {
        "knowledge_votes": len({(j % ITEMS, (j // ITEMS) % USERS) for j in js}),
        "sync_state": len({j % 25 for j in js}),
        "sync_history": procs * per_kind[1],
        "dataset_permissions": len({(j % USERS, (j // 20) % 5) for j in js}),
        # Every MCP write is audited once (log_audit_event adds its own event); the API writes only events.
        "audit_log": mcp * (n + per_kind[2]) + api * per_kind[2],
    }


def run_api(db_location: str, index: int, n: int) -> dict[str, Any]:
    from mcp_state.db import Database
    from mcp_state.repositories import (
        AuditRepository,
        DatasetPermissionRepository,
        KnowledgeRepository,
        SyncStateRepository,
    )

    with Database(db_location, idle_release=None) as db:
        knowledge, sync = KnowledgeRepository(db), SyncStateRepository(db)
        audit, perms = AuditRepository(db), DatasetPermissionRepository(db)
        calls = {
            "vote": lambda a: knowledge.vote(a["item_id"], a["user_id"], a["vote"]),
            "sync": lambda a: sync.update_sync(**a),
            "audit": lambda a: audit.log(f"api{index}", a["action"], a["resource"]),
            "grant": lambda a: perms.grant(a["user_id"], a["dataset"], a["access"]),
        }
        print("ready", flush=True)
        sys.stdin.readline()
        return _timed(n, lambda kind, args: calls[kind](args))


TOOLS = {
    "vote": "vote_knowledge_item",
    "sync": "record_sync",
    "audit": "log_audit_event",
    "grant": "grant_dataset_access",
}


async def run_mcp(db_location: str, index: int, n: int) -> dict[str, Any]:
    import anyio
    from mcp import Client, StdioServerParameters

    server = StdioServerParameters(
        command=sys.executable,
        args=["-m", "mcp_state", "serve", "--db", db_location, "--actor", f"mcp{index}"],
    )
    async with Client(server) as client:
        await client.list_tools()
        print("ready", flush=True)
        await anyio.to_thread.run_sync(sys.stdin.readline)
        errors: list[str] = []
        started = time.perf_counter()
        for i in range(n):
            kind, args = plan(i)
            try:
                result = await client.call_tool(TOOLS[kind], args)
                if result.is_error:
                    errors.append(result.content[0].text[:200])  # type: ignore[union-attr]
            except Exception as exc:  # counted, never hidden
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
        return _report(n, errors, started)


def run_processes(db_location: str, modes: list[str], n: int, timeout: float = 600) -> list[dict[str, Any]]:
    """Start one process per mode ("mcp" or "api"), let all connect, start them at once; their reports."""
    import os
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, mode, db_location, str(index), str(n)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for index, mode in enumerate(modes)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stderr is not None
            line = proc.stdout.readline()
            if line.strip() != "ready":
                raise RuntimeError(f"a load process did not start: {line}{proc.stderr.read()[-2000:]}")
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        reports = []
        for proc in procs:
            out, err = proc.communicate(timeout=timeout)
            if proc.returncode:
                raise RuntimeError(f"a load process failed: {err[-2000:]}")
            reports.append(json.loads(out.strip().splitlines()[-1]))
        return reports
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()


def _timed(n: int, call: Any) -> dict[str, Any]:
    errors: list[str] = []
    started = time.perf_counter()
    for i in range(n):
        kind, args = plan(i)
        try:
            call(kind, args)
        except Exception as exc:  # counted, never hidden
            errors.append(f"{type(exc).__name__}: {exc}"[:200])
    return _report(n, errors, started)


def _report(n: int, errors: list[str], started: float) -> dict[str, Any]:
    return {
        "ops": n,
        "errors": len(errors),
        "first_errors": errors[:3],
        "seconds": time.perf_counter() - started,
    }


def main() -> None:
    mode, db_location, index, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    if mode == "api":
        report = run_api(db_location, index, n)
    else:
        import anyio

        report = anyio.run(run_mcp, db_location, index, n)
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
