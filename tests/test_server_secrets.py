"""Planted canary secrets (a password hash, setup and reset tokens, one-time codes, bearer tokens
and their hashes) never appear in any tool result, resource, prompt, error message or log line."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from server_support import ANA, BOB, CASES, PENDING_CODE, SECOND_CODE, connect, seeded_copy, text_of

pytestmark = pytest.mark.anyio

RESOURCES = (
    "state://schema",
    "state://sync",
    "state://audit/recent",
    "state://sync/orders",
    "state://sync/orders/history",
    "state://knowledge/km_1",
    f"state://users/{ANA}",
    f"state://users/{BOB}",
    "state://tables/orders",
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_no_output_or_log_line_shows_a_secret(
    tmp_path: Path, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    db_path, seeded = seeded_copy(tmp_path)
    canaries = seeded["canaries"].splitlines()
    assert len(canaries) == 5 + 3 + 3
    outputs: list[str] = []
    async with connect(db_path, mode) as client:
        for name, (good, bad, _) in CASES.items():
            outputs.append(text_of(await client.call_tool(name, good)))
            outputs.append(text_of(await client.call_tool(name, bad)))
        # Calls that carry a secret in, or aim at secret-holding rows: none may echo it back.
        for name, arguments in (
            ("verify_pending_code", {"user_id": BOB, "code": SECOND_CODE}),
            ("verify_pending_code", {"user_id": BOB, "code": SECOND_CODE}),
            ("verify_pending_code", {"user_id": "nobody", "code": PENDING_CODE}),
            ("verify_pending_code", {"user_id": ANA, "code": PENDING_CODE + "x" * 200}),
            (
                "log_audit_event",
                {
                    "action": "leak",
                    "params": {"token": seeded["admin"], "nested": {"password": PENDING_CODE}},
                },
            ),
            ("create_user", {"id": ANA, "email": "other@example.com"}),
            ("update_user", {"user_id": ANA, "name": "Ana B."}),
            ("find_user_by_email", {"email": ANA}),
            ("list_users", {"limit": 200}),
            ("query_audit_log", {"limit": 200}),
            ("search_knowledge", {"query": PENDING_CODE}),
        ):
            outputs.append(text_of(await client.call_tool(name, arguments)))
        for uri in RESOURCES:
            outputs.append(text_of(await client.read_resource(uri)))
        for prompt, arguments in (
            ("triage_sync_failures", None),
            ("review_pending_knowledge", None),
            ("summarize_audit_activity", {"since": "2000-01-01"}),
        ):
            outputs.append(text_of(await client.get_prompt(prompt, arguments)))
    everything = "\n".join(outputs)
    assert ANA in everything and "has_password" in everything  # the outputs were collected
    for canary in canaries:
        assert canary not in everything, f"secret {canary[:12]}... appeared in an output"
        assert canary not in caplog.text, f"secret {canary[:12]}... appeared in a log line"
