"""Repository for users' per-dataset sync settings."""

from __future__ import annotations

from datetime import datetime

from mcp_state.errors import InvalidArgumentError
from mcp_state.gateway import Json, utc_now
from mcp_state.repositories.base import Repository, check_choice, check_id, check_str_list
from mcp_state.types import TABLE_MODES, SyncSetting


class SyncSettingsRepository(Repository):
    table = "user_sync_settings"
    key = ("user_id", "dataset")
    order_by = "user_id, dataset"
    noun = "sync setting"

    def get(self, user_id: str) -> list[SyncSetting]:
        """All of a user's dataset settings (empty when they have none)."""
        return self._list("user_id = ?", [user_id])  # type: ignore[return-value]

    def get_one(self, user_id: str, dataset: str) -> SyncSetting | None:
        return self._get(user_id, dataset)  # type: ignore[return-value]

    def set(
        self,
        user_id: str,
        dataset: str,
        enabled: bool,
        table_mode: str = "all",
        tables: list[str] | None = None,
        updated_at: datetime | None = None,
    ) -> SyncSetting:
        """Set one dataset's settings for a user (replacing what was there)."""
        check_id("user_id", user_id)
        check_id("dataset", dataset)
        if not isinstance(enabled, bool):
            raise InvalidArgumentError("enabled must be true or false")
        check_choice("table_mode", table_mode, TABLE_MODES)
        tables = check_str_list("tables", tables)
        if table_mode == "selected" and tables is None:
            raise InvalidArgumentError("table_mode 'selected' needs the list of tables")
        if table_mode == "all" and tables:
            raise InvalidArgumentError(
                "tables are only used with table_mode 'selected'; leave them out for 'all'"
            )
        with self.db.transaction():
            return self._upsert(
                {
                    "user_id": user_id,
                    "dataset": dataset,
                    "enabled": enabled,
                    "table_mode": table_mode,
                    "tables": Json(tables),
                    "updated_at": updated_at or utc_now(),
                }
            )  # type: ignore[return-value]

    def list_all(
        self, dataset: str | None = None, limit: int | None = None, offset: int = 0
    ) -> list[SyncSetting]:
        if dataset:
            return self._list("dataset = ?", [dataset], limit=limit, offset=offset)  # type: ignore[return-value]
        return self._list(limit=limit, offset=offset)  # type: ignore[return-value]

    def count(self, dataset: str | None = None) -> int:
        return self._count("dataset = ?", [dataset]) if dataset else self._count()

    def delete(self, user_id: str, dataset: str | None = None) -> int:
        """Delete one dataset's setting, or all of a user's; NotFoundError when there was none."""
        if dataset is not None:
            self._delete(user_id, dataset)
            return 1
        removed = self.db.execute("DELETE FROM user_sync_settings WHERE user_id = ?", [user_id])
        if not removed:
            raise self._not_found(user_id)
        return removed
