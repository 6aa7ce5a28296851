"""Streamable HTTP through the ASGI app: bearer tokens, scopes, Host checks, /healthz; the token CLI."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from server_support import BACKEND_MODES, READ_ONLY, seeded_copy, seeded_location

from mcp_state.cli import main
from mcp_state.db import Database, connect
from mcp_state.errors import PermissionDeniedError
from mcp_state.repositories.tokens import TokenRepository
from mcp_state.server import ServerSettings, build_server
from mcp_state.server.http import check_can_bind, http_app
from mcp_state.sql.hardening import hardened_database

pytestmark = pytest.mark.anyio

BASE = "http://127.0.0.1:8765"
LIST_TOOLS = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"},
    },
}
ACCEPT = {"accept": "application/json, text/event-stream"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def seeded(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    return seeded_copy(tmp_path)


@pytest.fixture
def seeded_anywhere(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> tuple[str, dict[str, str]]:
    """The seeded database on each backend in turn: on PostgreSQL every server checks tokens in
    the database (no token file), which any process on any machine sees at once."""
    return seeded_location(tmp_path, backend, request)


@asynccontextmanager
async def running_app(db_path: Path | str, **settings: Any) -> AsyncIterator[Any]:
    resolved = ServerSettings(db_path=str(db_path), transport="http", **settings).resolved()
    app = http_app(build_server(resolved), resolved)
    async with app.router.lifespan_context(app):
        yield app


def http(app: Any, token: str | None = None, **headers: str) -> httpx2.AsyncClient:
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url=BASE, headers=headers)


@asynccontextmanager
async def mcp_client(app: Any, token: str, mode: str) -> AsyncIterator[Client]:
    transport = streamable_http_client(f"{BASE}/mcp", http_client=http(app, token))
    async with Client(transport, mode=mode) as client:
        yield client


async def test_requests_without_a_valid_token_get_401(seeded_anywhere: tuple[str, dict[str, str]]) -> None:
    db_path, tokens = seeded_anywhere
    async with running_app(db_path) as app, http(app) as anonymous:
        health = await anonymous.get("/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert (await anonymous.post("/mcp", json=LIST_TOOLS, headers=ACCEPT)).status_code == 401
        for bad in ("mcps_wrong", tokens["read"] + "x", "Basic abc", tokens["read"].removeprefix("mcps_")):
            response = await anonymous.post(
                "/mcp", json=LIST_TOOLS, headers={**ACCEPT, "Authorization": f"Bearer {bad}"}
            )
            assert response.status_code == 401, bad
        async with http(app, tokens["read"]) as reader:
            assert (await reader.post("/mcp", json=INITIALIZE, headers=ACCEPT)).status_code == 200

        with hardened_database(db_path) as db:
            token_id = TokenRepository(db).list_all()[0]["id"]  # the read token: created first
        assert main(["token", "revoke", token_id, "--db", str(db_path)]) == 0
        revoked_at = time.monotonic()
        async with http(app, tokens["read"]) as revoked:
            while True:  # a request sent a second after the revocation is refused, however slow
                sent = time.monotonic()
                if (await revoked.post("/mcp", json=INITIALIZE, headers=ACCEPT)).status_code == 401:
                    break
                assert sent - revoked_at < 1.0, "a revoked token still works after a second"
                await anyio.sleep(0.05)


async def test_wrong_host_or_origin_is_refused(seeded: tuple[Path, dict[str, str]]) -> None:
    db_path, tokens = seeded
    async with running_app(db_path) as app:
        async with http(app, tokens["admin"], host="evil.example.com") as rebinding:
            assert (await rebinding.post("/mcp", json=INITIALIZE, headers=ACCEPT)).status_code == 421
        async with http(app, tokens["admin"], origin="http://evil.example.com") as cross_site:
            assert (await cross_site.post("/mcp", json=INITIALIZE, headers=ACCEPT)).status_code == 403
    async with (
        running_app(db_path, allowed_hosts=("state.internal",)) as app,
        http(app, tokens["admin"], host="state.internal:8765") as named,
    ):
        assert (await named.post("/mcp", json=INITIALIZE, headers=ACCEPT)).status_code == 200


@BACKEND_MODES
async def test_scopes_limit_tools_and_name_the_actor(
    seeded_anywhere: tuple[str, dict[str, str]], mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    db_path, tokens = seeded_anywhere
    sync = {"table_id": "orders", "rows": 1, "file_size_bytes": 1, "hash": "h"}
    user = {"id": "eve@example.com", "email": "eve@example.com"}
    async with running_app(db_path) as app:
        async with mcp_client(app, tokens["read"], mode) as reader:
            assert {t.name for t in (await reader.list_tools()).tools} == READ_ONLY
            assert not (await reader.call_tool("get_sync_state", {"table_id": "orders"})).is_error
            refused = await reader.call_tool("record_sync", sync)
            assert refused.is_error and refused.content[0].text.endswith("[permission_denied]")
            assert "needs 'write'" in refused.content[0].text
        async with mcp_client(app, tokens["write"], mode) as writer:
            assert not (await writer.call_tool("record_sync", sync)).is_error
            refused = await writer.call_tool("create_user", user)
            assert refused.is_error and "needs 'admin'" in refused.content[0].text
            assert (
                await writer.call_tool("grant_dataset_access", {"user_id": "bob@example.com", "dataset": "x"})
            ).is_error
        async with mcp_client(app, tokens["admin"], mode) as admin:
            assert not (await admin.call_tool("create_user", user)).is_error
            log = (await admin.call_tool("query_audit_log", {"limit": 5})).structured_content["items"]
    assert [(e["user_id"], e["action"], e["result"]) for e in log[:4]] == [
        ("admin-bot", "create_user", "ok"),
        ("write-bot", "grant_dataset_access", "permission_denied"),
        ("write-bot", "create_user", "permission_denied"),
        ("write-bot", "record_sync", "ok"),
    ]
    assert log[4] == {**log[4], "user_id": "read-bot", "action": "record_sync", "result": "permission_denied"}
    for token in tokens["canaries"].splitlines():
        assert token not in caplog.text


def test_non_loopback_bind_needs_a_token(tmp_path: Path) -> None:
    empty = tmp_path / "empty.duckdb"
    assert check_can_bind(ServerSettings(db_path=str(empty), transport="http").resolved()) == 0
    with pytest.raises(PermissionDeniedError, match="no bearer token exists"):
        check_can_bind(ServerSettings(db_path=str(empty), host="0.0.0.0", transport="http").resolved())
    with Database(empty) as db:
        TokenRepository(db).create("ops", "read")
    assert (
        check_can_bind(ServerSettings(db_path=str(empty), host="0.0.0.0", transport="http").resolved()) == 1
    )


def test_token_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "tokens.duckdb")
    connect(db).close()  # the commands refuse a missing file (tests/test_sharing_files.py)
    assert main(["token", "create", "--actor", "ana", "--scope", "write", "--db", db]) == 0
    created = capsys.readouterr()
    token = created.out.strip()
    assert token.startswith("mcps_") and len(token) > 40 and "cannot be shown again" in created.err

    assert main(["token", "list", "--db", db, "--json"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["actor"], r["scope"], r["revoked_at"]) for r in listed] == [("ana", "write", None)]
    assert main(["token", "list", "--db", db]) == 0
    table = capsys.readouterr().out
    assert listed[0]["id"] in table and token not in table and "token_hash" not in json.dumps(listed)

    assert main(["token", "revoke", listed[0]["id"], "--db", db]) == 0
    assert "Revoked" in capsys.readouterr().out
    assert main(["token", "revoke", listed[0]["id"], "--db", db]) == 1
    assert "already revoked" in capsys.readouterr().err
    assert main(["token", "list", "--db", db]) == 0 and "No tokens" in capsys.readouterr().err
    assert main(["token", "list", "--all", "--db", db]) == 0 and listed[0]["id"] in capsys.readouterr().out
    with Database(db) as opened:
        assert TokenRepository(opened).verify(token) is None
