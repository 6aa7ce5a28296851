"""Migrate the legacy JSON state (``LAYOUT.md``) into the database, all or nothing.

``migrate_all(data_dir)`` reads every file of the layout under ``data_dir`` and writes it to
the state database (by default ``data_dir/state/system.duckdb``, the seed's ``DATA_DIR``
convention), returning how many entries of each kind are in the database afterwards.
``migrate()`` does the same and returns the full report the CLI prints.

How it works, and why it is fast at real sizes:

- DuckDB reads each file itself (``read_json_objects``; the audit log line by line, streamed
  into a staging table that spills to disk rather than growing memory) and stages one row
  per entry. Python never touches an entry.
- Every entry is checked in SQL over the staged rows, by the rules of the layout
  (``mcp_state.legacy``), which mirror the repositories' checks value for value.
- The staged rows are written with one ``UPDATE ... FROM`` (rows whose values differ) and
  one ``INSERT ... SELECT`` (new keys) per table, in one transaction for the whole run.

What it guarantees:

- File values are kept: timestamps with an offset, naive (UTC) or a bare date (midnight
  UTC) are stored as UTC; a timestamp missing from a file stays NULL (never "now").
- Idempotent: entries are matched by key; a sync-history or audit entry without an id gets
  one made from its content (``h-``/``a-`` + MD5 of its values, ``-2``, ``-3``... for exact
  repeats), so a second run finds every row unchanged and writes nothing.
- Up to date: a run over changed files inserts new entries and updates entries whose values
  changed, leaving ``seq`` (insertion order) as it was. The audit log is append-only: a
  stored entry is never rewritten, and a file entry that differs from it is a problem. Rows in the database that are not in
  the files are kept and counted ("in the database only"): after the first run the
  database is the live store, and the MCP server may have added rows the files never had.
  To mirror the files exactly, migrate into a new database (``--db``).
- Columns the layout has no place for (``knowledge_votes.voted_at``, ``users.updated_at``)
  are NULL on insert and never changed by a later run.
- All or nothing: a malformed file or entry stops the run with a ``MigrationError`` naming
  the file, the entry and the problem; the transaction is rolled back (and a database file
  this run created is removed). ``skip_invalid`` leaves bad entries out and reports each.
- ``dry_run`` does all of it against a read-only connection (or an in-memory database when
  there is none yet) and writes nothing.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from mcp_state.db import _remove_partial, connect, get_schema_version, lock_timeout, system_db_path
from mcp_state.errors import DatabaseLockedError, MigrationError
from mcp_state.legacy import (
    KINDS,
    Field,
    Kind,
    Params,
    Reference,
    Shape,
    Source,
    ok_sql,
    string_sql,
    timestamp_sql,
)
from mcp_state.repositories.knowledge import reindex_sql
from mcp_state.schema import JSON_COLUMNS, SECRET_COLUMNS

Progress = Callable[[str, float], None]

# DuckDB's memory during a run; staged entries beyond it spill to a temporary file.
MEMORY_LIMIT = "1GB"


# -- the report ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    file: str
    entry: str
    problem: str

    def __str__(self) -> str:
        return f"{self.file}, {self.entry}: {self.problem}"


@dataclass
class KindReport:
    kind: str
    file: str
    table: str
    present: bool = False
    read: int = 0  # entries found in the file
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    db_only: int = 0  # rows in the table that the file does not have (kept)
    skipped: list[Problem] = field(default_factory=list)

    @property
    def migrated(self) -> int:
        """Entries of the file that are in the database after the run."""
        return self.inserted + self.updated + self.unchanged

    @property
    def written(self) -> int:
        return self.inserted + self.updated


@dataclass
class MigrationReport:
    data_dir: Path
    db_path: Path
    dry_run: bool
    kinds: list[KindReport]

    def counts(self) -> dict[str, int]:
        return {k.kind: k.migrated for k in self.kinds}

    @property
    def skipped(self) -> list[Problem]:
        return [p for k in self.kinds for p in k.skipped]

    @property
    def written(self) -> int:
        return sum(k.written for k in self.kinds)


# -- running it ----------------------------------------------------------------------------
def migrate_all(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    db_path: str | os.PathLike[str] | None = None,
    dry_run: bool = False,
    skip_invalid: bool = False,
    progress: Progress | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Migrate ``data_dir`` (default ``$DATA_DIR``); entries of each kind in the database afterwards."""
    return migrate(
        data_dir,
        db_path=db_path,
        dry_run=dry_run,
        skip_invalid=skip_invalid,
        progress=progress,
        on_wait=on_wait,
    ).counts()


