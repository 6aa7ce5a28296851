"""What the lowest credential can do to the server: no route, resource or prompt without a valid
token; bounded sessions per actor; bounded audit rows; --toolsets subsets; schema-valid input
that gets a result or an actionable error (issue 11, findings 5 to 8 and 10)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from server_support import connect, seeded_copy
from test_server_http import ACCEPT, INITIALIZE, http, mcp_client, running_app

from mcp_state.cli import main
from mcp_state.db import Database
from mcp_state.repositories.tokens import TokenRepository, token_file
from mcp_state.server import ServerSettings, build_server
from mcp_state.server.audit import MAX_PARAMS_CHARS
from mcp_state.sql.hardening import hardened_database

pytestmark = pytest.mark.anyio

RESOURCES = [
    "state://schema",
    "state://sync",
    "state://audit/recent",
    "state://users/u1",
    "state://sync/orders",
]
PROMPTS = ["triage_sync_failures", "review_pending_knowledge", "summarize_audit_activity"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def seeded(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    return seeded_copy(tmp_path)


def _revoke_first(db_path: Path) -> None:
    with hardened_database(db_path) as db:
        token_id = TokenRepository(db).list_all()[0]["id"]  # the read token: created first
    assert main(["token", "revoke", token_id, "--db", str(db_path)]) == 0


async def test_every_route_resource_and_prompt_needs_a_valid_token(seeded, capsys) -> None:
    db_path, tokens = seeded
    calls = [{"jsonrpc": "2.0", "id": 2, "method": "resources/read", "params": {"uri": u}} for u in RESOURCES]
    calls += [{"jsonrpc": "2.0", "id": 3, "method": "prompts/get", "params": {"name": p}} for p in PROMPTS]
    calls += [INITIALIZE, {"jsonrpc": "2.0", "id": 4, "method": "resources/list"}]
    async with running_app(db_path) as app:
        paths = {getattr(route, "path", "/") for route in app.routes} | {
            "/mcp/",
            "/",
            "/mcp/x",
            "/.well-known/oauth-protected-resource",
            "/.well-known/oauth-authorization-server",
            "/healthz/",
            "/docs",
        }
        paths.discard("/healthz")
        _revoke_first(db_path)
        capsys.readouterr()
        for token in (None, "mcps_wrong", tokens["read"], "Bearer", tokens["write"] + " "):
            headers = {} if token is None else {"Authorization": f"Bearer {token}"}
            async with http(app) as client:
                for path in sorted(paths):
                    for method in ("GET", "POST", "DELETE"):
                        body = calls[0] if method == "POST" else None
                        response = await client.request(
                            method, path, json=body, headers={**ACCEPT, **headers}
                        )
                        if token == tokens["write"] + " ":
                            continue  # a valid token (the trailing space is stripped): answered normally
                        assert response.status_code == 401, (token, method, path, response.status_code)
                        assert str(db_path.parent) not in response.text and "version" not in response.text
                for call in calls:
                    response = await client.post("/mcp", json=call, headers={**ACCEPT, **headers})
                    if token != tokens["write"] + " ":
                        assert response.status_code == 401, (token, call["method"])
        async with http(app) as anonymous:
            health = await anonymous.get("/healthz")
            assert health.status_code == 200


async def test_a_revoked_token_stops_working_within_a_second_without_the_database(seeded) -> None:
    db_path, tokens = seeded
    async with running_app(db_path) as app, mcp_client(app, tokens["read"], "auto") as reader:
        assert not (await reader.call_tool("get_sync_state", {"table_id": "orders"})).is_error
        published = json.loads(Path(token_file(str(db_path)) or "").read_text())
        assert len(published) == 3 and all(len(h) == 64 for h in published)  # hashes only
        assert not any(token in json.dumps(published) for token in tokens.values())


async def test_sessions_are_capped_per_actor_and_in_total(seeded) -> None:
    db_path, tokens = seeded
    async with running_app(db_path, max_sessions=3, max_sessions_per_actor=2) as app:
        async with http(app, tokens["read"]) as reader:
            opened = [await reader.post("/mcp", json=INITIALIZE, headers=ACCEPT) for _ in range(3)]
        assert [r.status_code for r in opened] == [200, 200, 503]
        message = opened[2].json()["error"]["message"]
        assert (
            "too many open sessions for 'read-bot'" in message
            and "MCP_STATE_MAX_SESSIONS_PER_ACTOR" in message
        )
        async with http(app, tokens["write"]) as writer:
            other = [await writer.post("/mcp", json=INITIALIZE, headers=ACCEPT) for _ in range(2)]
        assert [r.status_code for r in other] == [200, 503]
        assert "maximum of 3 open sessions" in other[1].json()["error"]["message"]
        # Ending a session makes room again.
        session = opened[0].headers["mcp-session-id"]
        async with http(app, tokens["read"]) as reader:
            ended = await reader.delete("/mcp", headers={**ACCEPT, "mcp-session-id": session})
            assert ended.status_code in (200, 204)
            again = await reader.post("/mcp", json=INITIALIZE, headers=ACCEPT)
            assert again.status_code == 200


@pytest.mark.parametrize(
    ("toolsets", "resources", "prompts"),
    [
        (("sql",), {"state://schema"}, set()),
        (("sync",), {"state://sync"}, {"triage_sync_failures"}),
        (
            ("audit", "knowledge"),
            {"state://audit/recent"},
            {"summarize_audit_activity", "review_pending_knowledge"},
        ),
    ],
)
async def test_toolsets_serve_only_their_resources_and_prompts(seeded, toolsets, resources, prompts) -> None:
    db_path, _ = seeded
    async with connect(db_path, toolsets=toolsets) as client:
        listed = {str(r.uri) for r in (await client.list_resources()).resources}
        names = {p.name for p in (await client.list_prompts()).prompts}
        templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
    assert listed == resources and names == prompts
    expected = {"sync": 3, "audit": 1, "knowledge": 1, "sql": 0}  # with the paged {?cursor} ones
    assert len(templates) == sum(expected[t] for t in toolsets)


def _audit_rows(db_path: Path) -> list[dict]:
    with Database(db_path) as db:
        rows = (
            db.open().execute("SELECT action, result, params::VARCHAR FROM audit_log ORDER BY seq").fetchall()
        )
    return [{"action": a, "result": r, "params": json.loads(p) if p else None} for a, r, p in rows]


async def test_audit_rows_stay_small_and_refused_calls_keep_argument_names_only(seeded) -> None:
    db_path, tokens = seeded
    junk = {f"k{i:05d}": "x" * 50 for i in range(6000)}
    async with running_app(db_path) as app:
        async with mcp_client(app, tokens["admin"], "auto") as admin:
            refused = await admin.call_tool("delete_user", {"user_id": 123, **junk})  # fails the schema
            assert refused.is_error
            logged = await admin.call_tool(
                "log_audit_event", {"action": "bulk", "params": {"rows": ["y" * 400] * 500, **junk}}
            )
            assert not logged.is_error, logged.content[0].text[:300]
        async with mcp_client(app, tokens["read"], "auto") as reader:
            denied = await reader.call_tool("delete_user", {"user_id": "secret-looking-value"})
            assert denied.is_error and "[permission_denied]" in denied.content[0].text
    rows = _audit_rows(db_path)
    schema, bulk, logged_row, scope = rows[-4:]
    assert schema["action"] == "delete_user" and schema["result"] == "invalid_argument"
    assert "argument values not recorded" in schema["params"]["[note]"]
    assert schema["params"]["[arguments]"][:2] == ["user_id", "k00000"]
    assert bulk["action"] == "bulk" or bulk["action"] == "log_audit_event"
    assert scope["result"] == "permission_denied" and scope["params"]["[arguments]"] == ["user_id"]
    assert "secret-looking-value" not in json.dumps(scope)
    assert logged_row["action"] == "log_audit_event" and "[arguments]" in logged_row["params"]
    for row in rows[-4:]:
        assert len(json.dumps(row["params"])) <= MAX_PARAMS_CHARS + 200, row["action"]


async def test_schema_valid_input_gets_a_result_or_an_actionable_error(seeded) -> None:
    db_path, _ = seeded
    async with connect(db_path) as client:
        too_long = await client.call_tool("log_audit_event", {"action": "x", "duration_ms": 2**40})
        assert too_long.is_error and "[invalid_argument]" in too_long.content[0].text
        early = await client.call_tool("query_audit_log", {"since": "0001-01-01T00:00:00+05:00"})
        assert (
            early.is_error
            and "out of range" in early.content[0].text
            and "[invalid_argument]" in early.content[0].text
        )
        assert "[invalid_argument]" in early.content[0].text
        with pytest.raises(Exception, match=r"since .*999999w.* reaches back more than 100 years"):
            await client.get_prompt("summarize_audit_activity", {"since": "999999w"})
        months = await client.call_tool("sql_query", {"sql": "SELECT INTERVAL 2147483647 MONTH AS m"})
        assert not months.is_error and months.structured_content["rows"] == [["178956970 years 7 months"]]
        deep = await client.call_tool(
            "sql_query", {"sql": "SELECT json(repeat('[', 3000) || repeat(']', 3000)) AS j"}
        )
        assert not deep.is_error and deep.structured_content["rows"][0][0].startswith("[[[")


def test_build_server_reads_session_caps_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("MCP_STATE_MAX_SESSIONS_PER_ACTOR", "3")
    monkeypatch.setenv("MCP_STATE_MAX_SESSIONS", "7")
    settings = ServerSettings(db_path=":memory:").resolved()
    assert (settings.max_sessions, settings.max_sessions_per_actor) == (7, 3)
    monkeypatch.setenv("MCP_STATE_MAX_SESSIONS", "none")
    with pytest.raises(ValueError, match="MCP_STATE_MAX_SESSIONS must be a whole number"):
        build_server(ServerSettings(db_path=":memory:"))


@pytest.mark.slow
def test_a_fake_token_poller_never_locks_out_token_revoke(seeded) -> None:
    """A client polling with a wrong token while an operator revokes a token in another process:
    every poll is a 401 and never opens the database, so ``mcp-state token revoke`` gets in."""
    import http.client
    import os
    import subprocess
    import sys
    import threading
    import time

    from fault_support import free_port

    db_path, tokens = seeded
    port = free_port()
    env = {**os.environ, "MCP_STATE_IDLE_RELEASE": "1"}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mcp_state",
            "serve",
            "--transport",
            "http",
            "--port",
            str(port),
            "--db",
            str(db_path),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def post(token: str) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            body = json.dumps(INITIALIZE)
            headers = {**ACCEPT, "Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            conn.request("POST", "/mcp", body=body, headers=headers)
            return conn.getresponse().status
        finally:
            conn.close()

    statuses: list[int] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            statuses.append(post("mcps_fake_token_polled_twice_a_second"))
            time.sleep(0.1)

    try:
        deadline = time.monotonic() + 30
        while True:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            try:
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
            finally:
                conn.close()
        assert post(tokens["read"]) == 200
        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        time.sleep(0.5)
        listed = subprocess.run(
            [sys.executable, "-m", "mcp_state", "token", "list", "--json", "--db", str(db_path)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**env, "MCP_STATE_LOCK_TIMEOUT": "60"},
        )
        # The server used the file for the read token's last use; it lets go when idle, so the
        # CLI may wait for that (MCP_STATE_IDLE_RELEASE), but never for the poller.
        assert listed.returncode == 0, listed.stderr
        read_id = next(json.loads(line)["id"] for line in listed.stdout.splitlines() if "read" in line)
        started = time.monotonic()
        revoked = subprocess.run(
            [sys.executable, "-m", "mcp_state", "token", "revoke", read_id, "--db", str(db_path)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**env, "MCP_STATE_LOCK_TIMEOUT": "60"},
        )
        assert revoked.returncode == 0, revoked.stderr
        assert time.monotonic() - started < 10
        gone = time.monotonic()
        while True:  # a request sent a second after the revocation is refused, however slow
            sent = time.monotonic()
            if post(tokens["read"]) == 401:
                break
            assert sent - gone < 1.0, "the revoked token still works after a second"
            time.sleep(0.05)
    finally:
        stop.set()
        server.terminate()
        server.wait(timeout=30)
    assert statuses and set(statuses) == {401}
