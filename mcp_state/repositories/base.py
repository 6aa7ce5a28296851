"""What every repository shares: the gateway, key lookups, paging and argument checks."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from mcp_state.db import Database
from mcp_state.errors import InvalidArgumentError, NotFoundError
from mcp_state.gateway import Gateway, Source

Order = tuple[tuple[str, bool], ...]


def order_sql(order: Order) -> str:
    """``ORDER BY`` text for ``(expression, descending)`` pairs."""
    return ", ".join(f"{expr} DESC" if descending else expr for expr, descending in order)


def keyset(order: Order, after: tuple[Any, ...] | None) -> tuple[str, list[Any]]:
    """The condition (and its parameters) for rows that come after the key ``after`` in ``order``.

    Keyset paging: unlike an offset, it neither repeats nor skips rows when others are
    inserted or deleted between pages. ``order`` must be unique per row and never NULL (its
    expressions come from the repositories' code, never from a caller). ``("", [])`` for ``None``.
    """
    if after is None:
        return "", []
    if len(after) != len(order):
        raise InvalidArgumentError("the cursor does not fit this list; leave cursor out to start over")
    clauses: list[str] = []
    params: list[Any] = []
    for i, (expr, descending) in enumerate(order):
        parts = [f"{e} = ?" for e, _ in order[:i]] + [f"{expr} {'<' if descending else '>'} ?"]
        clauses.append("(" + " AND ".join(parts) + ")")
        params.extend([*after[:i], after[i]])
    return "(" + " OR ".join(clauses) + ")", params


class Repository:
    """Base of the repositories: one table, its key columns and its listing order.

    ``order`` is the listing order as ``(expression, descending)`` pairs, unique per row, so
    lists page by keyset (``after=key_of(last row)``); ``order_by`` is the same as SQL.

    Every public method of a repository is a unit of work that runs again when it collided
    with a concurrent transaction (``Gateway.retrying``; PostgreSQL's deadlocks), unless
    it runs inside a caller's transaction (then the caller's unit runs again).
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, member in list(vars(cls).items()):
            if not name.startswith("_") and inspect.isfunction(member):
                setattr(cls, name, _retried(member))

    table: str = ""
    key: tuple[str, ...] = ("id",)
    order: Order = (("id", False),)
    order_by: str = "id"
    noun: str = "row"
    # Bookkeeping columns rows are returned without (e.g. a change sequence used only for order).
    hidden: tuple[str, ...] = ()

    def key_of(self, row: dict[str, Any]) -> tuple[Any, ...]:
        """The sort key of ``row`` in ``order`` (what the next page starts after)."""
        return tuple(row[expr] for expr, _ in self.order)

    def __init__(self, conn: Source | Gateway) -> None:
        self.db = conn if isinstance(conn, Gateway) else Gateway(conn)

    # -- shared reads and deletes -----------------------------------------------------
    def _where_key(self) -> str:
        return " AND ".join(f"{col} = ?" for col in self.key)

    @property
    def _columns(self) -> str:
        return self.db.dialect.columns_except(self.table, self.hidden)

    def _get(self, *key: Any) -> dict[str, Any] | None:
        sql = f"SELECT {self._columns} FROM {self.table} WHERE {self._where_key()}"
        return self.db.fetch_one(sql, key, cache=True)

    def _require(self, *key: Any) -> dict[str, Any]:
        row = self._get(*key)
        if row is None:
            raise self._not_found(*key)
        return row

    def _exists(self, *key: Any) -> bool:
        return self.db.fetch_value(f"SELECT 1 FROM {self.table} WHERE {self._where_key()}", key) is not None

    def _not_found(self, *key: Any) -> NotFoundError:
        ident = "/".join(str(k) for k in key)
        return NotFoundError(f"no {self.noun} '{ident}' exists; check the id (list them to see what exists)")

    def _list(
        self,
        where: str = "",
        params: Sequence[Any] = (),
        *,
        limit: int | None = None,
        offset: int = 0,
        order_by: str | None = None,
        table: str | None = None,
        after: tuple[Any, ...] | None = None,
        order: Order | None = None,
        select: str = "*",
    ) -> list[dict[str, Any]]:
        """Rows matching ``where``, in order; ``after`` (a ``key_of``) starts past that row."""
        limit, offset = check_page(limit, offset)
        args = list(params)
        if after is not None:
            condition, more = keyset(order or self.order, after)
            where = f"({where}) AND {condition}" if where else condition
            args.extend(more)
        if select == "*" and table is None:
            select = self._columns
        sql = f"SELECT {select} FROM {table or self.table}"
        if where:
            sql += f" WHERE {where}"
        sql += f" ORDER BY {order_by or (order_sql(order) if order else self.order_by)}"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        if offset:
            sql += " OFFSET ?"
            args.append(offset)
        return self.db.fetch_all(sql, args)

    def _count(self, where: str = "", params: Sequence[Any] = ()) -> int:
        sql = f"SELECT count(*) FROM {self.table}" + (f" WHERE {where}" if where else "")
        return int(self.db.fetch_value(sql, params))

    def _upsert(
        self,
        values: dict[str, Any],
        *,
        keep: tuple[str, ...] = (),
        insert_only: tuple[str, ...] = (),
        table: str | None = None,
        key: tuple[str, ...] | None = None,
    ) -> dict[str, Any]:
        """Insert the row, or update the existing row with the same key; returns the row as stored.

        ``keep``: columns that keep their stored value when the new one is NULL.
        ``insert_only``: columns written on insert and never changed by an update.

        On DuckDB, an UPDATE then (if it matched nothing) an INSERT, in one transaction under
        the process write lock: DuckDB's ``ON CONFLICT DO UPDATE`` costs about three times a
        plain UPDATE. Another process cannot interleave (it cannot open the file meanwhile).
        On PostgreSQL, one ``INSERT ... ON CONFLICT DO UPDATE``: of two concurrent upserts of
        one new key, one inserts and the other updates. Each returns the row (``RETURNING *``).
        """
        table = table or self.table
        key_cols = key or self.key
        if self.db.dialect.native_upsert:
            sql = self.db.dialect.upsert(table, list(values), key_cols, keep, insert_only)
            return self.db.execute_returning(sql, list(values.values()))[0]
        where = " AND ".join(f"{col} = ?" for col in key_cols)
        key_values = [values[col] for col in key_cols]
        sets = [col for col in values if col not in key_cols and col not in insert_only]
        assignments = ", ".join(
            f"{col} = coalesce(?, {col})" if col in keep else f"{col} = ?" for col in sets
        )
        with self.db.transaction():
            if sets:
                rows = self.db.execute_returning(
                    f"UPDATE {table} SET {assignments} WHERE {where} RETURNING *",
                    [*(values[c] for c in sets), *key_values],
                )
            else:
                rows = self.db.fetch_all(f"SELECT * FROM {table} WHERE {where}", key_values)
            if rows:
                return rows[0]
            placeholders = ", ".join("?" for _ in values)
            return self.db.execute_returning(
                f"INSERT INTO {table} ({', '.join(values)}) VALUES ({placeholders}) RETURNING *",
                list(values.values()),
            )[0]

    def _delete(self, *key: Any) -> None:
        """Delete the row with this key, or raise NotFoundError."""
        if not self.db.execute(f"DELETE FROM {self.table} WHERE {self._where_key()}", key):
            raise self._not_found(*key)


def _retried(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def unit(self: Repository, *args: Any, **kwargs: Any) -> Any:
        return self.db.retrying(method, self, *args, **kwargs)

    return unit


# -- argument checks: one home for each rule ---------------------------------------------
def check_id(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgumentError(f"{name} must be a non-empty string")
    if len(value) > 1024:
        raise InvalidArgumentError(f"{name} is too long (at most 1024 characters)")
    return value


def check_choice(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    allowed = tuple(allowed)
    if isinstance(value, bool) or value not in allowed:
        raise InvalidArgumentError(f"{name} must be one of {', '.join(map(str, allowed))}; got {value!r}")
    return value


MAX_INT32 = 2**31 - 1  # INTEGER columns (durations in ms, column counts)


def check_non_negative(
    name: str, value: Any, *, optional: bool = True, maximum: int = 2**63 - 1
) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidArgumentError(f"{name} must be a whole number of 0 or more; got {value!r}")
    if value > maximum:
        raise InvalidArgumentError(f"{name} must be at most {maximum:,}; got {value:,}")
    return value


def check_page(limit: int | None, offset: int = 0) -> tuple[int | None, int]:
    if limit is not None:
        check_non_negative("limit", limit, optional=False)
    check_non_negative("offset", offset, optional=False)
    return limit, offset


def check_str_list(name: str, value: Any) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise InvalidArgumentError(f"{name} must be a list of strings")
    return list(value)


def like_pattern(text: str) -> str:
    """A LIKE pattern matching ``text`` anywhere, with %, _ and \\ taken literally (ESCAPE '\\')."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


__all__ = ["Database", "Repository"]
