"""Export the database back to the legacy JSON layout (``LAYOUT.md``): a way back, and a backup.

``export_all(to_dir)`` writes every file of the layout from the state tables, using the
layout description the migration reads with (``mcp_state.legacy.layout.KINDS``), so that
migrating an export into an empty database gives back the same table contents.

- Timestamps are written as UTC ISO 8601 (``2026-03-27T08:00:00Z``); NULL values are left
  out of an entry; ids made from the content by the migration are written out as ids.
- The audit log is streamed in chunks (memory stays bounded); the other files are built
  whole, as the legacy application kept them.
- Files are written to a temporary name and renamed, readable by their owner only (they
  hold password hashes, tokens and one-time codes); an export never overwrites a file.
- What the layout has no place for is not exported: ``knowledge_votes.voted_at``,
  ``users.updated_at``, ``seq`` (the audit log and sync history are written in ``seq``
  order, so a migration numbers them again in that order), and ``api_tokens``. Sync
  settings carry one ``updated_at`` per user: the latest of that user's datasets.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
from collections.abc import Callable, Iterable
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import IO, Any

import duckdb

from mcp_state.db import system_db_path
from mcp_state.dialect import is_postgres_url
from mcp_state.errors import MigrationError
from mcp_state.gateway import rows_to_dicts, to_utc
from mcp_state.legacy.layout import KINDS, LAYOUT_FILES, Kind, Shape, Source
from mcp_state.legacy.migrate import connect_waiting
from mcp_state.sharing import configured_url

CHUNK_ROWS = 50_000


def export_all(
    to_dir: str | os.PathLike[str],
    *,
    db_path: str | os.PathLike[str] | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Write the layout under ``to_dir`` from ``db_path`` (default ``$DATA_DIR/state/system.duckdb``).

    Returns how many entries of each kind were written (keyed like ``migrate_all``).
    """
    target = Path(to_dir)
    _refuse_links(target)
    taken = [name for name in LAYOUT_FILES if os.path.lexists(target / name)]
    if taken:
        raise MigrationError(
            f"{target} already holds {', '.join(taken)}; an export never overwrites files. "
            "Export into an empty (or new) directory."
        )
    if db_path is None:
        db_path = configured_url()
    if is_postgres_url(db_path):
        return _export_from_server(target, str(db_path))
    source = Path(db_path) if db_path is not None else system_db_path()
    if not source.is_file():
        raise MigrationError(f"there is no database at {source}; pass --db, or migrate or create one first")
    conn = connect_waiting(source, on_wait, config={"access_mode": "READ_ONLY"}, migrate=False)
    counts: dict[str, int] = {}
    documents: dict[str, Any] = {}
    try:
        conn.execute("BEGIN TRANSACTION")  # one consistent snapshot of every table
        for kind in KINDS:
            rows = _rows(conn, kind)
            if kind.shape is Shape.LINES:
                counts[kind.name] = _write_file(
                    target, kind.file, partial(_write_lines, kind=kind, rows=rows)
                )
            else:
                counts[kind.name] = _place(documents, kind, rows)
        conn.execute("ROLLBACK")
    finally:
        conn.close()
    for name, document in documents.items():
        _write_file(target, name, partial(_write_document, document=document))
    return counts


def _export_from_server(target: Path, url: str) -> dict[str, int]:
    """From PostgreSQL: copy the state into a temporary DuckDB file (``transfer``), export that."""
    import tempfile

    from mcp_state.transfer import copy_state

    with tempfile.TemporaryDirectory(prefix="mcp-state-export-") as folder:  # owner-only: it holds secrets
        staged = Path(folder) / "state.duckdb"
        copy_state(url, str(staged))
        return export_all(target, db_path=staged)


def _rows(conn: duckdb.DuckDBPyConnection, kind: Kind) -> Iterable[dict[str, Any]]:
    """The table's rows as the gateway shapes them (JSON decoded, aware UTC datetimes), streamed."""
    order = (
        "seq"
        if kind.ordered
        else ", ".join([f.column for f in kind.fields if f.source is Source.PARENT_KEY] + list(kind.key))
    )
    result = conn.execute(f"SELECT {', '.join(kind.columns)} FROM {kind.table} ORDER BY {order}")
    while chunk := result.fetchmany(CHUNK_ROWS):
        yield from rows_to_dicts(result.description, chunk)


def _value(value: Any) -> Any:
    if isinstance(value, datetime):
        return to_utc(value).isoformat().replace("+00:00", "Z")
    return value


