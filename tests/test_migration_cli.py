"""``mcp-state migrate``, ``export`` and ``demo`` as a user runs them."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from contextlib import contextmanager

import pytest
from migration_support import dump, edit_json, legacy_copy

import mcp_state.commands.migrate as migrate_command
from mcp_state.cli import main
from mcp_state.db import connect
from mcp_state.repositories import UserRepository


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", ["migrate", "export", "demo"])
def test_every_command_has_help(capsys, command):
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: mcp-state {command}" in out and len(out.splitlines()) > 5


def test_migrate_prints_what_it_read_wrote_and_skipped_per_file(tmp_path, capsys):
    data = legacy_copy(tmp_path)
    code, out, _ = run(capsys, "migrate", "--data-dir", str(data))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"{data} -> {data / 'state' / 'system.duckdb'}"
    assert lines[1].split() == [
        "file",
        "table",
        "read",
        "new",
        "changed",
        "unchanged",
        "skipped",
        "db",
        "only",
    ]
    assert lines[2].split() == [
        "src_data/metadata/sync_state.json",
        "sync_state",
        "3",
        "3",
        "0",
        "0",
        "0",
        "0",
    ]
    assert lines[-2].split() == ["audit/audit.jsonl", "audit_log", "3", "3", "0", "0", "0", "0"]
    assert lines[-1].startswith("Wrote 28 row(s); 0 entries skipped.")
    code, out, _ = run(capsys, "migrate", "--data-dir", str(data))
    assert code == 0 and "Wrote 0 row(s)" in out


def test_migrate_dry_run_reports_and_writes_nothing(tmp_path, capsys):
    data = legacy_copy(tmp_path)
    db = tmp_path / "target.duckdb"
    code, out, _ = run(capsys, "migrate", "--data-dir", str(data), "--db", str(db), "--dry-run")
    assert code == 0
    assert out.startswith("Dry run: nothing was written.") and "Would write 28 row(s)" in out
    assert not db.exists()


def test_migrate_stops_on_a_malformed_entry_with_advice(tmp_path, capsys):
    data = legacy_copy(tmp_path)
    edit_json(data / "corporate-memory/votes.json", lambda d: d["k1"].update({"petr@acme.com": 5}))
    code, out, err = run(capsys, "migrate", "--data-dir", str(data))
    assert code == 1 and out == ""
    assert err.startswith("mcp-state migrate: error: 1 problem(s) in the legacy files; nothing was written:")
    assert "corporate-memory/votes.json, k1/petr@acme.com: the vote must be one of -1, 1; got 5" in err
    assert "--skip-invalid" in err
    assert not (data / "state" / "system.duckdb").exists()


def test_migrate_skip_invalid_lists_each_skipped_entry(tmp_path, capsys):
    data = legacy_copy(tmp_path)
    edit_json(data / "corporate-memory/votes.json", lambda d: d["k1"].update({"petr@acme.com": 5}))
    edit_json(data / "auth/users.json", lambda d: d["jana@acme.com"].update(role="boss"))
    code, out, _ = run(capsys, "migrate", "--data-dir", str(data), "--skip-invalid")
    assert code == 0
    tail = out.splitlines()[-3:]
    assert tail[0] == "Skipped (--skip-invalid):"
    assert tail[1].startswith("  corporate-memory/votes.json, k1/petr@acme.com: the vote must be")
    assert tail[2].startswith(
        '  auth/users.json, jana@acme.com: "role" must be one of admin, analyst, viewer'
    )
    assert "Wrote 26 row(s); 2 entries skipped." in out


def test_export_then_migrate_gives_the_same_tables(tmp_path, capsys):
    data = legacy_copy(tmp_path)
    db = data / "state" / "system.duckdb"
    run(capsys, "migrate", "--data-dir", str(data))
    code, out, _ = run(capsys, "export", "--to", str(tmp_path / "backup"), "--db", str(db))
    assert code == 0 and out.splitlines()[-1] == f"Exported 28 entries to {tmp_path / 'backup'}"
    code, _, _ = run(
        capsys, "migrate", "--data-dir", str(tmp_path / "backup"), "--db", str(tmp_path / "new.duckdb")
    )
    assert code == 0
    assert dump(tmp_path / "new.duckdb") == dump(db)
    code, _, err = run(capsys, "export", "--to", str(tmp_path / "backup"), "--db", str(db))
    assert code == 1 and "an export never overwrites files" in err


def test_demo_loads_the_packaged_sample_through_migrate(tmp_path, capsys):
    code, out, _ = run(capsys, "demo", "--data-dir", str(tmp_path / "demo"))
    db = (tmp_path / "demo" / "state" / "system.duckdb").resolve()
    assert code == 0
    assert out.startswith(
        f"Loaded the sample state into {db}: 2 users, 3 synced tables, 2 knowledge items, "
        "3 audit entries, and more (28 entries, 28 written now)."
    )
    assert (
        f"npx -y @modelcontextprotocol/inspector@2.12.0 {sys.executable} -m mcp_state serve --db {db}" in out
    )
    conn = connect(db)
    assert UserRepository(conn).get_by_email("petr@acme.com")["role"] == "admin"
    conn.close()
    before = dump(db)
    code, out, _ = run(capsys, "demo", "--data-dir", str(tmp_path / "demo"))
    assert code == 0 and "28 entries, 0 written now" in out
    assert dump(db) == before


def test_demo_defaults_to_data_dir(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "env"))
    assert run(capsys, "demo")[0] == 0
    assert (tmp_path / "env" / "state" / "system.duckdb").exists()


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_progress_bar_is_drawn_only_on_a_terminal_for_large_inputs(tmp_path):
    assert migrate_command.progress_bar(io.StringIO(), 10**9) is None
    assert migrate_command.progress_bar(Terminal(), 10) is None
    screen = Terminal()
    bar = migrate_command.progress_bar(screen, migrate_command.LARGE_INPUT_BYTES)
    from mcp_state.legacy import migrate

    migrate(legacy_copy(tmp_path), progress=bar)
    bar.clear()
    drawn = screen.getvalue()
    assert (
        "audit/audit.jsonl: writing audit_log" in drawn and "100%" in drawn and "[" + "#" * 30 + "]" in drawn
    )
    assert drawn.endswith("\r")  # the line is cleared again before the report is printed


HOLDER = """
import sys, time, duckdb
conn = duckdb.connect(sys.argv[1])
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
conn.close()
"""


@contextmanager
def holding(db, seconds: float):
    """Another process with the database open for ``seconds`` (killed on the way out)."""
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db), str(seconds)], stdout=subprocess.PIPE, text=True
    ) as holder:
        assert holder.stdout.readline().strip() == "holding"
        try:
            yield holder
        finally:
            holder.kill()


def migrate_process(data, timeout: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mcp_state", "migrate", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        env={**os.environ, "MCP_STATE_LOCK_TIMEOUT": timeout},
    )


@pytest.mark.slow
def test_migrate_says_it_waits_for_a_process_holding_the_database(tmp_path):
    data = legacy_copy(tmp_path)
    db = data / "state" / "system.duckdb"
    connect(db).close()
    with holding(db, 1.5) as holder:
        started = time.monotonic()
        done = migrate_process(data, "20")
    assert done.returncode == 0, done.stderr
    assert (
        f"mcp-state migrate: the database {db} is in use by another process (PID {holder.pid}); waiting up to "
        "20s for it to let go (MCP_STATE_LOCK_TIMEOUT) ..." in done.stderr
    )
    assert time.monotonic() - started >= 1.0 and "Wrote 28 row(s)" in done.stdout


@pytest.mark.slow
def test_migrate_gives_up_with_the_holder_named(tmp_path):
    data = legacy_copy(tmp_path)
    db = data / "state" / "system.duckdb"
    connect(db).close()
    with holding(db, 30) as holder:
        done = migrate_process(data, "0.5")
    assert done.returncode == 1
    assert "waiting up to 0.5s" in done.stderr
    assert (
        f"held by another process (PID {holder.pid})" in done.stderr
        and "MCP_STATE_LOCK_TIMEOUT" in done.stderr
    )
