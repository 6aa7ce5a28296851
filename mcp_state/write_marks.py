"""Which tables changed: a counter per table, bumped by every write the gateway makes.

The SQL tool keeps in-memory copies of the redacted views (``mcp_state.sql.snapshot``); it
re-reads a table only when that table's mark moved. ``Database.marks`` is one ``WriteMarks``:

- within one *epoch*, a table's counter moves with every write statement the gateway ran
  on it (``wrote``, after the statement or its transaction ended: a reader never sees the
  mark before the data);
- a new epoch starts whenever any table may have changed unseen: each opening of the file
  (another process may have written while it was closed), and each operation that may write
  without naming its tables (``Database.session()`` other than the gateway's);
- once the root connection or a bare cursor is handed out (``Database.open()``/``cursor()``),
  writes can happen unseen at any time: ``read()`` answers None for good.

Marks are exact while the file is open, since this process then holds DuckDB's lock on it
and every write in the process goes through one of the paths above. ``tables_written``
reads the tables a statement writes from its text, erring towards more: a keyword inside a
string literal names a table that was not written (one needless copy), and a statement
that may write something it cannot name (DDL, ``COPY``, ``ATTACH``...) answers None.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from functools import lru_cache

# The target of INSERT [OR ...] INTO, UPDATE, DELETE FROM, MERGE INTO, TRUNCATE [TABLE].
_TARGET = re.compile(
    r"\b(?:INSERT\s+(?:OR\s+\w+\s+)?INTO|UPDATE|DELETE\s+FROM|MERGE\s+INTO|TRUNCATE(?:\s+TABLE)?)\s+"
    r'((?:"(?:[^"]|"")+"|\w+)(?:\s*\.\s*(?:"(?:[^"]|"")+"|\w+))*)',
    re.IGNORECASE,
)
# Statements that may change a table without naming it as a target above.
_OTHER_WRITES = re.compile(
    r"\b(?:CREATE|DROP|ALTER|COPY|ATTACH|DETACH|IMPORT|LOAD|CALL|PRAGMA|VACUUM|CHECKPOINT)\b",
    re.IGNORECASE,
)
_PART = re.compile(r'"((?:[^"]|"")+)"|(\w+)')
_WRITE_WORDS = re.compile(r"\b(?:INSERT|UPDATE|DELETE|MERGE|TRUNCATE)\b", re.IGNORECASE)


@lru_cache(maxsize=2048)  # the repositories' statements are a fixed set of texts
def tables_written(sql: str) -> frozenset[str] | None:
    """The lower-case names of the tables ``sql`` may write (empty: it writes none), or None
    when it may write something unnamed. ``UPDATE main.users SET ...`` -> ``{"users"}``."""
    if _OTHER_WRITES.search(sql):
        return None
    targets = [_last_part(m.group(1)) for m in _TARGET.finditer(sql)]
    if len(targets) < len(_WRITE_WORDS.findall(sql)):
        return None  # a write keyword whose target the pattern did not read
    return frozenset(targets)


def _last_part(name: str) -> str:
    quoted, bare = _PART.findall(name)[-1]
    return (quoted.replace('""', '"') if quoted else bare).lower()


class WriteMarks:
    """The epoch and the per-table write counters of one ``Database`` (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._epoch = 0
        self._counts: dict[str, int] = {}
        self._lost = False

    def new_epoch(self) -> None:
        """Any table may have changed unseen."""
        with self._lock:
            self._epoch += 1

    def lose_track(self) -> None:
        """Writes may happen unseen from now on."""
        with self._lock:
            self._lost = True

    def wrote(self, tables: Iterable[str] | None) -> None:
        """Writes to ``tables`` (as ``tables_written`` names them) ended; None: unknown tables."""
        with self._lock:
            if tables is None:
                self._epoch += 1
                return
            for table in tables:
                self._counts[table] = self._counts.get(table, 0) + 1

    def read(self) -> tuple[int, dict[str, int]] | None:
        """The epoch and every counter, or None when writes may have happened unseen."""
        with self._lock:
            return None if self._lost else (self._epoch, dict(self._counts))
