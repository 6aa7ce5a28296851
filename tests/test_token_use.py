"""A token's last use is written after the requests pause, never beside the call it was noted for."""

from __future__ import annotations

import threading
import time

from mcp_state.db import Database
from mcp_state.repositories.tokens import TokenRepository
from mcp_state.server.tokens import TokenCache


def test_a_tokens_use_is_written_once_the_requests_pause(tmp_path):
    path = str(tmp_path / "state.duckdb")
    with Database(path, idle_release=None) as db:
        tokens = TokenRepository(db)
        token, record = tokens.create("agent", "read")
        written = threading.Event()
        writes: list[float] = []

        def touch(token_id: str) -> None:
            tokens.touch(token_id)
            writes.append(time.monotonic())
            written.set()

        cache = TokenCache(path, touch=touch, quiet=0.3)
        checks = []
        for _ in range(5):  # requests 0.1 s apart: the use is not written while they go on
            assert cache.lookup(token) is not None
            checks.append(time.monotonic())
            time.sleep(0.1)
        assert written.wait(5)
        assert writes == [writes[0]] and writes[0] - checks[-1] >= 0.3
        assert tokens.get(record["id"])["last_used_at"] is not None
        # Within the minute, another use writes nothing more.
        assert cache.lookup(token) is not None
        time.sleep(0.5)
        assert len(writes) == 1
        assert cache.lookup("mcps_not-a-token") is None
