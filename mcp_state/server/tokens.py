"""Bearer-token checks from memory: the HTTP server never opens the database to check a token.

``TokenCache`` holds the active tokens' SHA-256 hashes, read from the file the token
repository publishes next to the database (``token_file``) whenever a token is created or
revoked, by any process. It looks at the file (one ``stat``) at most every
``RECHECK_SECONDS`` while tokens are accepted, and again on a miss at most every
``MISS_RECHECK_SECONDS``: a revocation counts within a second, and a client polling with a
wrong token costs a ``stat`` and a dictionary lookup, never the database's lock.

A token's last use is still written to the database, at most once a minute per token, on a
background thread, and only for accepted tokens: once no token has been checked for
``QUIET_SECONDS`` (at the latest ``MAX_DEFER_SECONDS`` after the use), so that the write does
not run beside the call it was noted for. Written at once, it made the first call after an
agent's pause (the first use of the minute) about 10 ms slower over HTTP.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from mcp_state.repositories.tokens import LAST_USED_RESOLUTION, TOKEN_PREFIX, hash_token, token_file

logger = logging.getLogger("mcp_state.server")

RECHECK_SECONDS = 0.5
MISS_RECHECK_SECONDS = 0.05
MAX_TOKEN_CHARS = 200
QUIET_SECONDS = 1.0  # a token's use is written once no token was checked for this long
MAX_DEFER_SECONDS = 30.0  # ... or this long after the use, whatever the traffic


class TokenCache:
    """Active tokens by hash, following the published file of the database at ``db_path``."""

    def __init__(
        self, db_path: str, touch: Callable[[str], None] | None = None, quiet: float = QUIET_SECONDS
    ) -> None:
        path = token_file(db_path)
        if path is None:
            raise ValueError("bearer tokens need a database file (not :memory:)")
        self.path = path
        self._touch = touch
        self._lock = threading.Lock()
        self._tokens: dict[str, dict[str, str]] = {}
        self._seen: tuple[int, int, int] | None = None
        self._checked = 0.0
        self._used: dict[str, float] = {}
        self._quiet = quiet
        self._pending: set[str] = set()  # uses noted, not yet written
        self._last_check = 0.0  # monotonic time of the last accepted token
        self._writer: threading.Thread | None = None

    def lookup(self, token: str) -> dict[str, str] | None:
        """``{id, actor, scope}`` of an active token, or None."""
        if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX) or len(token) > MAX_TOKEN_CHARS:
            return None
        digest = hash_token(token)
        self._refresh(RECHECK_SECONDS)
        record = self._tokens.get(digest)
        if record is None:
            self._refresh(MISS_RECHECK_SECONDS)
            record = self._tokens.get(digest)
        if record is not None:
            self._note_use(record["id"])
        return record

    def _refresh(self, interval: float) -> None:
        now = time.monotonic()
        if now - self._checked < interval:
            return
        with self._lock:
            self._checked = now
            try:
                st = os.stat(self.path)
            except OSError:
                self._tokens, self._seen = {}, None  # no file: no token is valid
                return
            seen = (st.st_mtime_ns, st.st_size, st.st_ino)
            if seen == self._seen:
                return
            try:
                with open(self.path, encoding="utf-8") as f:
                    data: Any = json.load(f)
                self._tokens = {str(k): dict(v) for k, v in data.items()}
                self._seen = seen
            except (OSError, ValueError, AttributeError, TypeError):
                logger.warning("could not read the token file; keeping the tokens read before")

    def _note_use(self, token_id: str) -> None:
        if self._touch is None:
            return
        now = time.monotonic()
        with self._lock:
            self._last_check = now
            if now - self._used.get(token_id, -1e9) < LAST_USED_RESOLUTION.total_seconds():
                return
            self._used[token_id] = now
            self._pending.add(token_id)
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._write_uses, args=(now,), name="mcp-state-token-use", daemon=True
                )
                self._writer.start()

    def _write_uses(self, since: float) -> None:
        """Once the requests pause (or ``MAX_DEFER_SECONDS`` after ``since``), write the uses noted."""
        while True:
            with self._lock:
                now = time.monotonic()
                wait = min(self._last_check + self._quiet, since + MAX_DEFER_SECONDS) - now
                if wait <= 0:
                    pending, self._pending, self._writer = sorted(self._pending), set(), None
                    break
            time.sleep(wait)
        for token_id in pending:
            self._touch_quietly(token_id)

    def _touch_quietly(self, token_id: str) -> None:
        assert self._touch is not None
        try:
            self._touch(token_id)
        except Exception as exc:  # the file may be held by another process; the use is noted later
            logger.info("could not note a token's use: %s", type(exc).__name__)
            with self._lock:
                self._used.pop(token_id, None)  # so the next request tries again
