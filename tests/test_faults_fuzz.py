"""Fault suite: property-based fuzzing of every tool's arguments through the in-memory client.

Hypothesis draws calls of every listed tool from the tool's own ``inputSchema``. Two runs, each on
a fresh copy of the seeded database that then evolves call by call:

- schema-valid calls: values in range, ids that exist (so most calls get through and change state);
- hostile calls: values at and just past every bound, plus wild values (wrong types, huge
  integers, unicode, empty strings, SQL-ish text), missing required keys and extra keys.

Whatever the arguments, for every call:

- the server answers (no exception reaches the client) and never reports ``internal_error``;
- a rejection is an ``isError`` result with a message, without a traceback or our own SQL;
- a rejected call, and any call of a read-only tool, changes no state table at all;
- the audit log grows by exactly one row per call of a mutating tool (two for an accepted
  ``log_audit_event``: the event itself and the call), and by nothing for a read.

The examples are derandomized, so a run is the same every time; ``FUZZ_EXAMPLES`` (calls per
run, default 1,000) raises the count for a longer local run.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from datetime import UTC
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client
from server_support import ANA, BOB, PENDING_CODE, SECOND_CODE, seeded_copy

from mcp_state.server import ServerSettings, build_server
from mcp_state.server.state import AppState

pytestmark = pytest.mark.slow  # thousands of calls

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "1000"))

# Values that exist in the seeded database, by argument name, so that drawn calls also get
# through and change state; any other string argument draws from all of them.
KNOWN: dict[str, list[str]] = {
    "user_id": [ANA, BOB, "carol@example.com", "fuzzer"],
    "email": [ANA, "BOB@example.com", "new@example.com"],
    "table_id": ["orders", "customers"],
    "item_id": ["km_1", "km_2"],
    "script_id": ["s1"],
    "dataset": ["sales", "hr"],
    "code": [PENDING_CODE, SECOND_CODE],
    "action": ["seeded", "record_sync", "vote_knowledge_item"],
    "sql": [
        "SELECT count(*) FROM audit_log",
        "SELECT action, count(*) FROM audit_log GROUP BY ALL",
        "SELECT * FROM users",
        "FROM sync_state",
        "SELECT 1",
    ],
    "table": ["audit_log", "users", "nope"],
}
KNOWN["owner"] = KNOWN["user_id"]
ANY_KNOWN = sorted({value for values in KNOWN.values() for value in values})
# Tools that create or remove rows work on spare ids, so the rows above stay for the other tools.
SPARE_USERS = ["del@example.com", "spare1@example.com", "spare2@example.com"]
SPARE: dict[tuple[str, str], list[str]] = {
    ("create_user", "id"): SPARE_USERS,
    ("create_user", "email"): SPARE_USERS,
    ("delete_user", "user_id"): SPARE_USERS,
    ("create_knowledge_item", "id"): ["km_del", "km_s1", "km_s2"],
    ("delete_knowledge_item", "item_id"): ["km_del", "km_s1", "km_s2"],
    ("deploy_script", "id"): ["s1", "s_del", "s_s1"],
    ("undeploy_script", "script_id"): ["s_del", "s_s1"],
    ("register_table", "id"): ["orders", "old_table", "t_s1"],
    ("unregister_table", "table_id"): ["old_table", "t_s1"],
}


def known(tool: str, name: str) -> list[str]:
    return SPARE.get((tool, name)) or KNOWN.get(name) or ANY_KNOWN


SQLISH = [
    "'; DROP TABLE users; --",
    "x' OR '1'='1",
    'Robert"); DELETE FROM audit_log; --',
    "1; UPDATE users SET role = 'admin'",
    "' UNION SELECT password_hash FROM users --",
    "%",
    "_",
    "\\",
    "NULL",
    "COPY users TO '/tmp/x.csv'",
    "ATTACH '/etc/passwd' AS p",
    "SELECT * FROM read_text('/etc/passwd')",
    "PRAGMA lock_configuration = false",
]
ODD_TEXT = ["", " ", "\t\n", "\x00", "nul\x00byte", "é", "👩‍💻", "\u202e", "漢字", "a" * 5000, "𝔘𝔫𝔦"]
HUGE_INTS = [2**31, 2**53 + 1, 2**62, 2**62 + 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 10**30, -1]

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=8,
)
WILD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(HUGE_INTS),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(SQLISH + ODD_TEXT),
    st.lists(st.integers() | st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)

# A traceback, a DuckDB error class, or a statement of our own in a message is a leak.
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|File \"[^\"]+\", line \d+")
LEAK = re.compile(
    r"(Binder|Catalog|Parser|Conversion|Constraint|Transaction(Context)?|Invalid Input|INTERNAL|Out of Range)"
    r" Error|duckdb\.|INSERT INTO|DELETE FROM|UPDATE \w+ SET|ON CONFLICT|SELECT \*? ?\w* ?FROM|WHERE \w+ = \?",
)


def values(schema: dict[str, Any], edges: bool, ids: list[str]) -> st.SearchStrategy[Any]:
    """Values for one JSON-schema property: in range and known ``ids``; with ``edges``, also at and past its bounds."""
    if "anyOf" in schema:
        return st.one_of([values(option, edges, ids) for option in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if isinstance(kind, list):  # {"type": ["string", "null"], ...}
        return st.one_of([values({**schema, "type": one}, edges, ids) for one in kind])
    if kind == "string":
        if schema.get("format") == "date-time":
            return st.datetimes(timezones=st.sampled_from([UTC, None])).map(lambda d: d.isoformat())
        low, high = schema.get("minLength", 0), schema.get("maxLength", 100_000)
        existing = st.sampled_from([value for value in ids if low <= len(value) <= high])
        fitting = st.one_of(existing, existing, st.text(min_size=low, max_size=min(high, 40)))
        if not edges:
            return fitting
        # Past the bound always; at the bound only where that stays small (it may be stored and hashed).
        edge = {"a" * low, "c" * (high + 1), "d" * max(low - 1, 0)} | (
            {"b" * high} if high <= 10_000 else set()
        )
        return st.one_of(fitting, st.sampled_from(sorted(edge)))
    if kind == "integer":
        low = schema.get("minimum", -(2**63))
        high = schema.get("maximum", schema.get("exclusiveMaximum", 2**63) - 1)
        fitting = st.one_of(st.integers(max(low, -1000), min(high, 1000)), st.integers(low, high))
        return st.one_of(fitting, st.sampled_from([low, high, low - 1, high + 1])) if edges else fitting
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        most = schema.get("maxItems", 10)
        fitting = st.lists(values(schema.get("items", {}), edges, ids), max_size=min(most, 4))
        return st.one_of(fitting, st.just(["t"] * (most + 1))) if edges and most <= 200 else fitting
    if kind == "object":
        return st.dictionaries(st.text(max_size=12), JSON, max_size=4)
    return JSON


@st.composite
def arguments(draw: st.DrawFn, tool: str, schema: dict[str, Any], hostile: bool) -> dict[str, Any]:
    """One call's arguments. Valid: every required key, half the optional ones. Hostile: any key may
    be missing, a third of the values are wild, the rest may sit at or past a bound; extra keys."""
    required = set(schema.get("required", ()))
    drawn: dict[str, Any] = {}
    for name, prop in schema.get("properties", {}).items():
        left_out = hostile and draw(st.integers(0, 7)) == 7 if name in required else draw(st.booleans())
        if left_out:
            continue
        wild = hostile and draw(st.integers(0, 2)) == 2
        drawn[name] = draw(WILD if wild else values(prop, hostile, known(tool, name)))
    if hostile and draw(st.integers(0, 7)) == 7:
        drawn[draw(st.sampled_from(["extra", "__proto__", "id; DROP", "", "ctx"]))] = draw(WILD)
    return drawn


class Harness:
    """The in-memory client on a portal thread, and a look at the state through the server's own file."""

    def __init__(
        self, portal: BlockingPortal, client: Client, state: AppState, tools: dict[str, Any]
    ) -> None:
        self.portal = portal
        self.client = client
        self.gateway = state.repos.gateway
        self.tools = tools
        self.mutating = {name for name, tool in tools.items() if not tool.annotations.read_only_hint}
        tables = [
            row["table_name"]
            for row in self.gateway.fetch_all(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
                "AND NOT temporary AND table_name <> 'audit_log' ORDER BY table_name"
            )
        ]
        assert len(tables) >= 12, tables
        # Per state table its row count and the sum of its rows' hashes; the audit log by count.
        self.fingerprint_sql = " UNION ALL ".join(
            [
                f"SELECT '{table}' AS t, count(*) AS n, coalesce(sum(hash(x)::HUGEINT), 0)::VARCHAR AS h "
                f"FROM {table} AS x"
                for table in tables
            ]
            + ["SELECT 'audit_log', count(*), '' FROM audit_log"]
        )
        self.state = self.fingerprint()
        self.calls = 0
        self.rejected = 0
        self.by_tool: dict[str, list[int]] = {}  # name: [calls, rejected]

    def fingerprint(self) -> dict[str, tuple[int, str]]:
        return {row["t"]: (row["n"], row["h"]) for row in self.gateway.fetch_all(self.fingerprint_sql)}

    def last_audit(self) -> dict[str, Any] | None:
        return self.gateway.fetch_one("SELECT action, result FROM audit_log ORDER BY seq DESC LIMIT 1")

    def call(self, name: str, args: dict[str, Any]) -> Any:
        return self.portal.call(partial(self.client.call_tool, name, args))


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    db_path = seeded_copy(tmp_path)[0]
    server = build_server(ServerSettings(db_path=str(db_path), actor="fuzzer"))
    runtime = server.settings.lifespan.__self__  # type: ignore[union-attr]
    crashes = CrashLog()
    logging.getLogger("mcp_state").addHandler(crashes)
    try:
        with (
            start_blocking_portal() as portal,
            portal.wrap_async_context_manager(Client(server, mode="auto")) as client,
        ):
            tools = {tool.name: tool for tool in portal.call(client.list_tools).tools}
            harness = Harness(portal, client, runtime.state, tools)
            yield harness
            # Still serving after all of it, and nothing logged as a crash.
            alive = harness.call("get_sync_state", {"table_id": "orders"})
            assert not alive.is_error and alive.structured_content["table_id"] == "orders"
    finally:
        logging.getLogger("mcp_state").removeHandler(crashes)
    assert crashes.records == [], crashes.records


class CrashLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage().splitlines()[0])


def fuzz(harness: Harness, hostile: bool) -> None:
    """``EXAMPLES`` calls, each of a tool drawn at random, all checked by ``check_one_call``."""
    names = sorted(harness.tools)
    call = st.sampled_from(names).flatmap(
        lambda name: arguments(name, harness.tools[name].input_schema, hostile).map(lambda args: (name, args))
    )

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(call)
    def run(drawn: tuple[str, dict[str, Any]]) -> None:
        check_one_call(harness, *drawn)

    run()
    # Hypothesis stops early only when it has tried everything it can draw.
    assert harness.calls >= EXAMPLES * 0.9, harness.calls
    assert set(harness.by_tool) == set(names), f"never called: {set(names) - set(harness.by_tool)}"


def test_schema_valid_calls(harness: Harness) -> None:
    fuzz(harness, hostile=False)
    accepted = {name for name, (calls, rejected) in harness.by_tool.items() if rejected < calls}
    assert harness.rejected < harness.calls / 2, f"{harness.rejected} of {harness.calls} valid calls rejected"
    assert len(accepted) >= len(harness.tools) - 3, f"never accepted: {set(harness.tools) - accepted}"


def test_hostile_calls(harness: Harness) -> None:
    fuzz(harness, hostile=True)
    assert harness.rejected > harness.calls * 0.6, (
        f"only {harness.rejected} of {harness.calls} hostile calls rejected"
    )


