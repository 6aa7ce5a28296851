"""Staging: DuckDB reads every legacy file into temporary tables, one row per entry, and checks it.

Nothing here writes to the state tables; ``mcp_state.legacy.write`` does, from the staged rows.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import duckdb

from mcp_state.errors import MigrationError
from mcp_state.legacy.checks import (
    NO_ENTRIES,
    Labels,
    check_sql,
    describe_container,
    differs_any,
    json_kind,
    json_path,
    key_match,
    malformed,
    parent_problem,
    reader_path,
    repeated_key_sql,
    shown,
)
from mcp_state.legacy.layout import KINDS, Kind, Params, Reference, Shape, Source
from mcp_state.legacy.report import MigrationReport, Problem, Progress, problems_message
from mcp_state.schema import SECRET_COLUMNS


class Run:
    """One migration run on an open connection: stage every entry and check it (``write`` writes them)."""

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
    def sql(self, step: str, sql: str, params: dict[str, Any] | None = None) -> duckdb.DuckDBPyConnection:
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

    def value(self, sql: str, params: dict[str, Any] | None = None) -> Any:
        row = self.conn.execute(sql, params or {}).fetchone()
        return None if row is None else row[0]

    # -- staging -------------------------------------------------------------------------
    def stage_all(self) -> None:
        for kind in KINDS:
            self._stage(kind)
        if self.problems and not self.skip_invalid:
            raise MigrationError(problems_message(self.problems))

    def _stage(self, kind: Kind) -> None:
        report = self.report[kind.name]
        path = self.data_dir / kind.file
        staged = f"_staged_{kind.name}"
        report.present = path.is_file()
        problem = self._read_entries(kind, path) if report.present else None
        if not report.present or problem is not None:
            # Nothing to stage: no entries, and every later step stays the same.
            self.conn.execute(f"CREATE TEMP TABLE _entries_{kind.name} AS SELECT {NO_ENTRIES} LIMIT 0")
            if problem is not None and problem not in self.problems:  # one file can hold two kinds
                self._found(kind, [problem])
        step = f"{kind.file}: checking {kind.name}"
        params = Params()
        self.sql(step, f"CREATE TEMP TABLE {staged} AS {check_sql(kind, params)}", params)
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
        report.read += int(self.value(f"SELECT count(*) FROM {staged}"))
        ids = ", ".join(f"CASE WHEN _generated THEN NULL ELSE {k} END" for k in kind.key)
        rows = self.conn.execute(
            f"SELECT _n, _key, _parent, {ids}, _problem FROM {staged} WHERE _problem IS NOT NULL ORDER BY _n"
        ).fetchall()
        labels = Labels(kind, path, [row[0] for row in rows])
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
        paths = params.add([json_path(f.json_key) for f in entry_fields]) if entry_fields else "NULL"
        parent_fields = [f for f in kind.fields if f.source is Source.PARENT]
        parent_paths = params.add([json_path(f.json_key) for f in parent_fields]) if parent_fields else "NULL"
        step = f"{kind.file}: reading {kind.name}"
        if kind.shape is Shape.LINES:
            # Malformed lines come back as NULL (and count as bad entries); blank lines are skipped.
            self.sql(
                step,
                f"""CREATE TEMP TABLE {entries} AS
                    SELECT NULL::VARCHAR AS _key, NULL::VARCHAR AS _parent, NULL::JSON AS _v,
                           CASE WHEN json IS NULL THEN NULL
                                WHEN starts_with(ltrim(json), '{{') THEN 'OBJECT' ELSE json_type(json) END AS _type,
                           json_extract(json, {paths}) AS _f, NULL::JSON[] AS _pf, {repeated_key_sql("json")} AS _dup
                    FROM read_json_objects({params.add(reader_path(path))}, format = 'newline_delimited',
                                           ignore_errors = true)""",
                params,
            )
            return None
        document = self._document(kind, path)
        if isinstance(document, Problem):
            return document
        container = "ARRAY" if kind.shape is Shape.LIST else "OBJECT"
        found = self.value(f"SELECT json_type(json, $path) FROM {document}", {"path": kind.path})
        if found is None:  # no such key in the document: nothing of this kind
            self.conn.execute(f"CREATE TEMP TABLE {entries} AS SELECT {NO_ENTRIES} LIMIT 0")
            return None
        if found != container:
            where = "the file" if kind.path == "$" else f'"{kind.path[2:]}"'
            return Problem(
                kind.file,
                "(whole file)",
                f"{where} must be {describe_container(kind)}, not {json_kind(found)}",
            )
        # json_each over a scalar subquery: a lateral join would copy the document into every row.
        if kind.shape is not Shape.NESTED_MAP:
            params["path"] = kind.path
            self.sql(
                step,
                f"""CREATE TEMP TABLE {entries} AS
                    SELECT e.key AS _key, NULL::VARCHAR AS _parent, e.value AS _v, e.type AS _type,
                           json_extract(e.value, {paths}) AS _f, NULL::JSON[] AS _pf,
                           {repeated_key_sql("e.value")} AS _dup
                    FROM json_each((SELECT json FROM {document}), $path) e ORDER BY e.id""",
                params,
            )
            return None
        # Parents that are not objects holding their entries are bad entries themselves.
        params["child"] = kind.child
        self.sql(
            step,
            f"""CREATE TEMP TABLE _parents_{kind.name} AS
                SELECT p.key, p.value, p.type, json_type(p.value, $child) AS child_type
                FROM json_each((SELECT json FROM {document}), $path) p ORDER BY p.id""",
            {"path": kind.path, "child": kind.child},
        )
        self.sql(
            step,
            f"""CREATE TEMP TABLE {entries} AS
                SELECT e.key AS _key, p.key AS _parent, e.value AS _v, e.type AS _type,
                       json_extract(e.value, {paths}) AS _f, json_extract(p.value, {parent_paths}) AS _pf,
                       coalesce({repeated_key_sql("e.value")}, {repeated_key_sql("p.value")}) AS _dup
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
            [Problem(kind.file, shown(key), parent_problem(kind, type_, child)) for key, type_, child in bad],
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
            self.sql(
                f"{kind.file}: reading",
                f"""CREATE TEMP TABLE {table} AS SELECT json FROM read_json_objects($path,
                        format = 'unstructured', maximum_object_size = $size)""",
                {"path": reader_path(path), "size": max(size + 1, 16 * 2**20)},
            )
            count = self.value(f"SELECT count(*) FROM {table}")
            if count != 1:
                what = "is empty" if count == 0 else "holds more than one JSON document"
                result = Problem(
                    kind.file, "(whole file)", f"the file {what}; it must hold {describe_container(kind)}"
                )
        except duckdb.Error as exc:
            result = Problem(kind.file, "(whole file)", malformed(path, exc))
        self.documents[kind.file] = result
        return result

    def _has_duplicates(self, kind: Kind, expr: str) -> bool:
        return bool(
            self.value(
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
        # A secret (a one-time code) is never shown, not even the one that is repeated.
        secret = any(re.search(rf"\b{c}\b", expr) for c in SECRET_COLUMNS.get(kind.table, ()))
        value = "' (a secret, not shown)'" if secret else "' \"' || d.shown || '\"'"
        self.conn.execute(
            f"""UPDATE {staged} AS s SET _problem = 'duplicate {what}' || {value} || ': an earlier entry has it; '
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
        match = key_match(kind)
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
        if not self.value(f"SELECT EXISTS (SELECT 1 FROM {kind.table})"):
            return
        self.conn.execute(
            f"""UPDATE _staged_{kind.name} AS s SET _problem = $message FROM {kind.table} t
                WHERE s._problem IS NULL AND {key_match(kind)} AND ({differs_any(kind)})""",
            {
                "message": f"already in the database with other values; {kind.table} is append-only, so a stored "
                "entry is never rewritten (give the changed entry a new id)"
            },
        )
