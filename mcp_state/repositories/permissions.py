"""Repository for per-user dataset access levels."""

from __future__ import annotations

from typing import Any

from mcp_state.repositories.base import Repository, check_choice, check_id
from mcp_state.types import ACCESS_LEVELS, DatasetPermission

_RANK = {level: rank for rank, level in enumerate(ACCESS_LEVELS)}  # read < write < admin


class DatasetPermissionRepository(Repository):
    table = "dataset_permissions"
    key = ("user_id", "dataset")
    order = (("user_id", False), ("dataset", False))
    order_by = "user_id, dataset"
    noun = "dataset permission"

    def grant(self, user_id: str, dataset: str, access: str = "read") -> DatasetPermission:
        """Give ``user_id`` this access level on ``dataset`` (replacing any other level)."""
        check_id("user_id", user_id)
        check_id("dataset", dataset)
        check_choice("access", access, ACCESS_LEVELS)
        with self.db.transaction():
            return self._upsert(  # type: ignore[return-value]
                {"user_id": user_id, "dataset": dataset, "access": access}
            )

    def revoke(self, user_id: str, dataset: str) -> None:
        self._delete(user_id, dataset)

    def get(self, user_id: str, dataset: str) -> DatasetPermission | None:
        return self._get(user_id, dataset)  # type: ignore[return-value]

    def list_for_user(self, user_id: str) -> list[DatasetPermission]:
        return self._list("user_id = ?", [user_id])  # type: ignore[return-value]

    def list_for_dataset(self, dataset: str) -> list[DatasetPermission]:
        return self._list("dataset = ?", [dataset])  # type: ignore[return-value]

    def list_all(
        self,
        user_id: str | None = None,
        dataset: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        after: tuple[Any, ...] | None = None,
    ) -> list[DatasetPermission]:
        where, params = self._filters(user_id, dataset)
        return self._list(where, params, limit=limit, offset=offset, after=after)  # type: ignore[return-value]

    def count(self, user_id: str | None = None, dataset: str | None = None) -> int:
        return self._count(*self._filters(user_id, dataset))

    def has_access(self, user_id: str, dataset: str, access: str = "read") -> bool:
        """Whether the user's level on ``dataset`` is at least ``access`` (read < write < admin)."""
        check_choice("access", access, ACCESS_LEVELS)
        row = self.get(user_id, dataset)
        return row is not None and _RANK.get(row["access"], -1) >= _RANK[access]

    @staticmethod
    def _filters(user_id: str | None, dataset: str | None) -> tuple[str, list[str]]:
        clauses, params = [], []
        if user_id is not None:
            clauses.append("user_id = ?")
            params.append(user_id)
        if dataset is not None:
            clauses.append("dataset = ?")
            params.append(dataset)
        return " AND ".join(clauses), params
