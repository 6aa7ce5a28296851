"""Shared by tests/test_recovery_*.py: a writer process that dies like a crash, the CLI as a
process, and the LD_PRELOAD shim (tests/helpers/syncshim.c) that records what fsync made
durable and injects I/O errors.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mcp_state.db import connect

SHIM_SOURCE = Path(__file__).resolve().parent / "helpers" / "syncshim.c"

# Writes audit rows one acknowledged write at a time, prints each id once acknowledged, then
# dies by SIGKILL (no checkpoint, no close): everything since the last checkpoint is in the WAL.
WRITER = textwrap.dedent(
    """
    import json, os, sys, time
    from mcp_state.db import Database
    from mcp_state.errors import StateError
    from mcp_state.repositories.audit import AuditRepository
    db = Database(sys.argv[1], idle_release=None)
    audit = AuditRepository(db)
    count, pause_at = int(sys.argv[2]), int(sys.argv[4])
    for i in range(count):
        if i == pause_at:
            time.sleep(float(os.environ.get("PAUSE", "1.6")))  # idle: the database checkpoints
        try:
            entry = audit.log(user_id="u", action="write", params={"i": i, "pad": "x" * 200})
        except StateError as exc:
            print(json.dumps({"error": str(exc)}), flush=True)
            continue
        print(json.dumps(entry), flush=True)
    if sys.argv[3] == "close":
        db.close()
    else:
        os.kill(os.getpid(), 9)
    """
)


def crash_writer(
    db_path: Path,
    count: int,
    *,
    close: bool = False,
    pause_at: int = -1,
    env: dict[str, str] | None = None,
    errors: list[str] | None = None,
) -> list[str]:
    """Run the writer; the ids it acknowledged (failed writes go to ``errors``, stderr too)."""
    args = [
        sys.executable,
        "-c",
        WRITER,
        str(db_path),
        str(count),
        "close" if close else "kill",
        str(pause_at),
    ]
    proc = subprocess.run(
        args, capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})}
    )
    assert proc.returncode in (0, -9), proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    printed = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    if errors is not None:
        errors.extend(item["error"] for item in printed if isinstance(item, dict))
        errors.extend(line for line in proc.stderr.splitlines() if line.strip())
    acked = [item for item in printed if isinstance(item, str)]
    assert errors is not None or len(acked) == count, proc.stdout
    return acked


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcp_state", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def audit_ids(db_path: Path) -> set[str]:
    conn = connect(db_path)
    try:
        return {row[0] for row in conn.execute("SELECT id FROM audit_log").fetchall()}
    finally:
        conn.close()


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The command failed with exactly one line on stderr and no traceback."""
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def compile_shim(out_dir: Path) -> Path:
    """The shim compiled with the system C compiler (the tests need one: apt-get install gcc)."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.fail("the power-loss and fault tests need a C compiler (cc); apt-get install gcc")
    out = out_dir / "syncshim.so"
    subprocess.run(
        [compiler, "-shared", "-fPIC", "-O2", "-o", str(out), str(SHIM_SOURCE), "-ldl"], check=True
    )
    return out


def after_power_loss(folder: Path, shadow: Path, into: Path) -> Path:
    """The folder as a power cut would leave it: synced names only, each with its synced content."""
    into.mkdir(parents=True)
    names_file = shadow / ".names"
    names = names_file.read_text().split() if names_file.exists() else []
    for name in names:
        copy = shadow / name
        if copy.exists():
            shutil.copyfile(copy, into / name)
        else:
            (into / name).touch()  # the name survived, its content was never synced
    return into
