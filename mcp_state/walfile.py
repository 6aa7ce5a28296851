"""The WAL file read without DuckDB: whole records, where each commit ends, where it breaks.

DuckDB 2.x writes the WAL as a version header (serialized fields 100-103, ended by 0xFFFF) and
then records of ``[size: u64][checksum: u64][payload: size bytes]``; every payload starts with
its type (field 100), and a ``WAL_FLUSH`` record (type 100) ends each committed transaction.
Measured on DuckDB 2.0.1: DuckDB stops replaying, silently, at the first record it cannot read,
so these scans are how mcp-state tells a record cut short from damage in the middle.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

from mcp_state.errors import DatabaseUnavailableError

_WAL_FLUSH = 100  # the WAL record that ends one committed transaction
_MAX_RECORD = 1 << 32  # a record size beyond this is garbage, not a record cut short


def wal_path(path: str | os.PathLike[str]) -> Path:
    return Path(f"{path}.wal")


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


@dataclass
class WalScan:
    """The structure of a WAL file: where each committed transaction ends, and where it breaks."""

    size: int = 0
    iteration: int | None = None
    commits: list[int] = field(default_factory=list)  # byte offset just after each commit
    good: int = 0  # bytes that form whole records
    state: str = "absent"  # absent | empty | ok | torn | corrupt


def _wal_header(data: bytes) -> tuple[int, int]:
    """(checkpoint iteration, offset of the first record) of a WAL's version header."""
    pos, iteration = 0, -1
    while True:
        if pos + 2 > len(data):
            raise ValueError("truncated header")
        field_id = struct.unpack_from("<H", data, pos)[0]
        pos += 2
        if field_id == 0xFFFF:
            return iteration, pos
        if field_id == 102:  # the database identifier: a list of bytes
            count, pos = _varint(data, pos)
            for _ in range(count):
                _, pos = _varint(data, pos)
        elif field_id in (100, 101, 103):
            value, pos = _varint(data, pos)
            if field_id == 103:
                iteration = value
        else:
            raise ValueError(f"unknown header field {field_id}")


def scan_wal(path: str | os.PathLike[str]) -> WalScan:
    wal = wal_path(path)
    try:
        data = wal.read_bytes()
    except FileNotFoundError:
        return WalScan()
    except OSError as exc:
        raise DatabaseUnavailableError(
            f"cannot read the WAL {wal}: {exc.strerror}; nothing was changed. Check the disk and retry; "
            f"if it keeps failing, restore the latest backup (`mcp-state restore --from BACKUP --db {path} --force`)"
        ) from exc
    scan = WalScan(size=len(data), state="empty" if not data else "ok")
    if not data:
        return scan
    try:
        scan.iteration, pos = _wal_header(data)
    except ValueError:
        scan.state = "corrupt"
        return scan
    scan.commits, scan.good, scan.state = _walk(data, pos)
    return scan


def _walk(data: bytes, pos: int) -> tuple[list[int], int, str]:
    """Follow whole records from ``pos``: the end of each commit, the end of the last whole
    record, and ``ok``, ``torn`` (the last record cut short) or ``corrupt`` (not a record)."""
    commits: list[int] = []
    while pos < len(data):
        if pos + 16 > len(data):
            return commits, pos, "torn"
        size = struct.unpack_from("<Q", data, pos)[0]
        if size < 2 or size > _MAX_RECORD:
            return commits, pos, "corrupt"
        if pos + 16 + size > len(data):
            return commits, pos, "torn"
        payload = data[pos + 16 : pos + 16 + size]
        if payload[:2] != b"d\x00":  # every record starts with its type (field 100)
            return commits, pos, "corrupt"
        try:
            kind, _ = _varint(payload, 2)
        except ValueError:
            return commits, pos, "corrupt"
        pos += 16 + size
        if kind == _WAL_FLUSH:
            commits.append(pos)
    return commits, pos, "ok"


def commits_after_damage(path: str | os.PathLike[str], good: int) -> int:
    """Committed transactions in a damaged WAL after the unreadable bytes that start at ``good``:
    the first place after them where whole records run on to the end of the file."""
    data = wal_path(path).read_bytes()
    found = data.find(b"d\x00", good + 17)
    while found != -1:
        commits, end, state = _walk(data, found - 16)
        if state == "ok" and end == len(data) and commits:
            return len(commits)
        found = data.find(b"d\x00", found + 1)
    return 0
