"""Every timestamp is stored and returned as UTC, whatever the machine's time zone.

DuckDB takes its session zone from the OS (``TZ``): ``current_timestamp`` defaults and casts
of aware values follow it. The probe runs in a real process under ``TZ=Asia/Tokyo`` (and a
negative-offset zone), where a plain DuckDB connection really is in that zone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mcp_state.db import connect
from mcp_state.gateway import Gateway, to_utc
from mcp_state.repositories import SyncStateRepository

PROBE = Path(__file__).parent / "helpers" / "tz_probe.py"
ZONES = {"Asia/Tokyo": 9 * 3600, "America/St_Johns": -(3 * 3600 + 30 * 60)}


def run_probe(mode: str, zone: str, data_dir: Path) -> dict:
    env = dict(os.environ, TZ=zone, DATA_DIR=str(data_dir))
    proc = subprocess.run(
        [sys.executable, str(PROBE), mode], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def naive(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


def aware(value: dict) -> datetime:
    assert value["offset"] == 0, f"not UTC: {value}"
    parsed = datetime.fromisoformat(value["iso"])
    assert parsed.tzinfo is not None
    return parsed


@pytest.fixture(scope="module", params=list(ZONES))
def probed(request, tmp_path_factory):
    zone = request.param
    data_dir = tmp_path_factory.mktemp("tz") / "data"
    return zone, data_dir, run_probe("write", zone, data_dir)


def test_the_probe_really_runs_in_the_zone(probed):
    zone, _, out = probed
    # Without these the rest would pass on any machine and prove nothing.
    assert out["local_offset"] == ZONES[zone]
    assert out["plain_duckdb_zone"] == zone


def test_every_connection_runs_in_utc(probed):
    _, _, out = probed
    for key in ("conn_zone", "cursor_zone", "analytics_zone", "database_zone"):
        assert out[key] == "UTC", key


def test_current_timestamp_defaults_store_utc(probed):
    """The seed's raw INSERT relies on ``created_at DEFAULT current_timestamp``."""
    _, _, out = probed
    before = naive(out["before"]) - timedelta(seconds=1)
    after = naive(out["after"]) + timedelta(seconds=1)
    for key in ("raw_user_created", "raw_item_created", "raw_code_created"):
        assert before <= naive(out[key]) <= after, key
    for applied in out["raw_schema_applied"]:
        assert before - timedelta(minutes=5) <= naive(applied) <= after, applied


def test_defaults_come_back_as_aware_utc(probed):
    _, _, out = probed
    assert aware(out["repo_user_created"]).replace(tzinfo=None) == naive(out["raw_user_created"])


def test_aware_values_are_converted_and_naive_values_taken_as_utc(probed):
    _, _, out = probed
    assert out["raw_aware"] == "2024-01-01T00:00:00"
    assert out["raw_naive"] == "2024-01-01T00:00:00"
    assert aware(out["repo_aware"]) == datetime(2024, 1, 1, tzinfo=UTC)
    assert aware(out["repo_history"]) == datetime(2024, 1, 1, tzinfo=UTC)


def test_repositories_write_utc_even_on_a_connection_in_the_local_zone(probed):
    """A caller may hand a repository a connection it opened itself, in the OS zone."""
    zone, _, out = probed
    assert out["plain_zone"] == zone
    assert out["plain_raw_aware"] == "2024-01-01T00:00:00"
    before = naive(out["plain_before"]) - timedelta(seconds=1)
    after = naive(out["plain_after"]) + timedelta(seconds=1)
    assert before <= naive(out["plain_raw_created"]) <= after
    assert aware(out["plain_repo_aware"]) == datetime(2024, 1, 1, tzinfo=UTC)


def test_timestamptz_results_come_back_as_utc(probed):
    _, _, out = probed
    now = aware(out["gateway_now"])
    assert abs(datetime.now(UTC) - now) < timedelta(minutes=5)


def test_time_range_filters_compare_instants(probed):
    _, _, out = probed
    # Entries at 08:00, 09:00, 10:00 Tokyo; [09:00, 10:00) Tokyo holds only the 09:00 one.
    assert out["audit_since_until"] == ["9"]
    assert out["audit_since_utc"] == ["10", "9"]


def test_code_ttl_is_measured_in_utc(probed):
    _, _, out = probed
    assert out["fresh_code"] is not None and out["fresh_code"]["chat_id"] == 1
    aware(out["fresh_code"]["created_at"])
    assert out["stale_code"] is None


def test_a_file_written_in_one_zone_reads_the_same_in_another(probed):
    zone, data_dir, _ = probed
    other = "America/Los_Angeles" if zone == "Asia/Tokyo" else "Asia/Tokyo"
    there = run_probe("read", other, data_dir)
    assert there["local_offset"] != ZONES[zone]
    assert aware(there["repo_aware"]) == datetime(2024, 1, 1, tzinfo=UTC)
    assert aware(there["repo_naive"]) == datetime(2024, 1, 1, tzinfo=UTC)
    assert [aware(t) for t in there["audit"]] == [datetime(2024, 1, 1, h, tzinfo=UTC) for h in (1, 0)] + [
        datetime(2023, 12, 31, 23, tzinfo=UTC)
    ]
    # And this process (whatever its zone) agrees.
    conn = connect(data_dir / "state" / "system.duckdb")
    try:
        assert SyncStateRepository(conn).get_last_sync("aware") == datetime(2024, 1, 1, tzinfo=UTC)
        assert aware(there["repo_user_created"]) == Gateway(conn).fetch_value(
            "SELECT created_at FROM users WHERE id = 'u1'"
        )
    finally:
        conn.close()


@pytest.mark.parametrize(
    "given",
    [
        datetime(2024, 6, 1, 12, 0, tzinfo=UTC),
        datetime(2024, 6, 1, 21, 0, tzinfo=ZoneInfo("Asia/Tokyo")),
        datetime(2024, 6, 1, 5, 0, tzinfo=ZoneInfo("America/Los_Angeles")),  # PDT, UTC-7
        datetime(2024, 6, 1, 12, 0),  # naive: taken as UTC
    ],
)
def test_every_datetime_returned_is_aware_utc(given, state_db):
    conn = state_db
    try:
        sync = SyncStateRepository(conn)
        sync.update_sync("t", rows=1, file_size_bytes=1, hash="h", synced_at=given)
        for value in (
            sync.get_last_sync("t"),
            sync.get_table_state("t")["last_sync"],
            sync.get_sync_history("t")[0]["synced_at"],
        ):
            assert value == datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
            assert value.utcoffset() == timedelta(0)
        assert to_utc(given) == datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
        assert Gateway(conn).fetch_value("SELECT max(synced_at) FROM sync_history").tzinfo is not None
    finally:
        conn.close()
