"""Repository for user management.

The Python API returns whole rows, secrets included (the web app needs the password hash to
log a user in). Tools and resources show ``public_user(row)`` instead.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mcp_state.errors import ConflictError, InvalidArgumentError
from mcp_state.gateway import utc_now
from mcp_state.repositories.base import Repository, check_choice, check_id
from mcp_state.types import ROLES, PublicUser, User

UPDATABLE = (
    "email",
    "name",
    "role",
    "password_hash",
    "setup_token",
    "setup_token_created",
    "reset_token",
    "reset_token_created",
)
SECRET_FIELDS = ("password_hash", "setup_token", "reset_token")


def public_user(row: User | dict[str, Any]) -> PublicUser:
    """A user without its password hash and tokens (only whether a password is set)."""
    return {
        "id": row["id"],
        "email": row["email"],
        "name": row.get("name"),
        "role": row.get("role"),
        "created_at": row.get("created_at"),
        "updated_at": row.get("updated_at"),
        "has_password": row.get("password_hash") is not None,
    }


class UserRepository(Repository):
    table = "users"
    order = (("email", False), ("id", False))
    order_by = "email, id"
    noun = "user"

    def get_by_id(self, user_id: str) -> User | None:
        return self._get(user_id)  # type: ignore[return-value]

    def get_by_email(self, email: str) -> User | None:
        return self.db.fetch_one("SELECT * FROM users WHERE lower(email) = lower(?)", [email])  # type: ignore[return-value]

    def list_all(
        self,
        *,
        role: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        after: tuple[Any, ...] | None = None,
    ) -> list[User]:
        if role is not None:
            check_choice("role", role, ROLES)
            return self._list("role = ?", [role], limit=limit, offset=offset, after=after)  # type: ignore[return-value]
        return self._list(limit=limit, offset=offset, after=after)  # type: ignore[return-value]

    def count(self, *, role: str | None = None) -> int:
        return self._count("role = ?", [role]) if role is not None else self._count()

    def create(
        self,
        id: str,
        email: str,
        name: str | None,
        role: str = "analyst",
        password_hash: str | None = None,
        created_at: datetime | None = None,
    ) -> User:
        check_id("id", id)
        _check_email(email)
        check_choice("role", role, ROLES)
        now = created_at or utc_now()
        with self.db.transaction():
            self._check_email_free(email)
            if self._exists(id):
                raise ConflictError(
                    f"a user with id '{id}' already exists; choose another id or update that user"
                )
            self.db.execute(
                """INSERT INTO users (id, email, name, role, password_hash, created_at, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?)""",
                [id, email, name, role, password_hash, now, now],
            )
            return self._require(id)  # type: ignore[return-value]

    def update(self, id: str, **kwargs: Any) -> User:
        """Change the given fields of user ``id``; raises NotFoundError for an unknown id."""
        unknown = sorted(set(kwargs) - set(UPDATABLE))
        if unknown:
            raise InvalidArgumentError(
                f"cannot update {', '.join(unknown)}; updatable fields are {', '.join(UPDATABLE)}"
            )
        if "role" in kwargs:
            check_choice("role", kwargs["role"], ROLES)
        if "email" in kwargs:
            _check_email(kwargs["email"])
        with self.db.transaction():
            current = self._require(id)
            if "email" in kwargs and kwargs["email"].lower() != current["email"].lower():
                self._check_email_free(kwargs["email"])
            if kwargs:
                updates = dict(kwargs, updated_at=utc_now())
                assignments = ", ".join(f"{col} = ?" for col in updates)  # columns from UPDATABLE only
                self.db.execute(f"UPDATE users SET {assignments} WHERE id = ?", [*updates.values(), id])
            return self._require(id)  # type: ignore[return-value]

    def delete(self, user_id: str) -> None:
        """Delete a user with their dataset permissions, sync settings and Telegram link."""
        with self.db.transaction():
            self._require(user_id)
            for table in ("dataset_permissions", "user_sync_settings", "telegram_links"):
                self.db.execute(f"DELETE FROM {table} WHERE user_id = ?", [user_id])
            self._delete(user_id)

    def _check_email_free(self, email: str) -> None:
        if self.get_by_email(email) is not None:
            raise ConflictError(
                f"a user with email '{email}' already exists; use find_user_by_email to get it, or pick another email"
            )


def _check_email(email: Any) -> None:
    if not isinstance(email, str) or "@" not in email or len(email) > 320 or email != email.strip():
        raise InvalidArgumentError(f"email must look like name@domain; got {email!r}")
