"""Repository for table profiles."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mcp_state.dialect import Dialect
from mcp_state.errors import InvalidArgumentError
from mcp_state.gateway import Json, utc_now
from mcp_state.repositories.base import Repository, check_id
from mcp_state.types import TableProfile


def _flatten(row: dict[str, Any]) -> dict[str, Any]:
    profile = dict(row["profile"]) if isinstance(row["profile"], dict) else {"profile": row["profile"]}
    profile["profiled_at"] = row["profiled_at"]
    return profile


def _summary(dialect: Dialect) -> str:
    """A profile's table id, time, number of columns and size (characters of its JSON)."""
    return (
        f"table_id, profiled_at, {dialect.json_length('profile', '$.columns')} AS column_count, "
        "length(CAST(profile AS VARCHAR)) AS size_chars"
    )


class ProfileRepository(Repository):
    """Profiles keyed by table id. ``get``/``get_all`` return the seed's shape: the profile
    document with ``profiled_at`` added; ``get_record``/``list_records`` return rows."""

    table = "table_profiles"
    key = ("table_id",)
    order = (("table_id", False),)
    order_by = "table_id"
    noun = "profile for table"

    def save(
        self, table_id: str, profile: dict[str, Any], profiled_at: datetime | None = None
    ) -> TableProfile:
        check_id("table_id", table_id)
        if not isinstance(profile, dict):
            raise InvalidArgumentError("profile must be a JSON object")
        document = {k: v for k, v in profile.items() if k != "profiled_at"}
        with self.db.transaction():
            return self._upsert(  # type: ignore[return-value]
                {"table_id": table_id, "profile": Json(document), "profiled_at": profiled_at or utc_now()}
            )

    def get(self, table_id: str) -> dict[str, Any] | None:
        row = self._get(table_id)
        return None if row is None else _flatten(row)

    def get_all(self) -> dict[str, dict[str, Any]]:
        return {row["table_id"]: _flatten(row) for row in self._list()}

    def get_record(self, table_id: str) -> TableProfile | None:
        return self._get(table_id)  # type: ignore[return-value]

    def list_records(self, limit: int | None = None, offset: int = 0) -> list[TableProfile]:
        return self._list(limit=limit, offset=offset)  # type: ignore[return-value]

    def list_summaries(
        self, limit: int | None = None, after: tuple[Any, ...] | None = None
    ) -> list[dict[str, Any]]:
        """Each profile as its table id, time, number of columns and size (characters of its JSON)."""
        return self._list(limit=limit, after=after, select=_summary(self.db.dialect))

    def get_summary(self, table_id: str) -> dict[str, Any] | None:
        return self.db.fetch_one(
            f"SELECT {_summary(self.db.dialect)} FROM table_profiles WHERE table_id = ?", [table_id]
        )

    def count(self) -> int:
        return self._count()

    def delete(self, table_id: str) -> None:
        self._delete(table_id)
