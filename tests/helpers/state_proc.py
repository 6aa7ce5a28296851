"""A second (or third) process on the state file, driven by tests/test_state_processes.py.

state_proc.py hold PATH SECONDS    open the file, print "ready", hold it SECONDS (or, with
                                   "stdin", until a line arrives), exit
state_proc.py open PATH            open like the CLI would (MCP_STATE_LOCK_TIMEOUT applies);
                                   print "trying", then JSON {opened, waited, cpu, audit}, or
                                   the error on stderr with exit status 3
state_proc.py idle PATH IDLE       a Database (idle release after IDLE seconds); reads
                                   "write X" lines from stdin, answers "ok X" when committed
state_proc.py writer PATH KIND     write forever, printing "ack N" after each commit returns
                                   (KIND: database or raw)
"""

from __future__ import annotations

import json
import sys
import time

from mcp_state.db import Database, connect
from mcp_state.errors import DatabaseLockedError
from mcp_state.gateway import Gateway
from mcp_state.repositories import AuditRepository, SyncStateRepository


def hold(path: str, seconds: str) -> None:
    """Hold the file for SECONDS, or until a line (or EOF) on stdin when SECONDS is "stdin"."""
    conn = connect(path)
    print("ready", flush=True)
    if seconds == "stdin":
        sys.stdin.readline()
    else:
        time.sleep(float(seconds))
    conn.close()


def open_like_cli(path: str) -> int:
    print("trying", flush=True)
    started, cpu = time.monotonic(), time.process_time()
    try:
        conn = connect(path)
    except DatabaseLockedError as exc:
        print(
            json.dumps({"waited": time.monotonic() - started, "cpu": time.process_time() - cpu}), flush=True
        )
        print(str(exc), file=sys.stderr, flush=True)
        return 3
    waited = time.monotonic() - started
    audit = [e["resource"] for e in reversed(AuditRepository(conn).query(limit=None))]
    conn.close()
    print(json.dumps({"opened": True, "waited": waited, "cpu": time.process_time() - cpu, "audit": audit}))
    return 0


def idle(path: str, idle_release: float) -> None:
    db = Database(path, idle_release=idle_release)
    audit = AuditRepository(db)
    for line in sys.stdin:
        verb, _, arg = line.strip().partition(" ")
        if verb == "write":
            audit.log(action="write", resource=arg)
            print(f"ok {arg}", flush=True)
    db.close()


def writer(path: str, kind: str) -> None:
    source = Database(path, idle_release=None) if kind == "database" else connect(path)
    gateway = Gateway(source)
    sync, audit = SyncStateRepository(gateway), AuditRepository(gateway)
    print("ready", flush=True)
    n = 0
    while True:
        with gateway.transaction():  # two tables, one transaction: both rows or neither
            sync.update_sync("t", rows=n, file_size_bytes=n, hash=str(n))
            audit.log(action="write", resource=str(n))
        print(f"ack {n}", flush=True)
        n += 1


if __name__ == "__main__":
    command, path, *rest = sys.argv[1:]
    if command == "hold":
        hold(path, rest[0])
    elif command == "open":
        sys.exit(open_like_cli(path))
    elif command == "idle":
        idle(path, float(rest[0]))
    elif command == "writer":
        writer(path, rest[0])
    else:
        sys.exit(f"unknown command {command}")