def _entry(kind: Kind, row: dict[str, Any]) -> Any:
    """The JSON value one row is written as (an object, or a bare value such as a vote)."""
    entry: dict[str, Any] = {}
    for f in kind.fields:
        value = row[f.column]
        if f.source is Source.VALUE:
            return _value(value)
        if f.source is Source.REST:
            entry.update(value or {})
        elif f.source is Source.ENTRY and value is not None:
            entry[f.json_key] = _value(value)
    return entry


def _place(documents: dict[str, Any], kind: Kind, rows: Iterable[dict[str, Any]]) -> int:
    """Put each row's entry where the layout has it in its file's document; how many."""
    container: Any = [] if kind.shape is Shape.LIST else {}
    if kind.path == "$":
        documents[kind.file] = container
    else:
        documents.setdefault(kind.file, {})[kind.path[2:]] = container
    key = next((f.column for f in kind.fields if f.source is Source.KEY), "")  # none in a list
    parent_key = next((f.column for f in kind.fields if f.source is Source.PARENT_KEY), None)
    parent_fields = [f for f in kind.fields if f.source is Source.PARENT]
    latest: dict[tuple[str, str], Any] = {}
    count = 0
    for row in rows:
        count += 1
        entry = _entry(kind, row)
        if kind.shape is Shape.LIST:
            container.append(entry)
        elif parent_key is None:
            container[row[key]] = entry
        else:
            parent = container.setdefault(row[parent_key], {})
            entries = parent if kind.child == "$" else parent.setdefault(kind.child[2:], {})
            entries[row[key]] = entry
            for f in parent_fields:  # one value per parent: the latest
                value, seen = row[f.column], latest.get((row[parent_key], f.json_key))
                if value is not None and (seen is None or value > seen):
                    latest[(row[parent_key], f.json_key)] = value
                    parent[f.json_key] = _value(value)
    return count


def _write_lines(out: IO[str], kind: Kind, rows: Iterable[dict[str, Any]]) -> int:
    count = 0
    for row in rows:
        out.write(json.dumps(_entry(kind, row), ensure_ascii=False) + "\n")
        count += 1
    return count


def _write_document(out: IO[str], document: Any) -> int:
    json.dump(document, out, indent=2, ensure_ascii=False)
    out.write("\n")
    return 0


def _refuse_links(target: Path) -> None:
    """Refuse a symbolic link anywhere under ``target`` on the way to a file of the layout."""
    for name in LAYOUT_FILES:
        path = target
        for part in Path(name).parts:
            path = path / part
            if path.is_symlink():
                raise MigrationError(_link_message(path))


def _link_message(path: Path) -> str:
    return (
        f"{path} is a symbolic link; an export never follows links (the files hold secrets). "
        "Export into an empty (or new) directory."
    )


def _write_file(target: Path, name: str, write: Callable[[IO[str]], int]) -> int:
    """Write ``target/name`` (mode 0600) through a temporary file linked into place: never over a file.

    Every folder under ``target`` is opened without following a symbolic link, and the file
    is created in it by name, so a link put there while the export runs is refused too.
    """
    path = target / name
    folder = _open_folder(target, Path(name).parts[:-1])
    try:
        temporary = f".{path.name}.{secrets.token_hex(6)}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        handle = os.open(temporary, flags, 0o600, dir_fd=folder)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                count = write(out)
            os.link(temporary, path.name, src_dir_fd=folder, dst_dir_fd=folder, follow_symlinks=False)
        except FileExistsError:
            raise MigrationError(
                f"{path} appeared while the export ran; an export never overwrites files. "
                "Export into an empty (or new) directory."
            ) from None
        finally:
            os.unlink(temporary, dir_fd=folder)
    finally:
        os.close(folder)
    return count


def _open_folder(target: Path, parts: tuple[str, ...]) -> int:
    """A descriptor of ``target/parts...``, each part created as needed and opened without following a link."""
    try:
        target.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise MigrationError(
            f"{target} is a file, not a folder; export into an empty (or new) directory"
        ) from None
    descriptor = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
    path = target
    try:
        for part in parts:
            path = path / part
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o700, dir_fd=descriptor)
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=descriptor)
            os.close(descriptor)
            descriptor = inner
    except OSError as exc:
        os.close(descriptor)
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and path.is_symlink():
            raise MigrationError(_link_message(path)) from None
        raise MigrationError(f"cannot write into {path}: {exc.strerror}") from None
    return descriptor
