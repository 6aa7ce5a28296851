"""What happens around opening a database file so that damage is named and little is lost.

``mcp_state.db`` calls in here (and nowhere else does this work):

- ``preflight(path)`` before DuckDB opens a file: reads the WAL's structure without DuckDB.
  A WAL whose last record is cut short (a torn tail) opens as DuckDB would open it, but first
  a copy is set aside and a warning names the file; a WAL with unreadable records in the
  middle, or a WAL that existed for the current checkpoint and is now missing, is refused
  with ``DatabaseDamagedError``.
- ``open_failure(path, exc)`` turns any DuckDB error on open into one line that names the
  damaged file and the way forward (``mcp-state restore`` or ``mcp-state recover``).
- ``after_open(conn, path, replayed)`` checkpoints after a start that replayed a WAL, so that a
  crash loop never grows the WAL.
- ``created(path)`` syncs the folder once a new database file exists.
- ``after_write(path)`` after a write operation: when the WAL is new, syncs the folder (the
  WAL's directory entry survives power loss) and notes in a marker file ``PATH.wal-seen`` the
  database file's size and modification time (a checkpoint changes them): a WAL that is
  missing while the database file is as it was when the WAL was seen was deleted or lost.

One rule holds everywhere: this process never opens the database file or its WAL while it may
hold them through DuckDB. DuckDB locks them with POSIX record locks, and closing *any*
descriptor of a file drops every such lock the process holds on it. Hence ``os.stat`` only,
and the checks before opening run only when ``held_here`` says this process has neither open.

Checkpoints on release (``before_close``) and when idle (``start_idle_checkpoints``) go through
``checkpoint(conn, path)``.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import shutil
import struct
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import duckdb

from mcp_state.errors import DatabaseDamagedError, DatabaseUnavailableError, StateError
from mcp_state.walfile import scan_wal, wal_path

P = ParamSpec("P")
R = TypeVar("R")

# DuckDB checkpoints by itself when the WAL passes this size; we also checkpoint when idle.
WAL_CHECKPOINT_THRESHOLD = "4MB"
# Seconds without an operation after which an open database is checkpointed.
IDLE_CHECKPOINT = 1.0


_DAMAGE_WORDS = (
    "corrupt",
    "checksum",
    "replaying wal",
    "not a valid duckdb database",
    "could not read enough bytes",
    "storage version",
    "serializ",
    "invalidated",
)


def marker_path(path: str | os.PathLike[str]) -> Path:
    return Path(f"{path}.wal-seen")


def stamp() -> str:
    """A UTC timestamp for names of files set aside."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def warn(message: str) -> None:
    print(f"mcp-state: warning: {message}", file=sys.stderr, flush=True)


def file_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """For the operator commands: an OS error on a file becomes one named line, not a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename else ""
            raise DatabaseUnavailableError(
                f"{exc.strerror or exc}{where}. Check the path, its permissions and the free space, then retry"
            ) from exc

    return wrapper


# -- what db.py calls -------------------------------------------------------------
def damaged(path: str | os.PathLike[str], what: str) -> DatabaseDamagedError:
    return DatabaseDamagedError(
        f"{what}. Restore the latest backup (`mcp-state restore --from BACKUP --db {path} --force`) "
        f"or open it without the damaged WAL (`mcp-state recover --db {path}`)"
    )


def preflight(path: str) -> bool:
    """Check the WAL of ``path`` before DuckDB opens it; True when there is a WAL to replay.

    Does nothing for a file some process (this one included) holds open now: its WAL is live.
    """
    if path == ":memory:" or not Path(path).exists() or held_here(path) or held_elsewhere(path):
        return False
    scan = scan_wal(path)
    wal = wal_path(path)
    if scan.state == "corrupt":
        raise damaged(
            path,
            f"the WAL {wal} is damaged: unreadable records after byte {scan.good} of {scan.size} "
            "(the changes from there on cannot be replayed)",
        )
    if scan.state == "absent":
        if wal_missing(path):
            raise damaged(
                path,
                f"the WAL {wal} is missing: it held every change since the last checkpoint "
                "and was deleted or lost",
            )
        return False
    if scan.state == "torn":
        keep = Path(f"{wal}.torn-{stamp()}")
        shutil.copyfile(wal, keep)
        warn(
            f"the WAL {wal} ends in a record cut short ({scan.size - scan.good} bytes after "
            f"{len(scan.commits)} whole transactions); those bytes were never acknowledged unless the "
            f"file was damaged. A copy is kept in {keep}; if acknowledged changes are missing, "
            "restore the latest backup"
        )
    return scan.state != "empty"


def wal_missing(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` had a WAL for its current checkpoint that is gone now."""
    if wal_path(path).exists():
        return False
    seen = _read_marker(path)
    return seen is not None and seen == _db_state(path)


