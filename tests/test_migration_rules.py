"""The migration checks entries in SQL; each rule must decide exactly as the repository check
it mirrors (one rule, two spellings: this test keeps them the same)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcp_state.db import connect
from mcp_state.errors import InvalidArgumentError
from mcp_state.legacy import CHAT_ID, COUNT, EMAIL, IDENT, STR_LIST, VOTE, choice, rule_accepts
from mcp_state.repositories.base import check_choice, check_id, check_non_negative, check_str_list
from mcp_state.repositories.notifications import _check_chat_id
from mcp_state.repositories.users import _check_email
from mcp_state.types import KNOWLEDGE_STATUSES, ROLES


@pytest.fixture(scope="module")
def conn():
    connection = connect(":memory:")
    yield connection
    connection.close()


def python_accepts(check, value) -> bool:
    try:
        return check(value) is not False
    except InvalidArgumentError:
        return False


WHITESPACE = [
    " ",
    "\t",
    "\n",
    "\x0b",
    "\x0c",
    "\r",
    "\x1c",
    "\x1f",
    "\x85",
    "\xa0",
    "\u1680",
    "\u2003",
    "\u2028",
    "\u202f",
    "\u3000",
    "\u200b",
]
MIXED = [
    "",
    "a",
    " a",
    "a ",
    "é",
    "x" * 1024,
    "x" * 1025,
    "é" * 1024,
    "é" * 1025,
    0,
    1,
    -1,
    5,
    2**63 - 1,
    2**63,
    -(2**63),
    1.0,
    1.5,
    1e3,
    True,
    False,
    [],
    ["a"],
    ["a", 1],
    {},
    {"a": 1},
    "1",
    "true",
    "a@b",
    " a@b",
    "a@b ",
    "@",
    "no-at",
    "x" * 310 + "@acme.com",
    "x" * 312 + "@acme.com",
    *WHITESPACE,
    *(w * 3 for w in WHITESPACE),
    *(f"{w}a{w}" for w in WHITESPACE),
]

CHECKS = {
    "IDENT ~ check_id": (IDENT, lambda v: check_id("x", v)),
    "EMAIL ~ _check_email": (EMAIL, _check_email),
    # COUNT adds the range of the BIGINT column it fills.
    "COUNT ~ check_non_negative": (COUNT, lambda v: check_non_negative("x", v, optional=False) <= 2**63 - 1),
    "VOTE ~ check_choice(1, -1)": (VOTE, lambda v: check_choice("vote", v, (1, -1))),
    "ROLES ~ check_choice": (choice(ROLES), lambda v: check_choice("role", v, ROLES)),
    "STATUSES ~ check_choice": (
        choice(KNOWLEDGE_STATUSES),
        lambda v: check_choice("s", v, KNOWLEDGE_STATUSES),
    ),
    "STR_LIST ~ check_str_list": (STR_LIST, lambda v: check_str_list("tags", v)),
    "CHAT_ID ~ _check_chat_id": (CHAT_ID, _check_chat_id),
}


def disagreements(conn, rule, check, values):
    sql = rule_accepts(conn, rule, values)
    return [(v, s) for v, s in zip(values, sql, strict=True) if s != python_accepts(check, v)]


@pytest.mark.parametrize("name", list(CHECKS))
def test_each_rule_decides_like_the_repository_check(conn, name):
    rule, check = CHECKS[name]
    values = [*MIXED, *ROLES, *KNOWLEDGE_STATUSES, "Admin", "approved "]
    assert disagreements(conn, rule, check, values) == []


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**64), max_value=2**64) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=5,
).filter(lambda v: v is not None)  # null means "missing" to the migration, not "invalid"


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(JSON_VALUES, min_size=1, max_size=20))
def test_rules_agree_on_arbitrary_json(conn, values):
    for rule, check in CHECKS.values():
        assert disagreements(conn, rule, check, values) == []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    values=st.lists(
        st.text(alphabet=st.sampled_from([*WHITESPACE, "a", "@", "é", "."]), max_size=12), max_size=20
    )
)
def test_ids_and_emails_agree_on_whitespace_and_at_signs(conn, values):
    for rule, check in (CHECKS["IDENT ~ check_id"], CHECKS["EMAIL ~ _check_email"]):
        assert disagreements(conn, rule, check, values) == []
