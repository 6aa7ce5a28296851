"""The one parser of ``since`` and ``until`` values, for tools, prompts and resources.

A value is an ISO 8601 date or time (UTC when it has no zone: ``2026-01-31``,
``2026-01-31T08:00``, ``2026-01-31T08:00:00+01:00``) or a duration back from now: a whole
number and a unit, ``30m``, ``24h``, ``7d``, ``2w`` (minutes, hours, days, weeks). Values
outside what the state can hold (before 1900, after 2999, a duration over 100 years) are an
``InvalidArgumentError``, never an overflow deep in the database.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from mcp_state.errors import InvalidArgumentError
from mcp_state.gateway import to_utc, utc_now

EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)
MAX_DURATION = timedelta(days=36_600)
_DURATION = re.compile(r"^\s*(\d{1,9})\s*([mhdw])\s*$", re.IGNORECASE)
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
FORMS = "a duration back from now like 30m, 24h, 7d, 2w, or an ISO time like 2026-01-31 or 2026-01-31T08:00Z"


def parse_time(name: str, value: str | datetime | None, now: datetime | None = None) -> datetime | None:
    """``value`` as an aware UTC datetime (None stays None); ``now`` anchors durations."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return _in_range(name, value, repr(value.isoformat()))
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgumentError(f"{name} must be {FORMS}; got {value!r}")
    match = _DURATION.match(value)
    if match:
        try:
            amount: timedelta | None = timedelta(**{_UNITS[match.group(2).lower()]: int(match.group(1))})
        except OverflowError:
            amount = None
        if amount is None or amount > MAX_DURATION:
            raise InvalidArgumentError(
                f"{name} {value!r} reaches back more than 100 years; use a shorter duration"
            )
        return (now or utc_now()) - amount
    text = value.strip()
    if text.endswith(("z", "Z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidArgumentError(f"{name} must be {FORMS}; got {value!r}") from None
    return _in_range(name, parsed, repr(value))


def _in_range(name: str, value: datetime, shown: str) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        utc = to_utc(value)
    except (OverflowError, InvalidArgumentError):  # past year 1 or 9999 in UTC: out of range below
        utc = EARLIEST - timedelta(days=1) if value.year < 2000 else LATEST
    if not EARLIEST <= utc < LATEST:
        raise InvalidArgumentError(
            f"{name} {shown} is out of range: give a time between {EARLIEST.year} and {LATEST.year - 1}"
        )
    return utc


def parse_window(
    since: str | datetime | None, until: str | datetime | None, now: datetime | None = None
) -> tuple[datetime | None, datetime | None]:
    """``since`` (inclusive) and ``until`` (exclusive) parsed against one ``now``; since must not be after until."""
    now = now or utc_now()
    start, end = parse_time("since", since, now), parse_time("until", until, now)
    if start is not None and end is not None and start > end:
        raise InvalidArgumentError(
            f"since ({start.isoformat()}) is after until ({end.isoformat()}); swap them or widen the window"
        )
    return start, end
