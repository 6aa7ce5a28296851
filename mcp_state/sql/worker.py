"""The SQL worker process: ``python -m mcp_state.sql.worker CONFIG`` serves ``Runner`` calls.

It talks over its stdin and stdout in frames (a 4-byte big-endian length, then UTF-8 JSON;
JSON, not pickle, so nothing it sends can run code in the server). A request may carry raw
parts after its frame (``"parts": [length, ...]``, each part UTF-8 text): the columns of a
``load``, which are large and sent without escaping them into the JSON. It first caps its own
address space (``RLIMIT_AS``) at its idle size plus the memory ceiling, so no statement can
grow it past that: an allocation beyond fails inside DuckDB (an out-of-memory error) or ends
the process, and the server starts a new one. It exits when its stdin closes.

Requests: ``{"op": "load", "table", "columns", "replace", "parts"}`` (one part per column: a
JSON array of its values as text), ``{"op": "union", "table", "of", "key"}``, ``{"op": "drop", "table"}``,
``{"op": "query", "sql", "limit", "max_output_chars", "max_limit"}``, ``{"op": "explain", "sql"}``,
``{"op": "schema", "table"}``.
Replies: ``{"ok": result}`` or ``{"error": kind, "message": text}``.
"""

from __future__ import annotations

import json
import os
import resource
import struct
import sys
from typing import IO, Any

FRAME_HEADER = struct.Struct(">I")


def write_frame(stream: IO[bytes], message: dict[str, Any], parts: list[bytes] | None = None) -> None:
    """``message`` as one frame; ``parts`` (raw bytes) follow it, their lengths in ``message["parts"]``."""
    if parts is not None:
        message = {**message, "parts": [len(part) for part in parts]}
    data = json.dumps(message, ensure_ascii=False).encode("utf-8")
    stream.write(FRAME_HEADER.pack(len(data)) + data)
    for part in parts or ():
        stream.write(part)
    stream.flush()


def read_frame(stream: IO[bytes]) -> dict[str, Any] | None:
    """The next message, or None at the end of the stream."""
    header = stream.read(FRAME_HEADER.size)
    if len(header) < FRAME_HEADER.size:
        return None
    (size,) = FRAME_HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        return None
    message: dict[str, Any] = json.loads(data)
    texts = []
    for length in message.get("parts") or ():
        part = stream.read(int(length))
        if len(part) < int(length):
            return None
        texts.append(part.decode("utf-8"))
    message["parts"] = texts
    return message


def address_space_kb() -> int:
    """This process's virtual memory size (``VmSize`` in ``/proc/self/status``), in KiB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1])
    raise OSError("no VmSize in /proc/self/status")


def main(argv: list[str]) -> int:
    config = json.loads(argv[1])
    from mcp_state.errors import StateError
    from mcp_state.sql.runner import Runner, connect

    conn = connect(config["memory_limit"], config["threads"])
    conn.execute("SELECT 1").fetchall()
    runner = Runner(conn, float(config["timeout"]))  # its watchdog thread starts now
    try:
        ceiling = address_space_kb() * 1024 + int(config["memory_ceiling"])
        resource.setrlimit(resource.RLIMIT_AS, (ceiling, ceiling))
    except (OSError, ValueError):  # no /proc (macOS): only DuckDB's memory_limit and the deadline hold
        ceiling = 0
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but frames on the protocol stream
    write_frame(stdout, {"ok": {"pid": os.getpid(), "address_space_limit": ceiling}})
    while (request := read_frame(stdin)) is not None:
        try:
            op = request.get("op")
            result: Any = {}
            if op == "load":
                runner.load(request["table"], request["columns"], request["parts"], request["replace"])
            elif op == "union":
                runner.union(request["table"], request["of"], request["key"])
            elif op == "drop":
                runner.drop(request["table"])
            elif op == "query":
                result = runner.query(
                    request["sql"], request["limit"], request["max_output_chars"], request["max_limit"]
                )
            elif op == "explain":
                result = runner.explain(request["sql"])
            elif op == "schema":
                result = runner.schema(request.get("table"))
            else:
                raise ValueError(f"unknown operation {op!r}")
            reply: dict[str, Any] = {"ok": result}
            json.dumps(reply)  # a result JSON cannot carry fails here, not half-written
        except StateError as exc:
            reply = {"error": exc.kind, "message": str(exc)}
        except MemoryError:
            reply = {"error": "out_of_memory", "message": ""}
        except Exception as exc:  # the server words it; the worker stays up
            reply = {"error": "internal", "message": f"{type(exc).__name__}: {exc}"[:600]}
        write_frame(stdout, reply)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
