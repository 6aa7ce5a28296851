"""What ``mcp-state verify`` checks beyond readability: the rows that must agree with each other.

Each check returns one line per mismatch, naming the table and the row (at most ``NAMED`` a
check, then how many more), and never a secret (tokens are named by id, never by hash):

- sequences: a ``seq``/``change_seq`` column holds each number once, none beyond its sequence's
  last value (the next row would take it);
- sync: every ``sync_state`` row has ``sync_history`` rows, its ``last_sync`` is their latest
  ``synced_at`` (``last_sync`` keeps the later time when the clock steps back), and a newest
  history row earlier than ``last_sync`` notes the clock jump. Rows whose ``last_sync`` predates
  the database (imported from legacy files, which kept no history) are notes, not problems;
- knowledge: every vote is +1 or -1 on an item that exists (the counts agents see are counted
  from the votes), and ``knowledge_words`` is exactly the words of the items;
- tokens: the tokens file beside the database (``PATH.tokens``, which the HTTP server checks
  bearer tokens against) lists exactly the active rows of ``api_tokens`` (a file's only: on
  PostgreSQL the server checks tokens in the database).

The same checks run on both engines (``check`` takes a DuckDB connection or a PostgreSQL one from
``PostgresDatabase.hold()``): what their SQL says differently comes from ``mcp_state.dialect``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mcp_state.dialect import Dialect, dialect_of
from mcp_state.knowledge_index import WORDS_SELECT
from mcp_state.repositories.tokens import token_file

NAMED = 5  # mismatches named one by one per check; the rest are counted

# (table, column, sequence): the column takes its numbers from the sequence.
SEQUENCED = (
    ("audit_log", "seq", "audit_log_seq"),
    ("sync_history", "seq", "sync_history_seq"),
    ("knowledge_items", "change_seq", "knowledge_change_seq"),
    ("knowledge_items", "item_key", "knowledge_item_key_seq"),
)


class Findings:
    """Problems (verify fails) and notes (printed, verify passes)."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.notes: list[str] = []

    def each(
        self, rows: list[tuple[Any, ...]], line: Callable[..., str], what: str, *, note: bool = False
    ) -> None:
        """One line per row (``line(*row)``), the first ``NAMED`` of them, then a count of the rest."""
        target = self.notes if note else self.problems
        target.extend(line(*row) for row in rows[:NAMED])
        if len(rows) > NAMED:
            target.append(f"{what}: {len(rows) - NAMED} more like the above")


def check(conn: Any, db_path: str) -> Findings:
    """Every agreement check on an open (read-only) connection to ``db_path`` (a file or a URL)."""
    found = Findings()
    dialect = dialect_of(conn)
    columns = {(table, column) for table, column in conn.execute(dialect.catalog_columns).fetchall()}
    tables = {table for table, _ in columns}
    for table, column, sequence in SEQUENCED:
        if (table, column) in columns:
            _sequence(conn, found, table, column, sequence)
    if {"sync_state", "sync_history", "schema_version"} <= tables:
        _sync(conn, found, noted=("sync_history", "note") in columns)
    if {"knowledge_items", "knowledge_votes"} <= tables:
        _votes(conn, found)
    if {"knowledge_items", "knowledge_words"} <= tables:
        _words(conn, found, dialect, keyed=("knowledge_words", "item_key") in columns)
    if "api_tokens" in tables:
        _tokens(conn, found, db_path)
    return found


def _sequence(conn: Any, found: Findings, table: str, column: str, sequence: str) -> None:
    # Identifiers from SEQUENCED only (checked against the catalog above), never from data.
    shared = conn.execute(
        f"SELECT {column}, count(*) FROM {table} WHERE {column} IS NOT NULL "
        f"GROUP BY {column} HAVING count(*) > 1 ORDER BY {column}"
    ).fetchall()
    found.each(shared, lambda seq, n: f"{table}: {n} rows share {column} {seq}", table)
    last = conn.execute(dialect_of(conn).sequence_last_value, [sequence]).fetchone()
    top = conn.execute(f"SELECT coalesce(max({column}), 0) FROM {table}").fetchone()
    if last is not None and top is not None and top[0] > last[0]:
        found.problems.append(
            f"{table}: {column} {top[0]} is beyond its sequence {sequence} (last value {last[0]}): "
            "the next row would take a number already used"
        )


def _sync(conn: Any, found: Findings, *, noted: bool) -> None:
    note = "h.note" if noted else "CAST(NULL AS VARCHAR)"
    arg_max = dialect_of(conn).arg_max
    rows = conn.execute(
        f"""
        WITH created AS (SELECT min(applied_at) AS applied FROM schema_version),
        history AS (
            SELECT table_id, count(*) AS runs, max(synced_at) AS latest,
                   {arg_max("synced_at", "seq")} AS newest, {arg_max(note, "seq")} AS newest_note
            FROM sync_history h GROUP BY table_id
        )
        SELECT s.table_id, s.last_sync, h.runs, h.latest, h.newest, h.newest_note,
               s.last_sync IS NULL OR s.last_sync < (SELECT applied FROM created) AS imported
        FROM sync_state s LEFT JOIN history h USING (table_id)
        ORDER BY s.table_id
        """
    ).fetchall()
    bare = [(t, last, imp) for t, last, runs, *_, imp in rows if runs is None]
    found.each(
        [(t, last) for t, last, imp in bare if not imp],
        lambda t, last: f"sync_state: table {t} (last_sync {last}) has no sync_history row",
        "sync_state",
    )
    found.each(
        [(t,) for t, _, imp in bare if imp],
        lambda t: (
            f"sync_state: table {t} has no sync_history (imported: its last_sync predates the database)"
        ),
        "sync_state",
        note=True,
    )
    differ = [r for r in rows if r[2] is not None and r[1] != r[3]]
    found.each(
        [(t, last, latest) for t, last, _, latest, *_, imp in differ if not imp],
        lambda t, last, latest: (
            f"sync_state: table {t} has last_sync {last}, its latest sync_history row says {latest}"
        ),
        "sync_state",
    )
    found.each(
        [(t, last, latest) for t, last, _, latest, *_, imp in differ if imp],
        lambda t, last, latest: (
            f"sync_state: table {t} has last_sync {last} (imported), its latest sync_history row says {latest}"
        ),
        "sync_state",
        note=True,
    )
    if noted:
        unnoted = [
            (t, last, newest)
            for t, last, runs, latest, newest, newest_note, imp in rows
            if runs is not None and not imp and last == latest and newest < last and not newest_note
        ]
        found.each(
            unnoted,
            lambda t, last, newest: (
                f"sync_history: the newest run of table {t} ({newest}) is earlier than last_sync {last} "
                "and notes no clock jump"
            ),
            "sync_history",
        )