def migrate(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    db_path: str | os.PathLike[str] | None = None,
    dry_run: bool = False,
    skip_invalid: bool = False,
    progress: Progress | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> MigrationReport:
    """Migrate ``data_dir`` into ``db_path`` (default ``data_dir/state/system.duckdb``); the full report.

    ``progress(step, fraction)`` is called as each step runs; ``on_wait(message)`` once if
    another process holds the database and the run waits for it (``MCP_STATE_LOCK_TIMEOUT``).
    """
    source = Path(data_dir if data_dir is not None else os.environ.get("DATA_DIR", "./data"))
    if not source.is_dir():
        raise MigrationError(
            f"the data directory {source} does not exist or is not a directory; pass the folder that holds "
            "src_data/, notifications/, corporate-memory/, auth/ and audit/"
        )
    target = Path(db_path) if db_path is not None else system_db_path(source)
    report = MigrationReport(source, target, dry_run, [KindReport(k.name, k.file, k.table) for k in KINDS])
    with _open(target, dry_run, on_wait) as conn, _memory_bounded(conn):
        run = _Run(conn, source, report, skip_invalid, progress)
        # Staging only fills temporary tables (and a file that cannot be parsed must not abort
        # the transaction), so it runs before it; the writes run in one transaction.
        run.stage_all()
        conn.execute("BEGIN TRANSACTION")
        try:
            run.write_all(dry_run)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("ROLLBACK" if dry_run else "COMMIT")
    return report


@contextmanager
def _open(
    path: Path, dry_run: bool, on_wait: Callable[[str], None] | None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """The connection a run works on; a database this run created is removed if the run fails."""
    existed = path.exists()
    if dry_run:
        conn = None
        if existed:
            conn = connect_waiting(path, on_wait, config={"access_mode": "READ_ONLY"}, migrate=False)
            if get_schema_version(conn) == 0:  # an empty file: plan against a fresh schema instead
                conn.close()
                conn = None
        if conn is None:
            conn = connect(":memory:")
        try:
            yield conn
        finally:
            conn.close()
        return
    conn = connect_waiting(path, on_wait)
    try:
        yield conn
    except BaseException:
        conn.close()
        if not existed:
            _remove_partial(str(path))
        raise
    conn.close()


@contextmanager
def _memory_bounded(conn: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Cap DuckDB's memory for the run: staged entries beyond it spill to disk, not to RAM."""
    conn.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
    try:
        yield
    finally:
        conn.execute("RESET memory_limit")


def connect_waiting(
    path: Path, on_wait: Callable[[str], None] | None, **options: Any
) -> duckdb.DuckDBPyConnection:
    """``connect()``, telling ``on_wait`` first when another process holds the file."""
    if on_wait is None:
        return connect(path, **options)
    try:
        return connect(path, wait=0, **options)
    except DatabaseLockedError as exc:
        holder = re.search(r"PID \d+", str(exc))
        on_wait(
            f"the database {path} is in use by another process{f' ({holder.group()})' if holder else ''}; "
            f"waiting up to {lock_timeout():g}s for it to let go (MCP_STATE_LOCK_TIMEOUT)"
        )
    return connect(path, **options)


class _Run:
    """One migration run on an open connection: stage and check everything, then write."""

    def __init__(
        self,
        conn: duckdb.DuckDBPyConnection,
        data_dir: Path,
        report: MigrationReport,
        skip_invalid: bool,
        progress: Progress | None,
    ) -> None:
        self.conn = conn
        self.data_dir = data_dir
        self.report = {k.kind: k for k in report.kinds}
        self.skip_invalid = skip_invalid
        self.progress = progress
        self.documents: dict[str, str | Problem] = {}  # file -> staging table, or why it cannot be read
        self.problems: list[Problem] = []
        # DuckDB would draw its own bar on the terminal for statements over 2 s; never let it.
        conn.execute("SET enable_progress_bar_print = false")
        conn.execute(f"SET enable_progress_bar = {'true' if progress is not None else 'false'}")

    # -- statements ----------------------------------------------------------------------
    def _sql(self, step: str, sql: str, params: dict[str, Any] | None = None) -> duckdb.DuckDBPyConnection:
        """Run one statement, reporting its progress while it runs."""
        if self.progress is None:
            return self.conn.execute(sql, params or {})
        report = self.progress
        report(step, 0.0)
        done = threading.Event()

        def poll() -> None:
            while not done.wait(0.2):
                fraction = self.conn.query_progress()
                if fraction >= 0:
                    report(step, min(fraction / 100, 1.0))

        poller = threading.Thread(target=poll, name="mcp-state-migrate-progress", daemon=True)
        poller.start()
        try:
            return self.conn.execute(sql, params or {})
        finally:
            done.set()
            poller.join()
            report(step, 1.0)

    def _value(self, sql: str, params: dict[str, Any] | None = None) -> Any:
        row = self.conn.execute(sql, params or {}).fetchone()
        return None if row is None else row[0]

    # -- staging -------------------------------------------------------------------------
    def stage_all(self) -> None:
        for kind in KINDS:
            self._stage(kind)
        if self.problems and not self.skip_invalid:
            raise MigrationError(_problems_message(self.problems))

    def _stage(self, kind: Kind) -> None:
        report = self.report[kind.name]
        path = self.data_dir / kind.file
        staged = f"_staged_{kind.name}"
        report.present = path.is_file()
        problem = self._read_entries(kind, path) if report.present else None
        if not report.present or problem is not None:
            # Nothing to stage: no entries, and every later step stays the same.
            self.conn.execute(f"CREATE TEMP TABLE _entries_{kind.name} AS SELECT {_NO_ENTRIES} LIMIT 0")
            if problem is not None and problem not in self.problems:  # one file can hold two kinds
                self._found(kind, [problem])
        step = f"{kind.file}: checking {kind.name}"
        params = Params()
        self._sql(step, f"CREATE TEMP TABLE {staged} AS {_check_sql(kind, params)}", params)
        self.conn.execute(f"DROP TABLE _entries_{kind.name}")
        key = ", ".join(kind.key)
        if self._has_duplicates(kind, key):  # one aggregate in the common case: none
            if kind.generated_key:
                self._number_repeats(kind)
            self._flag_duplicates(kind, key, " / ".join(kind.key))
        for expr, what in kind.unique:
            if self._has_duplicates(kind, expr):
                self._flag_duplicates(kind, expr, what)
        for ref in kind.references:
            self._flag_dangling(kind, ref)
        for column in kind.db_unique:
            self._flag_taken(kind, column)
        if kind.append_only:
            self._flag_rewrites(kind)
        report.read += int(self._value(f"SELECT count(*) FROM {staged}"))
        shown = ", ".join(f"CASE WHEN _generated THEN NULL ELSE {k} END" for k in kind.key)
        rows = self.conn.execute(
            f"SELECT _n, _key, _parent, {shown}, _problem FROM {staged} WHERE _problem IS NOT NULL ORDER BY _n"
        ).fetchall()
        labels = _Labels(kind, path, [row[0] for row in rows])
        self._found(kind, [Problem(kind.file, labels(*row[:-1]), row[-1]) for row in rows])

    def _found(self, kind: Kind, problems: list[Problem]) -> None:
        self.problems.extend(problems)
        if self.skip_invalid:
            self.report[kind.name].skipped.extend(problems)

    def _read_entries(self, kind: Kind, path: Path) -> Problem | None:
        """Stage the raw entries of ``kind`` in ``_entries_<kind>``; a problem with the whole file, or None."""
        entries = f"_entries_{kind.name}"
        params = Params()
        entry_fields = [f for f in kind.fields if f.source is Source.ENTRY]
        paths = params.add([_json_path(f.json_key) for f in entry_fields]) if entry_fields else "NULL"
        parent_fields = [f for f in kind.fields if f.source is Source.PARENT]
        parent_paths = (
            params.add([_json_path(f.json_key) for f in parent_fields]) if parent_fields else "NULL"
        )
        step = f"{kind.file}: reading {kind.name}"
        if kind.shape is Shape.LINES:
            # Malformed lines come back as NULL (and count as bad entries); blank lines are skipped.
            self._sql(
                step,
                f"""CREATE TEMP TABLE {entries} AS
                    SELECT NULL::VARCHAR AS _key, NULL::VARCHAR AS _parent, NULL::JSON AS _v,
                           CASE WHEN json IS NULL THEN NULL
                                WHEN starts_with(ltrim(json), '{{') THEN 'OBJECT' ELSE json_type(json) END AS _type,
                           json_extract(json, {paths}) AS _f, NULL::JSON[] AS _pf
                    FROM read_json_objects({params.add(str(path))}, format = 'newline_delimited',
                                           ignore_errors = true)""",
                params,
            )
            return None
        document = self._document(kind, path)
        if isinstance(document, Problem):
            return document
        container = "ARRAY" if kind.shape is Shape.LIST else "OBJECT"
        found = self._value(f"SELECT json_type(json, $path) FROM {document}", {"path": kind.path})
        if found is None:  # no such key in the document: nothing of this kind
            self.conn.execute(f"CREATE TEMP TABLE {entries} AS SELECT {_NO_ENTRIES} LIMIT 0")
            return None
        if found != container:
            where = "the file" if kind.path == "$" else f'"{kind.path[2:]}"'
            return Problem(
                kind.file,
                "(whole file)",
                f"{where} must be {_describe_container(kind)}, not {_json_kind(found)}",
            )
        # json_each over a scalar subquery: a lateral join would copy the document into every row.
        if kind.shape is not Shape.NESTED_MAP:
            params["path"] = kind.path
            self._sql(
                step,
                f"""CREATE TEMP TABLE {entries} AS
                    SELECT e.key AS _key, NULL::VARCHAR AS _parent, e.value AS _v, e.type AS _type,
                           json_extract(e.value, {paths}) AS _f, NULL::JSON[] AS _pf
                    FROM json_each((SELECT json FROM {document}), $path) e ORDER BY e.id""",
                params,
            )
            return None
        # Parents that are not objects holding their entries are bad entries themselves.
        params["child"] = kind.child
        self._sql(
            step,
            f"""CREATE TEMP TABLE _parents_{kind.name} AS
                SELECT p.key, p.value, p.type, json_type(p.value, $child) AS child_type
                FROM json_each((SELECT json FROM {document}), $path) p ORDER BY p.id""",
            {"path": kind.path, "child": kind.child},
        )
        self._sql(
            step,
            f"""CREATE TEMP TABLE {entries} AS
                SELECT e.key AS _key, p.key AS _parent, e.value AS _v, e.type AS _type,
                       json_extract(e.value, {paths}) AS _f, json_extract(p.value, {parent_paths}) AS _pf
                FROM _parents_{kind.name} p, json_each(p.value, $child) e
                WHERE p.child_type = 'OBJECT' ORDER BY p.rowid, e.id""",
            params,
        )
        bad = self.conn.execute(
            f"SELECT key, type, child_type FROM _parents_{kind.name} WHERE child_type IS DISTINCT FROM 'OBJECT' "
            "ORDER BY rowid"
        ).fetchall()
        self.conn.execute(f"DROP TABLE _parents_{kind.name}")
        self.report[kind.name].read += len(bad)
        self._found(
            kind,
            [
                Problem(kind.file, _shown(key), _parent_problem(kind, type_, child))
                for key, type_, child in bad
            ],
        )
        return None

    def _document(self, kind: Kind, path: Path) -> str | Problem:
        """The staging table holding the whole JSON document of ``path`` (read once per file)."""
        cached = self.documents.get(kind.file)
        if cached is not None:
            return cached
        table = f"_document_{len(self.documents)}"
        size = path.stat().st_size
        result: str | Problem = table
        try:
            self._sql(
                f"{kind.file}: reading",
                f"""CREATE TEMP TABLE {table} AS SELECT json FROM read_json_objects($path,
                        format = 'unstructured', maximum_object_size = $size)""",
                {"path": str(path), "size": max(size + 1, 16 * 2**20)},
            )
            count = self._value(f"SELECT count(*) FROM {table}")
            if count != 1:
                what = "is empty" if count == 0 else "holds more than one JSON document"
                result = Problem(
                    kind.file, "(whole file)", f"the file {what}; it must hold {_describe_container(kind)}"
                )
        except duckdb.Error as exc:
            result = Problem(kind.file, "(whole file)", _malformed(path, exc))
        self.documents[kind.file] = result
        return result

    def _has_duplicates(self, kind: Kind, expr: str) -> bool:
        return bool(
            self._value(
                f"SELECT EXISTS (SELECT 1 FROM _staged_{kind.name} WHERE _problem IS NULL GROUP BY {expr} HAVING count(*) > 1)"
            )
        )

    def _number_repeats(self, kind: Kind) -> None:
        """Exact repeats of an entry without an id get ``-2``, ``-3``... after the content id."""
        (key,) = kind.key
        self.conn.execute(
            f"""UPDATE _staged_{kind.name} AS s SET {key} = s.{key} || '-' || d.nth
                FROM (SELECT rowid AS r, row_number() OVER (PARTITION BY {key} ORDER BY _n) AS nth
                      FROM _staged_{kind.name}
                      WHERE _generated AND _problem IS NULL
                        AND {key} IN (SELECT {key} FROM _staged_{kind.name} WHERE _generated AND _problem IS NULL
                                      GROUP BY {key} HAVING count(*) > 1)) d
                WHERE s.rowid = d.r AND d.nth > 1"""
        )

    def _flag_duplicates(self, kind: Kind, expr: str, what: str) -> None:
        """Every entry after the first with one key (or other unique value) is a problem."""
        staged = f"_staged_{kind.name}"
        first = "the first is kept" if self.skip_invalid else "keys must be unique"
        self.conn.execute(
            f"""UPDATE {staged} AS s SET _problem = 'duplicate {what} "' || d.shown || '": an earlier entry has it; '
                                                   || $first
                FROM (SELECT rowid AS r, concat_ws(' / ', {expr}) AS shown,
                             row_number() OVER (PARTITION BY {expr} ORDER BY _n) AS nth
                      FROM {staged}
                      WHERE _problem IS NULL AND ({expr}) IN (SELECT ({expr}) FROM {staged} WHERE _problem IS NULL
                                                              GROUP BY ALL HAVING count(*) > 1)) d
                WHERE s.rowid = d.r AND d.nth > 1""",
            {"first": first},
        )

    def _flag_dangling(self, kind: Kind, ref: Reference) -> None:
        referenced = next(k for k in KINDS if k.name == ref.kind)
        self.conn.execute(
            f"""UPDATE _staged_{kind.name} AS s
                SET _problem = '{ref.what} "' || s.{ref.column} || '" is neither in ' || $file || ' nor in the database'
                WHERE s._problem IS NULL
                  AND NOT EXISTS (SELECT 1 FROM _staged_{ref.kind} r WHERE r._problem IS NULL AND r.{ref.target} = s.{ref.column})
                  AND NOT EXISTS (SELECT 1 FROM {ref.table} t WHERE t.{ref.target} = s.{ref.column})""",
            {"file": referenced.file},
        )

    def _flag_taken(self, kind: Kind, column: str) -> None:
        """A value unique in the table that a stored row with another key already has."""
        match = _match(kind)
        self.conn.execute(
            f"""UPDATE _staged_{kind.name} AS s
                SET _problem = '{column} "' || s.{column} || '" already belongs to another row in the database ('
                               || (SELECT concat_ws(' / ', {", ".join("t." + k for k in kind.key)}) FROM {kind.table} t
                                   WHERE lower(t.{column}) = lower(s.{column}) LIMIT 1) || ')'
                WHERE s._problem IS NULL
                  AND EXISTS (SELECT 1 FROM {kind.table} t WHERE lower(t.{column}) = lower(s.{column}) AND NOT ({match}))"""
        )

    def _flag_rewrites(self, kind: Kind) -> None:
        """An entry of an append-only table that is stored with other values (it would be rewritten)."""
        if not self._value(f"SELECT EXISTS (SELECT 1 FROM {kind.table})"):
            return
        self.conn.execute(
            f"""UPDATE _staged_{kind.name} AS s SET _problem = $message FROM {kind.table} t
                WHERE s._problem IS NULL AND {_match(kind)} AND ({_differs_any(kind)})""",
            {
                "message": f"already in the database with other values; {kind.table} is append-only, so a stored "
                "entry is never rewritten (give the changed entry a new id)"
            },
        )

    # -- writing -------------------------------------------------------------------------
    def write_all(self, dry_run: bool) -> None:
        for kind in KINDS:
            self._write(kind, dry_run)
        if not dry_run:  # the knowledge items written get their words indexed for search_knowledge
            for sql in reindex_sql("SELECT id FROM _staged_knowledge WHERE _problem IS NULL"):
                self._sql("corporate-memory/knowledge.json: indexing words", sql)

    def _write(self, kind: Kind, dry_run: bool) -> None:
        report = self.report[kind.name]
        staged = f"_staged_{kind.name}"
        match, differs = _match(kind), _differs_any(kind)
        new = f"s._problem IS NULL AND NOT EXISTS (SELECT 1 FROM {kind.table} t WHERE {match})"
        step = f"{kind.file}: writing {kind.table}"
        valid, first, last = self.conn.execute(
            f"SELECT count(*), min(_n), max(_n) FROM {staged} WHERE _problem IS NULL"
        ).fetchone()
        stored = int(self._value(f"SELECT count(*) FROM {kind.table}"))
        count = valid
        if stored:
            count, first, last = self.conn.execute(
                f"SELECT count(*), min(_n), max(_n) FROM {staged} s WHERE {new}"
            ).fetchone()
        else:  # an empty table: every valid entry is new (and the anti-join can go)
            new = "s._problem IS NULL"
        changed = 0
        if stored and valid > count and not kind.append_only:
            if dry_run:
                changed = int(
                    self._value(
                        f"SELECT count(*) FROM {staged} s JOIN {kind.table} t ON {match} "
                        f"WHERE s._problem IS NULL AND ({differs})"
                    )
                )
            else:
                assignments = ", ".join(f"{c} = s.{c}" for c in kind.compared)
                changed = _count_of(
                    self._sql(
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
                params["base"] = self._value(
                    f"SELECT min(v) FROM (SELECT nextval('{kind.table}_seq') AS v FROM range($n))",
                    {"n": last - first + 1},
                )
                params["first"] = first
                columns.append("seq")
                values.append("$base + s._n - $first")
            self._sql(
                step,
                f"INSERT INTO {kind.table} ({', '.join(columns)}) SELECT {', '.join(values)} FROM {staged} s WHERE {new}",
                params,
            )
        report.inserted = int(count)
        report.updated = changed
        report.unchanged = valid - int(count) - changed
        report.db_only = stored - (valid - int(count))


# -- SQL builders --------------------------------------------------------------------------
def _json_path(key: str) -> str:
    return '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


_NO_ENTRIES = (
    "NULL::VARCHAR AS _key, NULL::VARCHAR AS _parent, NULL::JSON AS _v, NULL::VARCHAR AS _type, "
    "NULL::JSON[] AS _f, NULL::JSON[] AS _pf"
)


def _raw(kind: Kind, f: Field, params: Params) -> str:
    """SQL for the JSON value a field is read from (NULL when the entry does not have it)."""
    entry = [x for x in kind.fields if x.source is Source.ENTRY]
    parent = [x for x in kind.fields if x.source is Source.PARENT]
    if f.source is Source.ENTRY:
        raw = f"_f[{entry.index(f) + 1}]"
        return f"CASE WHEN _type = 'BOOLEAN' THEN _v ELSE {raw} END" if f.shorthand else raw
    if f.source is Source.PARENT:
        return f"_pf[{parent.index(f) + 1}]"
    if f.source is Source.KEY:
        return "to_json(_key)"
    if f.source is Source.PARENT_KEY:
        return "to_json(_parent)"
    if f.source is Source.VALUE:
        return "_v"
    # REST: the entry without the keys its other fields come from (a merge patch with nulls).
    patch = {x.json_key: None for x in entry}
    return f"json_merge_patch(_v, {params.add(json.dumps(patch))})"


def _check_sql(kind: Kind, params: Params) -> str:
    """SELECT turning ``_entries_<kind>`` into typed columns plus each entry's problems.

    Layer by layer, so that each expression is computed once per entry: the JSON text of
    every field, the string values, the timestamps, whether each value is acceptable, the
    converted values and problems, and last the defaults taken from other columns, the ids
    made from the content and the checks across fields.
    """
    secret = SECRET_COLUMNS.get(kind.table, frozenset())
    names = {
        f.column: {"j": f"_j_{f.column}", "s": f"_s_{f.column}", "ts": f"_ts_{f.column}"} for f in kind.fields
    }
    texts = ", ".join(
        f"nullif(({_raw(kind, f, params)})::VARCHAR, 'null') AS _j_{f.column}" for f in kind.fields
    )
    strings = "".join(
        f", {string_sql(f'_j_{f.column}')} AS _s_{f.column}" for f in kind.fields if f.rule.needs_string
    )
    stamps = "".join(
        f", {timestamp_sql(f'_s_{f.column}')} AS _ts_{f.column}"
        for f in kind.fields
        if f.rule.needs_timestamp
    )
    oks = ", ".join(f"{ok_sql(f.rule, names[f.column], params)} AS _ok_{f.column}" for f in kind.fields)
    # An entry is fine when each value is acceptable, or missing and not required.
    fine = " AND ".join(
        f"_ok_{f.column}" if f.required else f"(_ok_{f.column} OR _j_{f.column} IS NULL)" for f in kind.fields
    )
    converted, problems = [], []
    for f in kind.fields:
        j, ok = f"_j_{f.column}", f"_ok_{f.column}"
        default = "NULL" if f.default is None else params.add(f.default)
        converted.append(
            f"CASE WHEN {ok} THEN {f.rule.sql_value(names[f.column])} ELSE {default} END AS {f.column}"
        )
        missing = params.add(f'missing "{f.json_key}"') if f.required else "NULL"
        wrong = params.add(f"{_field_name(f)} must be {f.rule.expect}")
        shown = "''" if f.column in secret else f"'; got ' || {_snippet(j)}"
        problems.append(f"CASE WHEN {j} IS NULL THEN {missing} WHEN NOT {ok} THEN {wrong} || {shown} END")
    entry_check, expected_type = "NULL", "_type"
    if kind.entry_types:
        expected_type = params.add(kind.entry_types[0])
        allowed = params.add(list(kind.entry_types))
        expected = params.add(f"the entry must be {' or '.join(_json_kind(t) for t in kind.entry_types)}")
        unreadable = params.add("not valid JSON (a truncated or corrupted line?)")
        entry_check = (
            f"CASE WHEN _type IS NULL THEN {unreadable} "
            f"WHEN NOT list_contains({allowed}, _type) THEN {expected} || ', not ' || {_json_kind_sql('_type')} END"
        )
    finals = []
    for f in kind.fields:
        if f.default_column:
            finals.append(f"coalesce({f.column}, {f.default_column}) AS {f.column}")
        elif kind.generated_key and f.column in kind.key:
            content = ", ".join(c for c in kind.columns if c not in kind.key)
            made = f"{params.add(kind.generated_key)} || md5(json_array({content})::VARCHAR)"
            finals.append(f"CASE WHEN {f.column} IS NULL THEN {made} ELSE {f.column} END AS {f.column}")
        else:
            finals.append(f.column)
    generated = f"{kind.key[0]} IS NULL" if kind.generated_key else "false"
    checks = "".join(f", CASE WHEN {cond} THEN {params.add(message)} END" for cond, message in kind.checks)
    return f"""
        SELECT _n, _key, _parent, {", ".join(finals)}, {generated} AS _generated,
               CASE WHEN _problem IS NOT NULL THEN _problem ELSE nullif(concat_ws('; ', NULL{checks}), '') END AS _problem
        FROM (SELECT _n, _key, _parent, {", ".join(converted)},
                     CASE WHEN _type IS NOT DISTINCT FROM {expected_type} AND {fine} THEN NULL
                          ELSE coalesce({entry_check}, nullif(concat_ws('; ', {", ".join(problems)}), '')) END AS _problem
              FROM (SELECT *, {oks}
                    FROM (SELECT *{stamps}
                          FROM (SELECT *{strings}
                                FROM (SELECT rowid AS _n, _key, _parent, _type, {texts} FROM _entries_{kind.name})))))"""


def _snippet(text: str) -> str:
    return f"CASE WHEN length({text}) > 60 THEN left({text}, 57) || '...' ELSE {text} END"


def _field_name(f: Field) -> str:
    if f.source in (Source.ENTRY, Source.PARENT):
        return f'"{f.json_key}"'
    if f.source is Source.REST:
        return "the entry"
    return f"the {f.column.replace('_', ' ')}"  # a key, or the entry itself (a vote, an access level)


_JSON_KINDS = {
    "OBJECT": "a JSON object",
    "ARRAY": "a list",
    "VARCHAR": "a string",
    "UBIGINT": "a number",
    "BIGINT": "a number",
    "DOUBLE": "a number",
    "BOOLEAN": "true or false",
    "NULL": "null",
}


def _json_kind(json_type: str) -> str:
    return _JSON_KINDS.get(json_type, json_type.lower())


def _json_kind_sql(expr: str) -> str:
    cases = " ".join(f"WHEN '{t}' THEN '{word}'" for t, word in _JSON_KINDS.items())
    return f"(CASE {expr} {cases} ELSE lower({expr}) END)"


def _describe_container(kind: Kind) -> str:
    if kind.shape is Shape.LIST:
        return "a JSON list of entries"
    return f"a JSON object keyed by {kind.container}"


def _parent_problem(kind: Kind, type_: str, child: str | None) -> str:
    if type_ != "OBJECT":
        return f"the entry must be a JSON object, not {_json_kind(type_)}"
    where = kind.child[2:]
    if child is None:
        return f'missing "{where}"'
    return f'"{where}" must be a JSON object, not {_json_kind(child)}'


def _match(kind: Kind) -> str:
    """Staged row ``s`` and stored row ``t`` have one key."""
    return " AND ".join(f"t.{k} = s.{k}" for k in kind.key)


def _differs_any(kind: Kind) -> str:
    """Stored row ``t`` differs from staged row ``s`` in a column the layout carries (JSON by value)."""
    return (
        " OR ".join(
            f"json(t.{c}) IS DISTINCT FROM s.{c}" if c in JSON_COLUMNS else f"t.{c} IS DISTINCT FROM s.{c}"
            for c in kind.compared
        )
        or "false"
    )


def _count_of(result: duckdb.DuckDBPyConnection) -> int:
    row = result.fetchone()
    return int(row[0]) if row else 0


def _malformed(path: Path, exc: duckdb.Error) -> str:
    """Where a JSON document is broken, in the words of Python's parser (line and column)."""
    try:
        json.loads(path.read_bytes())
    except UnicodeDecodeError:
        return "not UTF-8 text; save the file as UTF-8"
    except ValueError as error:
        return f"not valid JSON ({error}); the file may be truncated or hand-edited"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"cannot be read as JSON: {first}"


class _Labels:
    """How an entry is named in a message: its key, its position, or its line in the file."""

    def __init__(self, kind: Kind, path: Path, numbers: list[int]) -> None:
        self.kind = kind
        self.secret_key = bool(SECRET_COLUMNS.get(kind.table, frozenset()) & set(kind.key))
        self.lines = _line_numbers(path, set(numbers)) if kind.shape is Shape.LINES and numbers else {}

    def __call__(self, n: int, key: str | None, parent: str | None, *ids: Any) -> str:
        if self.kind.shape is Shape.LINES:
            line = self.lines.get(n, n + 1)
            return f"line {line}" + (f" (id {ids[0]})" if ids and ids[0] is not None else "")
        if self.secret_key:  # never print a secret (a one-time code) in a message
            return f"entry #{n + 1}"
        if self.kind.shape is Shape.LIST:
            return f"entry #{int(key or n) + 1}" + (f" (id {ids[0]})" if ids and ids[0] is not None else "")
        return f"{_shown(parent)}/{_shown(key)}" if parent is not None else _shown(key)


def _shown(key: str | None) -> str:
    """A key as a message shows it: quoted when blank or padded, so it can be told apart."""
    text = str(key)
    return (
        json.dumps(text, ensure_ascii=False)
        if not text.strip() or text != text.strip() or "/" in text
        else text
    )


def _line_numbers(path: Path, wanted: set[int]) -> dict[int, int]:
    """Map entry numbers (non-blank lines, from 0) to line numbers in the file (from 1)."""
    found: dict[int, int] = {}
    entry = -1
    with path.open("rb") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            entry += 1
            if entry in wanted:
                found[entry] = line_no
                if len(found) == len(wanted):
                    break
    return found


def _problems_message(problems: list[Problem], shown: int = 20) -> str:
    lines = [f"  {p}" for p in problems[:shown]]
    if len(problems) > shown:
        lines.append(f"  ... and {len(problems) - shown} more")
    return (
        f"{len(problems)} problem(s) in the legacy files; nothing was written:\n"
        + "\n".join(lines)
        + "\nFix these entries (or restore the files from a backup) and run again, "
        "or run with --skip-invalid to migrate everything else and list what was left out."
    )
