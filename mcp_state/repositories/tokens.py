"""Repository for the HTTP transport's bearer tokens.

A token is shown once, when it is created; the database keeps only its SHA-256 hash (the
token is 256 random bits, so a plain hash is enough: there is nothing to brute-force).
Records come back without the hash.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import tempfile
from datetime import datetime, timedelta

from mcp_state.dialect import is_postgres_url
from mcp_state.errors import InvalidArgumentError
from mcp_state.gateway import utc_now
from mcp_state.repositories.base import Repository, check_choice, check_id
from mcp_state.types import ACCESS_LEVELS, ApiToken

TOKEN_PREFIX = "mcps_"
# Recording every use would turn each HTTP request into a write; once a minute is enough.
LAST_USED_RESOLUTION = timedelta(minutes=1)
_PUBLIC_COLUMNS = "id, actor, scope, created_at, last_used_at, revoked_at"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_file(db_path: str) -> str | None:
    """Where the active tokens' hashes are published next to the database (None in memory and
    on PostgreSQL).

    The HTTP server checks bearer tokens against this file, never the database, so a request
    with a wrong token never opens (or waits for) the database; it rereads the file when it
    changes, so a token created or revoked by another process counts within a second.
    """
    if db_path in ("", ":memory:") or is_postgres_url(db_path):  # no file beside a server's database
        return None
    return db_path + ".tokens"


def write_token_file(path: str, records: list[dict[str, object]]) -> None:
    """Replace ``path`` atomically (owner-only) with ``{hash: {id, actor, scope}}``."""
    payload = {
        str(r["token_hash"]): {"id": r["id"], "actor": r["actor"], "scope": r["scope"]} for r in records
    }
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tokens-", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(payload, out)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class TokenRepository(Repository):
    table = "api_tokens"
    order_by = "created_at, id"
    noun = "token"

    def create(self, actor: str, scope: str, created_at: datetime | None = None) -> tuple[str, ApiToken]:
        """A new token for ``actor`` with ``scope``: (the plaintext, shown only now; its record)."""
        check_id("actor", actor)
        check_choice("scope", scope, ACCESS_LEVELS)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token_id = "tok_" + secrets.token_hex(6)
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO api_tokens (id, actor, scope, token_hash, created_at) VALUES (?, ?, ?, ?, ?)",
                [token_id, actor, scope, hash_token(token), created_at or utc_now()],
            )
            record = self.get(token_id)
        self.publish()
        assert record is not None
        return token, record

    def get(self, token_id: str) -> ApiToken | None:
        return self.db.fetch_one(f"SELECT {_PUBLIC_COLUMNS} FROM api_tokens WHERE id = ?", [token_id])  # type: ignore[return-value]

    def verify(self, token: str) -> ApiToken | None:
        """The record of a valid (known, unrevoked) token, or None; notes when it was used."""
        if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        record: ApiToken | None = self.db.fetch_one(  # type: ignore[assignment]
            f"SELECT {_PUBLIC_COLUMNS} FROM api_tokens WHERE token_hash = ? AND revoked_at IS NULL",
            [hash_token(token)],
        )
        if record is None:
            return None
        now = utc_now()
        last = record["last_used_at"]
        read_only = getattr(self.db.source, "read_only", False)  # `serve --read-only` writes nothing
        if not read_only and (last is None or now - last >= LAST_USED_RESOLUTION):
            self.db.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", [now, record["id"]])
            record["last_used_at"] = now
        return record

    def list_all(self, include_revoked: bool = False) -> list[ApiToken]:
        where = "" if include_revoked else " WHERE revoked_at IS NULL"
        return self.db.fetch_all(  # type: ignore[return-value]
            f"SELECT {_PUBLIC_COLUMNS} FROM api_tokens{where} ORDER BY {self.order_by}"
        )

    def count_active(self) -> int:
        return self._count("revoked_at IS NULL")

    def revoke(self, token_id: str) -> ApiToken:
        """Revoke a token by id; revoking a revoked token is an error that says so."""
        with self.db.transaction():
            record = self.get(token_id)
            if record is None:
                raise self._not_found(token_id)
            if record["revoked_at"] is not None:
                raise InvalidArgumentError(f"token '{token_id}' is already revoked")
            self.db.execute("UPDATE api_tokens SET revoked_at = ? WHERE id = ?", [utc_now(), token_id])
            revoked = self.get(token_id)
        self.publish()
        assert revoked is not None
        return revoked

    def publish(self) -> str | None:
        """Write the active tokens' hashes to ``token_file`` (see there); returns its path."""
        source = getattr(self.db, "source", None)
        path = token_file(str(getattr(source, "path", "")))
        if path is None:
            return None
        records = self.db.fetch_all(
            "SELECT id, actor, scope, token_hash FROM api_tokens WHERE revoked_at IS NULL"
        )
        write_token_file(path, records)
        return path

    def touch(self, token_id: str) -> None:
        """Note that a token was used now."""
        self.db.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", [utc_now(), token_id])