def _votes(conn: Any, found: Findings) -> None:
    orphans = conn.execute(
        """SELECT v.item_id, count(*) FROM knowledge_votes v
           WHERE NOT EXISTS (SELECT 1 FROM knowledge_items k WHERE k.id = v.item_id)
           GROUP BY v.item_id ORDER BY v.item_id"""
    ).fetchall()
    found.each(
        orphans,
        lambda item, n: f"knowledge_votes: {n} votes on item {item}, which does not exist",
        "knowledge_votes",
    )
    odd = conn.execute(
        """SELECT item_id, user_id, vote FROM knowledge_votes WHERE vote IS NULL OR vote NOT IN (1, -1)
           ORDER BY item_id, user_id"""
    ).fetchall()
    found.each(
        odd,
        lambda item, user, vote: (
            f"knowledge_votes: the vote of {user} on item {item} is {vote}, not +1 or -1 "
            "(the item's vote counts do not add up)"
        ),
        "knowledge_votes",
    )


_COLUMNS = "word, item_id, in_title, in_tags, hits"


def _words(conn: Any, found: Findings, dialect: Dialect, *, keyed: bool) -> None:
    # The index's own query (the engine's), without its INSERT INTO line and its ORDER BY.
    written = dialect.knowledge_words_of("")
    expected = written[written.index("WITH ") :].rsplit("ORDER BY", 1)[0]
    key = ", item_key"
    if not keyed:  # a file from before migration 6 (PostgreSQL is always migrated to open it)
        expected = WORDS_SELECT.format(where="").replace(
            "SELECT id, item_key,", "SELECT id, NULL AS item_key,", 1
        )
        expected, key = f"SELECT * EXCLUDE (item_key) FROM ({expected}) AS v ({_COLUMNS}, item_key)", ""
    rows = conn.execute(
        f"""
        WITH expected ({_COLUMNS}{key}) AS ({expected}),
        actual AS (SELECT {_COLUMNS}{key} FROM knowledge_words),
        missing AS (SELECT * FROM expected EXCEPT ALL SELECT * FROM actual),
        extra AS (SELECT * FROM actual EXCEPT ALL SELECT * FROM expected)
        SELECT item_id, (SELECT count(*) FROM missing m WHERE m.item_id = i.item_id) AS missing,
               (SELECT count(*) FROM extra e WHERE e.item_id = i.item_id) AS extra,
               EXISTS (SELECT 1 FROM knowledge_items k WHERE k.id = i.item_id) AS known
        FROM (SELECT item_id FROM missing UNION SELECT item_id FROM extra) i
        ORDER BY item_id
        """
    ).fetchall()

    def line(item: str, missing: int, extra: int, known: bool) -> str:
        if not known:
            return f"knowledge_words: {extra} rows for item {item}, which does not exist"
        return (
            f"knowledge_words: item {item} is indexed wrongly ({missing} of its words missing, "
            f"{extra} rows that do not match it); search_knowledge will miss or misrank it"
        )

    found.each(rows, line, "knowledge_words")


def _tokens(conn: Any, found: Findings, db_path: str) -> None:
    path = token_file(db_path)
    if path is None or not Path(path).exists():
        return  # written by the HTTP server and `mcp-state token`; a backup has none
    try:
        published = json.loads(Path(path).read_text(encoding="utf-8"))
        listed = {h: (v["id"], v["actor"], v["scope"]) for h, v in published.items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        found.problems.append(f"tokens file {path}: unreadable ({type(exc).__name__}); {_REPUBLISH}")
        return
    active = {
        h: (i, a, s)
        for i, a, s, h in conn.execute(
            "SELECT id, actor, scope, token_hash FROM api_tokens WHERE revoked_at IS NULL ORDER BY id"
        ).fetchall()
    }
    stored = {i: (i, a, s) for i, a, s in active.values()}
    lines = []
    for hashed, (token_id, actor, scope) in sorted(active.items(), key=lambda kv: kv[1]):
        if hashed not in listed:
            lines.append((f"active token {token_id} ({actor}, {scope}) is missing from it",))
        elif listed[hashed] != (token_id, actor, scope):
            lines.append((f"token {token_id} is listed with another id, actor or scope",))
    for hashed, (token_id, actor, scope) in sorted(listed.items(), key=lambda kv: kv[1]):
        if hashed not in active:
            known = "revoked or unknown" if token_id not in stored else "listed under another hash"
            lines.append(
                (f"token {token_id} ({actor}, {scope}) is {known} in api_tokens but accepted by it",)
            )
    found.each(lines, lambda text: f"tokens file {path}: {text}; {_REPUBLISH}", "tokens file")


_REPUBLISH = "start the HTTP server again (it rewrites the file from api_tokens)"
