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
    import json, os, sys
    from mcp_state.db import Database
    from mcp_state.repositories.audit import AuditRepository
    db = Database(sys.argv[1], idle_release=None)
    audit = AuditRepository(db)
    for i in range(int(sys.argv[2])):
        entry = audit.log(user_id="u", action="write", params={"i": i, "pad": "x" * 200})
        print(json.dumps(entry["id"] if isinstance(entry, dict) else entry), flush=True)
    if len(sys.argv) > 3 and sys.argv[3] == "close":
        db.close()
    else:
        os.kill(os.getpid(), 9)
    """
)


def crash_writer(
    db_path: Path, count: int, *, close: bool = False, env: dict[str, str] | None = None
) -> list[str]:
    """Run the writer; the ids it acknowledged."""
    args = [sys.executable, "-c", WRITER, str(db_path), str(count)] + (["close"] if close else [])
    proc = subprocess.run(
        args, capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})}
    )
    assert proc.returncode in (0, -9), proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


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


@pytest.fixture(scope="session")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The compiled shim (the test needs a C compiler: cc)."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.fail("the power-loss and fault tests need a C compiler (cc); apt-get install gcc")
    out = tmp_path_factory.mktemp("shim") / "syncshim.so"
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