def open_failure(path: str, exc: duckdb.Error) -> StateError:
    """The one-line error for a DuckDB error raised while opening ``path`` (not a lock conflict)."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = str(exc).lower()
    if "storage version" in text or "newer version of duckdb" in text or "older version" in text:
        return DatabaseDamagedError(
            f"the database {path} was written by another DuckDB version ({first}). Open it with the "
            f"DuckDB version that wrote it and `EXPORT DATABASE`, or restore a backup made by this "
            f"version (`mcp-state restore --from BACKUP --db {path} --force`)"
        )
    if Path(path).exists() and any(word in text for word in _DAMAGE_WORDS):
        where = f"its WAL {wal_path(path)}" if "wal" in text else "the file"
        return damaged(path, f"the database {path} is damaged ({where}: {first})")
    if isinstance(exc, duckdb.IOException):
        return DatabaseUnavailableError(
            f"cannot open the database {path}: {first}. "
            "Check that the path exists, is writable and has free space."
        )
    return damaged(path, f"the database {path} cannot be opened ({first})")


def after_open(conn: duckdb.DuckDBPyConnection, path: str, replayed: bool) -> None:
    if path == ":memory:":
        return
    with contextlib.suppress(duckdb.Error):  # an instance shared in this process may be locked already
        conn.execute(f"SET GLOBAL checkpoint_threshold = '{WAL_CHECKPOINT_THRESHOLD}'")
    if not replayed:
        _clear_stale_marker(path)
    elif checkpoint(conn, path) == "fatal":  # DuckDB gave up on this instance; the WAL is intact
        raise DatabaseUnavailableError(
            f"the database {path} replayed its WAL but could not checkpoint it (see the warning above); "
            "nothing was lost, the WAL keeps every change. Free space or check the disk, then retry"
        )


def start_idle_checkpoints(db: Any) -> None:
    """Checkpoint ``db`` (a ``Database``) once it has been written and then idle for a while.

    Runs while the file is open; the checkpoint holds the Database's state lock, so no
    operation starts during it.
    """
    if db.path == ":memory:":
        return

    def loop() -> None:
        with db._state:
            conn = db._conn
            while not db._closed and conn is not None and db._conn is conn:
                idle_for = time.monotonic() - db._last_used
                if db.dirty and db._active == 0 and idle_for >= IDLE_CHECKPOINT:
                    outcome = checkpoint(conn, db.path, quiet=True)
                    db.dirty = outcome != "done"
                    if outcome == "fatal":  # the instance is unusable: the next operation reopens it
                        with contextlib.suppress(duckdb.Error):
                            conn.close()
                        db._conn = None
                        db._changed()
                        return
                db._state.wait(max(0.05, IDLE_CHECKPOINT - idle_for) if db.dirty else IDLE_CHECKPOINT)

    db._checkpointer = threading.Thread(target=loop, name="mcp-state-idle-checkpoint", daemon=True)
    db._checkpointer.start()


def held_fd(path: str | os.PathLike[str]) -> int | None:
    """A descriptor this process already has open on ``path`` (DuckDB's own), or None.

    Read it with ``os.pread`` and never close it: that reads the file without dropping a lock.
    """
    real = os.path.realpath(path)
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return None
    for fd in fds:
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == real:
                return int(fd)
        except OSError:
            continue
    return None


def held_here(path: str | os.PathLike[str]) -> bool:
    """Whether this process has ``path`` or its WAL open (through DuckDB); True where unknown."""
    if not os.path.isdir("/proc/self/fd"):
        return True
    return held_fd(path) is not None or held_fd(wal_path(path)) is not None


def holder(path: str | os.PathLike[str]) -> int | None:
    """The PID of the process holding ``path`` (this one included), or None."""
    return os.getpid() if held_here(path) else held_elsewhere(path)


def held_elsewhere(path: str | os.PathLike[str]) -> int | None:
    """The PID of another process holding DuckDB's lock on ``path``, or None.

    Opens the file: call it only when ``held_here`` is false (see the module notes)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        query = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        kind, _, _, _, pid = struct.unpack("hhqqi4x", fcntl.fcntl(fd, fcntl.F_GETLK, query))
    except OSError:
        return None
    finally:
        os.close(fd)
    return pid if kind != fcntl.F_UNLCK else None


def before_close(db: Any) -> None:
    """Checkpoint ``db`` (a ``Database``) before it lets go of the file, if it wrote since the last one."""
    if db.dirty and db._conn is not None:
        db.dirty = checkpoint(db._conn, db.path, quiet=True) != "done"


def checkpoint(conn: duckdb.DuckDBPyConnection, path: str, *, quiet: bool = False) -> str:
    """Move what the WAL holds into the database file: ``done``, ``busy``, ``failed`` or ``fatal``.

    A failed checkpoint loses nothing: the WAL still holds every change and is replayed next
    time. ``fatal`` (a write error in DuckDB) leaves the instance unusable until it is reopened.
    """
    if path == ":memory:":
        return "done"
    try:
        if conn.execute("SELECT current_setting('access_mode')").fetchone() == ("read_only",):
            return "done"  # nothing was written through it
        conn.execute("CHECKPOINT")
    except duckdb.Error as exc:
        if quiet and "transaction" in str(exc).lower():  # busy now; the next idle moment retries
            return "busy"
        warn(f"checkpoint of {path} failed, the changes stay in its WAL: {str(exc).strip().splitlines()[0]}")
        return "fatal" if isinstance(exc, duckdb.FatalException) else "failed"
    _clear_stale_marker(path)
    return "done"


_seen_wals: dict[str, tuple[int, int]] = {}


def after_write(path: str) -> None:
    """After a write: if the WAL is new, sync the folder and note which checkpoint it belongs to."""
    if path == ":memory:":
        return
    wal = wal_path(path)
    try:
        info = wal.stat()
    except FileNotFoundError:
        return
    key = (info.st_ino, info.st_dev)
    if _seen_wals.get(path) == key:
        return
    fsync_dir(wal.parent)
    state = _db_state(path)
    if state is not None:
        _write_marker(path, state)
    _seen_wals[path] = key


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Make the folder's entries (files created or renamed in it) survive power loss."""
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def created(path: str) -> None:
    """The database file was just created: its directory entry must survive power loss."""
    if path != ":memory:":
        fsync_dir(Path(path).parent)


# -- the marker of the WAL's checkpoint ------------------------------------------------------------
def _db_state(path: str | os.PathLike[str]) -> str | None:
    """The database file's size and modification time (``os.stat``: no descriptor opened)."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return f"{info.st_size} {info.st_mtime_ns}"


def _read_marker(path: str | os.PathLike[str]) -> str | None:
    try:
        return marker_path(path).read_text().strip() or None
    except OSError:
        return None


def _write_marker(path: str, state: str) -> None:
    marker = marker_path(path)
    temp = Path(f"{marker}.tmp")
    try:
        with open(temp, "w") as handle:
            handle.write(f"{state}\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, marker)
        fsync_dir(marker.parent)
    except OSError as exc:  # the marker only sharpens a message; never fail a write for it
        warn(f"cannot write {marker}: {exc.strerror}")


def _clear_stale_marker(path: str | os.PathLike[str]) -> None:
    seen = _read_marker(path)
    if seen is None or wal_path(path).exists():
        return
    if seen != _db_state(path):  # the database file changed since: a checkpoint took the WAL in
        forget_marker(path)


def forget_marker(path: str | os.PathLike[str]) -> None:
    marker_path(path).unlink(missing_ok=True)
    _seen_wals.pop(str(path), None)
