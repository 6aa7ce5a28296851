"""Writing: the staged, checked entries go into the state tables, one statement per table."""

from __future__ import annotations

from typing import Any

from mcp_state.legacy.checks import count_of, differs_any, key_match
from mcp_state.legacy.layout import KINDS, Kind
from mcp_state.legacy.stage import Run
from mcp_state.repositories.knowledge import NEXT_CHANGE, reindex_sql


def write_all(run: Run, dry_run: bool) -> None:
    """Write every kind's valid staged entries: new keys inserted, changed values updated."""
    for kind in KINDS:
        _write(run, kind, dry_run)
    if not dry_run:  # the knowledge items written get their words indexed for search_knowledge
        for sql in reindex_sql("SELECT id FROM _staged_knowledge WHERE _problem IS NULL"):
            run.sql("corporate-memory/knowledge.json: indexing words", sql)


def _write(run: Run, kind: Kind, dry_run: bool) -> None:
    report = run.report[kind.name]
    staged = f"_staged_{kind.name}"
    match, differs = key_match(kind), differs_any(kind)
    new = f"s._problem IS NULL AND NOT EXISTS (SELECT 1 FROM {kind.table} t WHERE {match})"
    step = f"{kind.file}: writing {kind.table}"
    valid, first, last = _span(run, f"SELECT count(*), min(_n), max(_n) FROM {staged} WHERE _problem IS NULL")
    stored = int(run.value(f"SELECT count(*) FROM {kind.table}"))
    count = valid
    if stored:
        count, first, last = _span(run, f"SELECT count(*), min(_n), max(_n) FROM {staged} s WHERE {new}")
    else:  # an empty table: every valid entry is new (and the anti-join can go)
        new = "s._problem IS NULL"
    changed = 0
    if stored and valid > count and not kind.append_only:
        if dry_run:
            changed = int(
                run.value(
                    f"SELECT count(*) FROM {staged} s JOIN {kind.table} t ON {match} "
                    f"WHERE s._problem IS NULL AND ({differs})"
                )
            )
        else:
            assignments = ", ".join(f"{c} = s.{c}" for c in kind.compared)
            if kind.table == "knowledge_items":  # a changed item is a change in commit order
                assignments += f", change_seq = {NEXT_CHANGE}"
            changed = count_of(
                run.sql(
                    step,
                    f"UPDATE {kind.table} AS t SET {assignments} FROM {staged} s "
                    f"WHERE s._problem IS NULL AND {match} AND ({differs})",
                )
            )
    if count and not dry_run:
        columns = [*kind.columns, *kind.insert_nulls]
        values = [f"s.{c}" for c in kind.columns] + ["NULL"] * len(kind.insert_nulls)
        params: dict[str, Any] = {}
        if kind.ordered:
            # New rows are numbered in file order: take a block of the table's sequence.
            params["base"] = run.value(
                f"SELECT min(v) FROM (SELECT nextval('{kind.table}_seq') AS v FROM range($n))",
                {"n": last - first + 1},
            )
            params["first"] = first
            columns.append("seq")
            values.append("$base + s._n - $first")
        if kind.table == "knowledge_items":
            # New items get the next change numbers in the order of their own time (ties by id),
            # so the import lists newest first, and the same files always number alike.
            params["change_base"] = run.value(
                f"SELECT min(v) FROM (SELECT {NEXT_CHANGE} AS v FROM range($n))", {"n": count}
            )
            columns.append("change_seq")
            values.append(
                "$change_base - 1 + row_number() OVER "
                "(ORDER BY coalesce(s.updated_at, s.created_at) NULLS FIRST, s.id DESC)"
            )
        run.sql(
            step,
            f"INSERT INTO {kind.table} ({', '.join(columns)}) SELECT {', '.join(values)} FROM {staged} s WHERE {new}",
            params,
        )
    report.inserted = int(count)
    report.updated = changed
    report.unchanged = valid - int(count) - changed
    report.db_only = stored - (valid - int(count))


def _span(run: Run, sql: str) -> tuple[int, int, int]:
    """How many staged entries match, and the first and last entry number among them."""
    row = run.conn.execute(sql).fetchone()
    assert row is not None  # an aggregate always has its row
    return int(row[0]), row[1], row[2]