def check_one_call(harness: Harness, name: str, args: dict[str, Any]) -> None:
    before = harness.state
    result = harness.call(name, args)  # an exception here (the server or its transport broke) fails the test
    harness.calls += 1
    counts = harness.by_tool.setdefault(name, [0, 0])
    counts[0] += 1
    harness.state = harness.fingerprint()
    audit_rows = harness.state["audit_log"][0] - before["audit_log"][0]
    before, after = (
        {table: value for table, value in state.items() if table != "audit_log"}
        for state in (before, harness.state)
    )
    text = " ".join(getattr(block, "text", "") for block in result.content)
    where = f"{name}({args!r:.300})"
    mutating = name in harness.mutating
    assert "[internal_error]" not in text, f"{where} crashed the tool: {text}"
    if result.is_error:
        harness.rejected += 1
        counts[1] += 1
        assert text.strip(), f"{where}: a rejection without a message"
        assert not TRACEBACK.search(text), f"{where}: traceback in {text!r}"
        if not name.startswith("sql_"):  # the SQL tools quote the caller's own SQL back
            assert not LEAK.search(_without_inputs(text, args)), f"{where}: internals in {text!r}"
        assert after == before, f"{where} was rejected but changed {_changed(before, after)}"
        assert audit_rows == (1 if mutating else 0), f"{where}: {audit_rows} audit rows"
        if mutating:
            last = harness.last_audit()
            assert last is not None and last["action"] == name and last["result"] != "ok", (where, last)
        return
    if not mutating:
        assert after == before, f"{where} only reads but changed {_changed(before, after)}"
        assert audit_rows == 0, f"{where} only reads but wrote {audit_rows} audit rows"
        return
    assert audit_rows == (2 if name == "log_audit_event" else 1), f"{where}: {audit_rows} audit rows"
    last = harness.last_audit()
    assert last is not None and (last["action"], last["result"]) == (name, "ok"), (where, last)


def _without_inputs(text: str, args: dict[str, Any]) -> str:
    """The message minus every string the caller sent (a message may quote an argument back)."""
    strings: list[str] = []

    def collect(value: Any) -> None:
        if isinstance(value, str):
            strings.append(value)
        elif isinstance(value, dict):
            for key, item in value.items():
                collect(key)
                collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)

    collect(args)
    for value in sorted(strings, key=len, reverse=True):
        if len(value) > 1:
            text = text.replace(value, "").replace(repr(value), "")
    return text


def _changed(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return sorted(table for table in set(before) | set(after) if before.get(table) != after.get(table))
