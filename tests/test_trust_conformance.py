"""A real ``mcp-state serve --transport http``: the official MCP conformance suite's server scenarios,
and a refused token heard by a client that listens to log messages.

The suite cannot send a bearer token, so it talks to the server through
``tests/helpers/bearer_proxy.py``, which adds one. It needs Node 22 or newer: ``npx -p node@22``
provides one without a system install.

Seventeen scenarios call the suite's own fixtures: tools named ``test_*`` (image, audio,
embedded resource, mixed content, logging, progress, sampling and elicitation demos),
``test://`` resources and ``test_*`` prompts. A real server has none of them, so these are
**fixture-only** and expected to fail; every other scenario must pass. The logging, progress,
subscription and elicitation features those fixtures would exercise are tested on this server's
own tools in tests/test_trust_live.py and tests/test_trust_confirm.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import LoggingMessageNotificationParams

from mcp_state.db import Database
from mcp_state.repositories.tokens import TokenRepository

SUITE = "@modelcontextprotocol/conformance@0.1.16"
HELPERS = Path(__file__).parent / "helpers"
REPO = Path(__file__).resolve().parent.parent

# Scenario: what it needs that a real server lacks.
FIXTURE_ONLY = {
    "tools-call-image": "tool test_image_content",
    "tools-call-audio": "tool test_audio_content",
    "tools-call-embedded-resource": "tool test_embedded_resource",
    "tools-call-mixed-content": "tool test_multiple_content_types",
    "tools-call-with-logging": "tool test_tool_with_logging",
    "tools-call-with-progress": "tool test_tool_with_progress",
    "tools-call-sampling": "tool test_sampling",
    "tools-call-elicitation": "tool test_elicitation",
    "elicitation-sep1034-defaults": "tool test_elicitation_sep1034_defaults",
    "elicitation-sep1330-enums": "tool test_elicitation_sep1330_enums",
    "resources-read-text": "resource test://static-text",
    "resources-read-binary": "resource test://static-binary",
    "resources-templates-read": "resource template test://template/{id}/data",
    "prompts-get-simple": "prompt test_simple_prompt",
    "prompts-get-with-args": "prompt test_prompt_with_arguments",
    "prompts-get-embedded-resource": "prompt test_prompt_with_embedded_resource",
    "prompts-get-with-image": "prompt test_prompt_with_image",
}
# Passed on main before issue 10: the first ten. Issue 10 added the last three.
MUST_PASS = {
    "server-initialize",
    "ping",
    "completion-complete",
    "tools-list",
    "tools-call-simple-text",
    "tools-call-error",
    "server-sse-multiple-streams",
    "resources-list",
    "prompts-list",
    "dns-rebinding-protection",
    "logging-set-level",
    "resources-subscribe",
    "resources-unsubscribe",
}


RUN = re.compile(r"-\d{4}-\d{2}-\d{2}T[\d-]+Z$")

pytestmark = pytest.mark.slow


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def npx() -> str:
    found = shutil.which("npx")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have node and npx for the MCP conformance suite")
        pytest.skip("npx is not installed (node.js); CI runs this test")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"{url}: the process exited"
        try:
            httpx2.get(url, timeout=1)
            return
        except httpx2.TransportError:
            time.sleep(0.1)
    pytest.fail(f"{url} did not come up")


@dataclass(frozen=True)
class Served:
    """A real ``mcp-state serve --transport http``, and the token-adding proxy in front of it."""

    url: str
    proxied: str
    token: str
    stderr: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("served")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    db = folder / "state.duckdb"
    with Database(db, idle_release=None) as opened:
        token = TokenRepository(opened).create("conformance", "admin")[0]
    port, proxy_port = free_port(), free_port()
    stderr = folder / "stderr.txt"
    with stderr.open("w") as log:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mcp_state",
                "serve",
                "--transport",
                "http",
                "--db",
                str(db),
                "--port",
                str(port),
            ],
            cwd=folder,
            env=env,
            stderr=log,
        )
    proxy = subprocess.Popen(
        [
            sys.executable,
            str(HELPERS / "bearer_proxy.py"),
            str(proxy_port),
            f"http://127.0.0.1:{port}",
            token,
        ],
        cwd=folder,
        env=env,
    )
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz", server)
        wait_until_up(f"http://127.0.0.1:{proxy_port}/healthz", proxy)
        yield Served(f"http://127.0.0.1:{port}/mcp", f"http://127.0.0.1:{proxy_port}/mcp", token, stderr)
    finally:
        for proc in (proxy, server):
            proc.terminate()
            proc.wait(timeout=10)


def test_conformance_server_scenarios(npx: str, served: Served, tmp_path: Path) -> None:
    results = tmp_path / "results"
    env = {
        **os.environ,
        "npm_config_update_notifier": "false",
        "npm_config_cache": os.environ.get("npm_config_cache", str(Path.home() / ".npm")),  # noqa: SIM112
    }
    command = [npx, "-y", "-p", "node@22", "-p", SUITE, "--", "conformance", "server"]
    command.extend(["--url", served.proxied, "-o", str(results)])
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    # One folder per scenario, server-<scenario>-<timestamp>, holding its checks.
    outcome = {
        RUN.sub("", checks.parent.name).removeprefix("server-"): all(
            check["status"] == "SUCCESS" for check in json.loads(checks.read_text())
        )
        for checks in results.glob("*/checks.json")
    }
    assert outcome, done.stdout[-3000:] + done.stderr[-3000:]
    passed = {name for name, ok in outcome.items() if ok}
    assert passed >= MUST_PASS, sorted(MUST_PASS - passed)
    unexpected = set(outcome) - passed - set(FIXTURE_ONLY)
    assert not unexpected, f"failed, and not fixture-only: {sorted(unexpected)}"


@pytest.mark.anyio
@pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")
async def test_a_refused_token_is_logged_to_listening_clients(served: Served) -> None:
    """A client that set a log level hears of another request's refused token; so does stderr."""
    logged: list[LoggingMessageNotificationParams] = []

    async def on_log(params: LoggingMessageNotificationParams) -> None:
        logged.append(params)

    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {served.token}"}, timeout=10) as admin:
        transport = streamable_http_client(served.url, http_client=admin)
        async with Client(transport, mode="legacy", logging_callback=on_log) as client:
            await client.set_logging_level("warning")
            async with httpx2.AsyncClient(headers={"Authorization": "Bearer mcps_not-a-token"}) as intruder:
                assert (await intruder.post(served.url, json={})).status_code == 401
            with anyio.fail_after(2):
                while not logged:
                    await anyio.sleep(0.01)
    assert logged[0].level == "warning" and "bearer token is unknown or revoked" in str(logged[0].data)
    assert "not-a-token" not in str(logged[0].data)
    with anyio.fail_after(2):
        while "bearer token is unknown or revoked" not in served.stderr.read_text():
            await anyio.sleep(0.05)
    assert "not-a-token" not in served.stderr.read_text()
