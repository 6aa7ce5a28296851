"""Values of a SQL result as JSON can carry them (``json_safe``), per column type (``converter``)."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from decimal import Decimal
from functools import partial
from typing import Any
from uuid import UUID

_MAX_SAFE_INT = 2**53 - 1


# DuckDB types whose Python values are already JSON-safe as they come.
_PLAIN_TYPES = frozenset(
    {"VARCHAR", "BOOLEAN", "TINYINT", "SMALLINT", "INTEGER", "UTINYINT", "USMALLINT", "UINTEGER", '"NULL"'}
)


def _as_is(value: Any) -> Any:
    return value


def converter(type_name: str) -> Callable[[Any], Any]:
    """The ``json_safe`` conversion for values of one column type (the identity where it can be)."""
    if type_name in _PLAIN_TYPES:
        return _as_is
    return partial(json_safe, type_name=type_name)


def json_safe(value: Any, type_name: str | None = None) -> Any:
    """``value`` as JSON can carry it without loss.

    Timestamps ISO 8601 in UTC (``Z``); decimals as exact strings; integers beyond 2^53 as
    strings; NaN and infinities as strings; UUIDs as strings; blobs base64; intervals as ISO
    8601 durations; lists, structs and maps as JSON arrays and objects; JSON columns parsed.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        if type_name == "JSON":
            try:
                return json.loads(value)
            except (ValueError, RecursionError):
                return value  # not JSON Python can hold (say nested 100,000 deep): the text
        return value
    if isinstance(value, int):
        return value if -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT else str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.isoformat() + "Z"
    if isinstance(value, date | dt_time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return iso_duration(value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    return str(value)


def iso_duration(value: timedelta) -> str:
    """``timedelta(days=3, seconds=90)`` -> ``P3DT1M30S``."""
    micros = value // timedelta(microseconds=1)
    sign = "-" if micros < 0 else ""
    days, rest = divmod(abs(micros), 86_400_000_000)
    seconds, micro = divmod(rest, 1_000_000)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    clock = ""
    if hours:
        clock += f"{hours}H"
    if minutes:
        clock += f"{minutes}M"
    if seconds or micro:
        clock += f"{seconds}.{micro:06d}".rstrip("0").rstrip(".") + "S"
    if not days and not clock:
        return "PT0S"
    return f"{sign}P" + (f"{days}D" if days else "") + (f"T{clock}" if clock else "")
