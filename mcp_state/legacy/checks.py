"""The SQL that checks and converts staged entries, and how a message names an entry or a file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import duckdb

from mcp_state.legacy.layout import Field, Kind, Params, Shape, Source, ok_sql, string_sql, timestamp_sql
from mcp_state.schema import JSON_COLUMNS, SECRET_COLUMNS


def json_path(key: str) -> str:
    return '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


NO_ENTRIES = (
    "NULL::VARCHAR AS _key, NULL::VARCHAR AS _parent, NULL::JSON AS _v, NULL::VARCHAR AS _type, "
    "NULL::JSON[] AS _f, NULL::JSON[] AS _pf, NULL::VARCHAR AS _dup"
)


def repeated_key_sql(json: str) -> str:
    """SQL for the first key that a JSON object (SQL ``json``) has twice, or NULL.

    DuckDB keeps the first of two values of one key and Python's json the last, so an entry
    with a repeated key has no one meaning: it is refused rather than read one way.
    """
    keys = f"json_keys({json})"
    return (
        f"CASE WHEN json_type({json}) = 'OBJECT' AND len({keys}) > len(list_distinct({keys})) "
        f"THEN list_filter({keys}, lambda k: len(list_filter({keys}, lambda x: x = k)) > 1)[1] END"
    )


def reader_path(path: Path) -> str:
    """``path`` for DuckDB's file readers, taken literally: absolute, glob characters escaped.

    DuckDB reads a path with ``*``, ``?`` or ``[`` as a glob (``d[a]`` would read ``da``); a
    character in brackets matches only itself.
    """
    return "".join(f"[{ch}]" if ch in "*?[" else ch for ch in os.path.abspath(path))


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


def check_sql(kind: Kind, params: Params) -> str:
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
        expected = params.add(f"the entry must be {' or '.join(json_kind(t) for t in kind.entry_types)}")
        unreadable = params.add("not valid JSON (a truncated or corrupted line?)")
        repeated = params.add("the entry has the key ")
        shown_dup = f"to_json(_dup)::VARCHAR || {params.add(' more than once; keep one of its values')}"
        entry_check = (
            f"CASE WHEN _type IS NULL THEN {unreadable} "
            f"WHEN _dup IS NOT NULL THEN {repeated} || {shown_dup} "
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
                     CASE WHEN _type IS NOT DISTINCT FROM {expected_type} AND _dup IS NULL AND {fine} THEN NULL
                          ELSE coalesce({entry_check}, nullif(concat_ws('; ', {", ".join(problems)}), '')) END AS _problem
              FROM (SELECT *, {oks}
                    FROM (SELECT *{stamps}
                          FROM (SELECT *{strings}
                                FROM (SELECT rowid AS _n, _key, _parent, _type, _dup, {texts} FROM _entries_{kind.name})))))"""


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


def json_kind(json_type: str) -> str:
    return _JSON_KINDS.get(json_type, json_type.lower())


def _json_kind_sql(expr: str) -> str:
    cases = " ".join(f"WHEN '{t}' THEN '{word}'" for t, word in _JSON_KINDS.items())
    return f"(CASE {expr} {cases} ELSE lower({expr}) END)"


def describe_container(kind: Kind) -> str:
    if kind.shape is Shape.LIST:
        return "a JSON list of entries"
    return f"a JSON object keyed by {kind.container}"


def parent_problem(kind: Kind, type_: str, child: str | None) -> str:
    if type_ != "OBJECT":
        return f"the entry must be a JSON object, not {json_kind(type_)}"
    where = kind.child[2:]
    if child is None:
        return f'missing "{where}"'
    return f'"{where}" must be a JSON object, not {json_kind(child)}'


def key_match(kind: Kind) -> str:
    """Staged row ``s`` and stored row ``t`` have one key."""
    return " AND ".join(f"t.{k} = s.{k}" for k in kind.key)


# JSON compared by value: the same text, or (only then asked) the same value with keys in any order.
# A state that went through PostgreSQL's JSONB keeps an object's keys in JSONB's own order.
JSON_BY_VALUE = "mcp_state_json_by_value"


def json_by_value(text: str) -> str:
    return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))


def register_json_by_value(conn: duckdb.DuckDBPyConnection) -> None:
    """Let ``differs_any`` compare JSON by value on ``conn`` (the run's connection)."""
    conn.create_function(JSON_BY_VALUE, json_by_value, ["VARCHAR"], "VARCHAR", side_effects=False)


def differs_any(kind: Kind) -> str:
    """Stored row ``t`` differs from staged row ``s`` in a column the layout carries (JSON by value)."""

    def differs(c: str) -> str:
        if c not in JSON_COLUMNS:
            return f"t.{c} IS DISTINCT FROM s.{c}"
        return (
            f"(json(t.{c}) IS DISTINCT FROM s.{c} AND "
            f"{JSON_BY_VALUE}(CAST(t.{c} AS VARCHAR)) IS DISTINCT FROM {JSON_BY_VALUE}(CAST(s.{c} AS VARCHAR)))"
        )

    return " OR ".join(differs(c) for c in kind.compared) or "false"


def count_of(result: duckdb.DuckDBPyConnection) -> int:
    row = result.fetchone()
    return int(row[0]) if row else 0


def malformed(path: Path, exc: duckdb.Error) -> str:
    """Where a JSON document is broken, in the words of Python's parser (line and column)."""
    try:
        json.loads(path.read_bytes())
    except UnicodeDecodeError:
        return "not UTF-8 text; save the file as UTF-8"
    except ValueError as error:
        return f"not valid JSON ({error}); the file may be truncated or hand-edited"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"cannot be read as JSON: {first}"


class Labels:
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
        return f"{shown(parent)}/{shown(key)}" if parent is not None else shown(key)


def shown(key: str | None) -> str:
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
