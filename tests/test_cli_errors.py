"""Every command's usage errors: one line on stderr naming the command, a non-zero exit, never a
traceback; a closed pipe ends quietly; Ctrl-C stops ``serve`` at once whatever was typed; the
snippets the tool prints never rely on the client's PATH nor point into a package cache."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mcp_state.cli import main
from mcp_state.launch import in_cache, launcher


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("demo") / "demo.duckdb"
    assert main(["demo", "--db", str(db)]) == 0
    return db


@pytest.fixture
def busy_port():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


# (arguments, the start of the one line on stderr, exit status); {db}, {tmp} and {port} are filled in.
CASES = [
    (["bogus"], "mcp-state: error: argument COMMAND: invalid choice: 'bogus'", 2),
    (
        ["serve", "--port", "99999"],
        "mcp-state serve: error: argument --port: must be from 1 to 65535, got 99999",
        2,
    ),
    (["serve", "--port", "x"], "mcp-state serve: error: argument --port: must be a whole number, got 'x'", 2),
    (
        ["serve", "--host", "256.1.1.1"],
        "mcp-state serve: error: argument --host: must be an IP address or a host name",
        2,
    ),
    (
        ["serve", "--host", "bad host"],
        "mcp-state serve: error: argument --host: must be an IP address or a host name",
        2,
    ),
    (
        ["serve", "--transport", "tcp"],
        "mcp-state serve: error: argument --transport: invalid choice: 'tcp'",
        2,
    ),
    (["serve", "--db", "{db}", "--toolsets", "bogus"], "mcp-state serve: error: unknown toolset bogus", 1),
    (
        ["serve", "--db", "{db}", "--transport", "http", "--port", "{port}"],
        "mcp-state serve: error: cannot listen on 127.0.0.1:{port}: Address already in use",
        1,
    ),
    (["query"], "mcp-state query: error: the following arguments are required: sql", 2),
    (
        ["query", "SELECT 1", "--limit", "0"],
        "mcp-state query: error: argument --limit: must be from 1 to 10,000",
        2,
    ),
    (
        ["query", "SELECT 1", "--db", "{tmp}/none.duckdb"],
        "mcp-state query: error: no database at {tmp}/none.duckdb",
        1,
    ),
    (["query", "DELETE FROM users", "--db", "{db}"], "mcp-state query: error: ", 1),
    (["schema", "--db", "{tmp}/none.duckdb"], "mcp-state schema: error: no database at {tmp}/none.duckdb", 1),
    (["schema", "nope", "--db", "{db}"], "mcp-state schema: error: ", 1),
    (["token"], "mcp-state token: error: the following arguments are required: ACTION", 2),
    (
        ["token", "create"],
        "mcp-state token create: error: the following arguments are required: --actor, --scope",
        2,
    ),
    (
        ["token", "create", "--actor", "a", "--scope", "root"],
        "mcp-state token create: error: argument --scope",
        2,
    ),
    (
        ["token", "revoke", "tok_nope", "--db", "{db}"],
        "mcp-state token revoke: error: no token 'tok_nope' exists",
        1,
    ),
    (["export"], "mcp-state export: error: the following arguments are required: --to", 2),
    (
        ["export", "--to", "{tmp}/out", "--db", "{tmp}/none.duckdb"],
        "mcp-state export: error: no database at",
        1,
    ),
    (["export", "--to", "/proc/version/x", "--db", "{db}"], "mcp-state export: error: ", 1),
    (["export", "--to", "{db}", "--db", "{db}"], "mcp-state export: error: {db} is a file, not a folder", 1),
    (["migrate"], "mcp-state migrate: error: the following arguments are required: --data-dir", 2),
    (
        ["migrate", "--data-dir", "{tmp}/nowhere"],
        "mcp-state migrate: error: the data directory {tmp}/nowhere does not exist",
        1,
    ),
    (
        ["demo", "--db", "/proc/version/x.duckdb"],
        "mcp-state demo: error: cannot create the folder for the database",
        1,
    ),
    (
        ["demo", "--db", "a", "--data-dir", "b"],
        "mcp-state demo: error: argument --data-dir: not allowed with argument --db",
        2,
    ),
]


@pytest.mark.parametrize(("argv", "start", "status"), CASES, ids=[" ".join(c[0])[:60] for c in CASES])
def test_each_usage_error_is_one_line(demo_db, tmp_path, busy_port, capsys, argv, start, status):
    fill = {"db": str(demo_db), "tmp": str(tmp_path), "port": str(busy_port)}
    try:
        code = main([arg.format(**fill) for arg in argv])
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    out, err = capsys.readouterr()
    assert code == status
    assert out == ""
    assert len(err.splitlines()) == 1, err
    assert err.startswith(start.format(**fill)), err
    assert "Traceback" not in err


@pytest.mark.slow
def test_a_closed_pipe_ends_quietly(demo_db):
    done = subprocess.run(
        f"{sys.executable} -m mcp_state schema --db {demo_db} | head -1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.count("\n") == 1
    assert done.stderr == ""


@pytest.mark.slow
@pytest.mark.parametrize("typed", [b"", b"abc", b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}\n'])
def test_ctrl_c_stops_serve_at_once_whatever_was_typed(demo_db, typed):
    proc = subprocess.Popen(
        [sys.executable, "-m", "mcp_state", "serve", "--db", str(demo_db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        banner = proc.stderr.readline()  # written once the server is about to serve
        assert banner.startswith(b"mcp-state ")
        proc.stdin.write(typed)
        proc.stdin.flush()
        if typed.endswith(b"\n"):
            assert json.loads(proc.stdout.readline())["id"] == 1  # the server read and answered it
        else:
            time.sleep(0.5)  # waiting on stdin
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        assert time.monotonic() - sent < 3
        assert proc.returncode == 130
        assert proc.stderr.read() == b""  # nothing after the banner: no traceback
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            stream.close()  # type: ignore[union-attr]


def test_snippets_use_absolute_paths_and_never_a_package_cache(tmp_path):
    script = tmp_path / "venv/bin/mcp-state"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\n")
    assert launcher(tmp_path / "venv", str(script)) == [str(script.resolve())]
    assert launcher(tmp_path / "venv", "/somewhere/__main__.py") == [sys.executable, "-m", "mcp_state"]
    cached = Path.home() / ".cache/uv/archive-v0/AbC123"
    assert in_cache(cached) and in_cache(Path.home() / ".local/pipx/.cache/1f2e")
    assert not in_cache(tmp_path / "venv")
    program, *rest = launcher(cached, str(cached / "bin/mcp-state"))
    assert rest == ["mcp-state"] and Path(program).name == "uvx"
    assert os.path.isabs(program) or program == "uvx"  # absolute whenever uvx can be found


@pytest.mark.parametrize(
    ("command", "name"),
    [(["token", "list"], "token list"), (["query", "SELECT 1"], "query"), (["serve"], "serve")],
)
def test_a_postgresql_url_without_the_driver_says_what_to_install(command, name):
    """Installed without the [postgres] extra (psycopg hidden from this process): one line
    naming the extra, no traceback, exit 1."""
    code = (
        "import sys; sys.modules['psycopg'] = None; from mcp_state.cli import main; "
        f"sys.exit(main({[*command, '--db', 'postgresql://bob:pw@127.0.0.1:1/state']!r}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"mcp-state {name}: error: a postgresql:// database needs the PostgreSQL driver "
        '(psycopg is not installed): pip install "mcp-state[postgres]"'
    ]
