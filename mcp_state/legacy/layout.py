"""The legacy JSON layout (``LAYOUT.md``), described once, and the rules its values follow.

``KINDS`` says, for every kind of entry, which file holds it and where, which table it fills,
how each value maps to a column and which rule the value must follow. The migration reads
with it (``mcp_state.legacy.migrate``) and the export writes with it (``mcp_state.legacy.export``).

The rules are SQL, so that a million entries are checked inside DuckDB; each mirrors the
repository check that guards the same column (``mcp_state.repositories``; the value sets
come from ``mcp_state.types``), and ``tests/test_migration_rules.py`` proves that they
decide alike value for value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import Any, get_args

import duckdb

from mcp_state.types import (
    ACCESS_LEVELS,
    KNOWLEDGE_STATUSES,
    ROLES,
    SCRIPT_STATUSES,
    SYNC_STATUSES,
    TABLE_MODES,
    Vote,
)

MAX_ID_LENGTH = 1024  # check_id
MAX_EMAIL_LENGTH = 320  # users._check_email
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
# Every character Python's str.strip() removes (str.isspace), as an RE2 class.
_SPACE = r"[\s\x{0b}\x{1c}-\x{1f}\x{85}\p{Z}]".replace("{", "{{").replace("}", "}}")


# -- rules: how one JSON value is checked and converted ------------------------------------
class Params(dict[str, Any]):
    """Named parameters of one statement: ``add(value)`` returns its placeholder."""

    def add(self, value: Any) -> str:
        name = f"p{len(self)}"
        self[name] = value
        return f"${name}"


@dataclass(frozen=True)
class Rule:
    """A check of one JSON value and its conversion, in SQL.

    The templates see ``{j}``, the value's minified JSON text (``json_extract`` writes it);
    ``{s}``, its string value (NULL unless it is a JSON string); ``{ts}``, ``{s}`` cast to a
    timestamp; and ``{allowed}``, the rule's value set. Testing the JSON text instead of
    calling ``json_type`` keeps a million-line audit log cheap to check.
    """

    expect: str  # completes "X must be ..."
    ok: str  # SQL: true when the (present) value is acceptable
    value: str  # SQL: the value to store
    allowed: tuple[Any, ...] = ()

    @property
    def needs_string(self) -> bool:
        return "{s}" in self.ok + self.value or self.needs_timestamp

    @property
    def needs_timestamp(self) -> bool:
        return "{ts}" in self.ok + self.value

    def sql_ok(self, names: dict[str, str], params: Params) -> str:
        allowed = params.add(list(self.allowed)) if self.allowed else "NULL"
        return "(" + self.ok.format(allowed=allowed, **names) + ")"

    def sql_value(self, names: dict[str, str]) -> str:
        return self.value.format(**names)


_INTEGER = "regexp_full_match({j}, '-?[0-9]+')"  # a JSON integer (try_cast alone takes 1.0, 1e2, 0x10)


def choice(values: tuple[Any, ...]) -> Rule:
    """check_choice: one of ``values`` (booleans never match)."""
    if all(isinstance(x, int) for x in values):  # compared as numbers: 1.0 is 1, as in Python
        return Rule(
            f"one of {', '.join(map(str, sorted(values)))}",
            "json_type({j}::JSON) IN ('UBIGINT', 'BIGINT', 'DOUBLE') "
            "AND list_contains({allowed}, try_cast({j} AS DOUBLE))",
            "try_cast({j} AS DOUBLE)::INTEGER",
            values,
        )
    return Rule(f"one of {', '.join(values)}", "list_contains({allowed}, {s})", "{s}", values)


def _count(maximum: int) -> Rule:
    """check_non_negative, bounded by the column's type."""
    return Rule(
        "a whole number of 0 or more",
        f"regexp_full_match({{j}}, '[0-9]+') AND try_cast({{j}} AS UBIGINT) <= {maximum}",
        "try_cast({j} AS BIGINT)",
    )


IDENT = Rule(  # check_id: a string that is not blank (the regexp only runs when it starts oddly)
    f"a non-empty string of at most {MAX_ID_LENGTH} characters",
    f"{{s}} IS NOT NULL AND CASE WHEN ascii({{s}}) BETWEEN 33 AND 126 THEN true "
    f"ELSE NOT regexp_full_match({{s}}, '{_SPACE}*') END "
    f"AND (strlen({{s}}) <= {MAX_ID_LENGTH} OR length({{s}}) <= {MAX_ID_LENGTH})",
    "{s}",
)
EMAIL = Rule(  # users._check_email
    "an email address like name@domain",
    f"contains({{s}}, '@') AND length({{s}}) <= {MAX_EMAIL_LENGTH} "
    f"AND NOT regexp_matches({{s}}, '^{_SPACE}|{_SPACE}$')",
    "{s}",
)
TEXT = Rule("a string", "{s} IS NOT NULL", "{s}")
TIMESTAMP = Rule(
    "an ISO 8601 date or time from year 1 to 9999 (in UTC), such as 2026-03-27 or 2026-03-27T08:00:00Z",
    r"isfinite({ts}) AND regexp_matches({s}, '^\d{{4}}-\d\d-\d\d') "
    "AND {ts} BETWEEN TIMESTAMPTZ '0001-01-01 00:00:00+00' AND TIMESTAMPTZ '9999-12-31 23:59:59.999999+00'",
    "{ts}::TIMESTAMP",  # UTC: every connection's zone is UTC (db.connect)
)
CHAT_ID = Rule(  # notifications._check_chat_id
    "a whole number (a Telegram chat id)",
    f"{_INTEGER} AND try_cast({{j}} AS BIGINT) IS NOT NULL",
    "try_cast({j} AS BIGINT)",
)
STR_LIST = Rule(  # check_str_list
    "a list of strings",
    "starts_with({j}, '[') AND list_has_all(['VARCHAR'], json_type({j}::JSON, '$[*]'))",
    "{j}::JSON",
)
OBJECT = Rule("a JSON object", "starts_with({j}, '{{')", "{j}::JSON")
BOOL = Rule("true or false", "{j} IN ('true', 'false')", "{j} = 'true'")
ANY_JSON = Rule("any JSON value", "true", "{j}::JSON")
COUNT = _count(INT64_MAX)
COUNT32 = _count(INT32_MAX)
VOTE = choice(tuple(sorted(get_args(Vote))))


# -- the layout ----------------------------------------------------------------------------
class Shape(Enum):
    LINES = "one JSON object per line"
    LIST = "a JSON list"
    MAP = "a JSON object keyed by id"
    NESTED_MAP = "a JSON object of JSON objects"


class Source(Enum):
    ENTRY = "a key of the entry"
    KEY = "the entry's key"
    PARENT_KEY = "the key of the entry's parent"
    VALUE = "the entry itself"
    PARENT = "a key of the entry's parent"
    REST = "the entry without the keys of its other fields"


@dataclass(frozen=True)
class Field:
    column: str
    rule: Rule
    source: Source = Source.ENTRY
    key: str = ""  # the JSON key (ENTRY, PARENT); default: the column name
    required: bool = False
    default: Any = None  # stored when the value is missing (or null)
    default_column: str | None = None  # ... or the value of this column
    shorthand: bool = False  # the entry may be this value alone (``"sales": true``)

    @property
    def json_key(self) -> str:
        return self.key or self.column


@dataclass(frozen=True)
class Reference:
    """``column`` must name a row of ``table.target``, staged by ``kind`` or already stored."""

    column: str
    kind: str
    table: str
    target: str
    what: str


@dataclass(frozen=True)
class Kind:
    """One kind of entry: where it is in the layout, which table it fills and how."""

    name: str
    file: str
    table: str
    shape: Shape
    fields: tuple[Field, ...]
    key: tuple[str, ...]
    path: str = "$"  # where the entries are in the document
    child: str = "$"  # NESTED_MAP: where the entries are in each parent entry
    container: str = ""  # for messages: what the entries are keyed by
    entry_types: tuple[str, ...] = ("OBJECT",)  # () = any: a VALUE field checks it
    unique: tuple[tuple[str, str], ...] = ()  # (SQL over columns, what it is) besides the key
    generated_key: str = ""  # prefix of ids made from the content when an entry has none
    ordered: bool = False  # has a ``seq`` column: new rows are numbered in file order
    append_only: bool = False  # a stored row is never rewritten: an entry that differs is a problem
    insert_nulls: tuple[str, ...] = ()  # columns the layout has no place for
    checks: tuple[tuple[str, str], ...] = ()  # (SQL over columns that is a problem, message)
    references: tuple[Reference, ...] = ()
    db_unique: tuple[str, ...] = ()  # columns unique in the table (compared case-insensitively)

    @property
    def columns(self) -> list[str]:
        return [f.column for f in self.fields]

    @property
    def compared(self) -> list[str]:
        return [c for c in self.columns if c not in self.key]


_SYNC_STATE = "src_data/metadata/sync_state.json"

KINDS: tuple[Kind, ...] = (
    Kind(
        "sync_state",
        _SYNC_STATE,
        "sync_state",
        Shape.MAP,
        path="$.tables",
        container="table id",
        key=("table_id",),
        fields=(
            Field("table_id", IDENT, Source.KEY),
            Field("last_sync", TIMESTAMP, required=True),
            Field("rows", COUNT, required=True),
            Field("file_size_bytes", COUNT, required=True),
            Field("uncompressed_size_bytes", COUNT),
            Field("columns", COUNT32),
            Field("hash", TEXT),
            Field("status", choice(SYNC_STATUSES), default="ok"),
            Field("error", TEXT),
        ),
    ),
    Kind(
        "sync_history",
        _SYNC_STATE,
        "sync_history",
        Shape.LIST,
        path="$.history",
        key=("id",),
        generated_key="h-",
        ordered=True,
        fields=(
            Field("id", IDENT),
            Field("table_id", IDENT, required=True),
            Field("synced_at", TIMESTAMP, required=True),
            Field("rows", COUNT, required=True),
            Field("duration_ms", COUNT32),
            Field("status", choice(SYNC_STATUSES)),
            Field("error", TEXT),
        ),
    ),
    Kind(
        "sync_settings",
        "notifications/sync_settings.json",
        "user_sync_settings",
        Shape.NESTED_MAP,
        child="$.datasets",
        container="user id, then dataset",
        key=("user_id", "dataset"),
        entry_types=("OBJECT", "BOOLEAN"),
        fields=(
            Field("user_id", IDENT, Source.PARENT_KEY),
            Field("dataset", IDENT, Source.KEY),
            Field("enabled", BOOL, required=True, shorthand=True),
            Field("table_mode", choice(TABLE_MODES), default="all"),
            Field("tables", STR_LIST),
            Field("updated_at", TIMESTAMP, Source.PARENT),
        ),
        checks=(  # SyncSettingsRepository.set
            ("table_mode = 'selected' AND tables IS NULL", 'table_mode "selected" needs the list of tables'),
            (
                "table_mode = 'all' AND json_array_length(tables) > 0",
                'tables are only used with table_mode "selected"; leave them out for "all"',
            ),
        ),
    ),
    Kind(
        "knowledge",
        "corporate-memory/knowledge.json",
        "knowledge_items",
        Shape.LIST,
        key=("id",),
        fields=(
            Field("id", IDENT, required=True),
            Field("title", IDENT, required=True),
            Field("content", TEXT),
            Field("category", TEXT),
            Field("tags", STR_LIST),
            Field("status", choice(KNOWLEDGE_STATUSES), default="pending"),
            Field("contributors", STR_LIST),
            Field("source_user", TEXT),
            Field("audience", TEXT),
            Field("created_at", TIMESTAMP),
            Field("updated_at", TIMESTAMP),
        ),
    ),
    Kind(
        "votes",
        "corporate-memory/votes.json",
        "knowledge_votes",
        Shape.NESTED_MAP,
        container="item id, then user id",
        key=("item_id", "user_id"),
        entry_types=(),
        insert_nulls=("voted_at",),
        fields=(
            Field("item_id", IDENT, Source.PARENT_KEY),
            Field("user_id", IDENT, Source.KEY),
            Field("vote", VOTE, Source.VALUE, required=True),
        ),
        references=(Reference("item_id", "knowledge", "knowledge_items", "id", "knowledge item"),),
    ),
    Kind(
        "telegram",
        "notifications/telegram_users.json",
        "telegram_links",
        Shape.MAP,
        container="user id",
        key=("user_id",),
        fields=(
            Field("user_id", IDENT, Source.KEY),
            Field("chat_id", CHAT_ID, required=True),
            Field("linked_at", TIMESTAMP),
        ),
    ),
    Kind(
        "pending_codes",
        "notifications/pending_codes.json",
        "pending_codes",
        Shape.MAP,
        container="code",
        key=("code",),
        fields=(
            Field("code", IDENT, Source.KEY),
            Field("chat_id", CHAT_ID, required=True),
            Field("created_at", TIMESTAMP),
        ),
    ),
    Kind(
        "scripts",
        "notifications/scripts.json",
        "script_registry",
        Shape.MAP,
        container="script id",
        key=("id",),
        fields=(
            Field("id", IDENT, Source.KEY),
            Field("name", IDENT, required=True),
            Field("owner", TEXT),
            Field("schedule", TEXT),
            Field("source", TEXT, required=True),
            Field("deployed_at", TIMESTAMP),
            Field("last_run", TIMESTAMP),
            Field("last_status", choice(SCRIPT_STATUSES)),
        ),
    ),
    Kind(
        "table_registry",
        "src_data/metadata/table_registry.json",
        "table_registry",
        Shape.MAP,
        path="$.tables",
        container="table id",
        key=("id",),
        fields=(
            Field("id", IDENT, Source.KEY),
            Field("name", IDENT, required=True),
            Field("folder", TEXT),
            Field("sync_strategy", TEXT),
            Field("primary_key", TEXT),
            Field("description", TEXT),
            Field("registered_by", TEXT),
            Field("registered_at", TIMESTAMP),
        ),
    ),
    Kind(
        "profiles",
        "src_data/metadata/profiles.json",
        "table_profiles",
        Shape.MAP,
        container="table id",
        key=("table_id",),
        fields=(
            Field("table_id", IDENT, Source.KEY),
            Field("profile", OBJECT, Source.REST),
            Field("profiled_at", TIMESTAMP),
        ),
    ),
    Kind(
        "users",
        "auth/users.json",
        "users",
        Shape.MAP,
        container="email",
        key=("id",),
        unique=(("lower(email)", "email (emails are compared case-insensitively)"),),
        db_unique=("email",),
        insert_nulls=("updated_at",),
        fields=(
            Field("email", EMAIL, Source.KEY),
            Field("id", IDENT, default_column="email"),
            Field("name", TEXT),
            Field("role", choice(ROLES), default="analyst"),
            Field("password_hash", TEXT),
            Field("setup_token", TEXT),
            Field("setup_token_created", TIMESTAMP),
            Field("reset_token", TEXT),
            Field("reset_token_created", TIMESTAMP),
            Field("created_at", TIMESTAMP),
        ),
    ),
    Kind(
        "permissions",
        "auth/dataset_permissions.json",
        "dataset_permissions",
        Shape.NESTED_MAP,
        container="user id, then dataset",
        key=("user_id", "dataset"),
        entry_types=(),
        fields=(
            Field("user_id", IDENT, Source.PARENT_KEY),
            Field("dataset", IDENT, Source.KEY),
            Field("access", choice(ACCESS_LEVELS), Source.VALUE, required=True),
        ),
    ),
    Kind(
        "audit",
        "audit/audit.jsonl",
        "audit_log",
        Shape.LINES,
        key=("id",),
        generated_key="a-",
        ordered=True,
        append_only=True,
        fields=(
            Field("id", IDENT),
            Field("timestamp", TIMESTAMP, required=True),
            Field("user_id", TEXT),
            Field("action", IDENT, required=True),
            Field("resource", TEXT),
            Field("params", ANY_JSON),
            Field("result", TEXT),
            Field("duration_ms", COUNT32),
        ),
    ),
)

KIND_NAMES: tuple[str, ...] = tuple(kind.name for kind in KINDS)
LAYOUT_FILES: tuple[str, ...] = tuple(dict.fromkeys(kind.file for kind in KINDS))


# -- rules in SQL ---------------------------------------------------------------------------
def string_sql(text: str) -> str:
    """The string value of JSON ``text``; NULL unless it is a JSON string."""
    return f"CASE WHEN starts_with({text}, '\"') THEN json_extract_string({text}, '$') END"


def timestamp_sql(string: str) -> str:
    return f"try_cast({string} AS TIMESTAMPTZ)"


def ok_sql(rule: Rule, names: dict[str, str], params: Params) -> str:
    """True when the value (JSON text ``names['j']``) is present and the rule accepts it."""
    return f"({names['j']} IS NOT NULL AND coalesce({rule.sql_ok(names, params)}, false))"


def rule_accepts(conn: duckdb.DuckDBPyConnection, rule: Rule, values: list[Any]) -> list[bool]:
    """Whether ``rule`` accepts each value, as the migration decides it (for tests and docs)."""
    params = Params()
    j = "json_extract(v, '$')::VARCHAR"  # minified, as the migration sees values
    names = {"j": j, "s": string_sql(j), "ts": timestamp_sql(string_sql(j))}
    sql = f"SELECT {ok_sql(rule, names, params)} FROM unnest({params.add([json.dumps(v) for v in values])}) AS t(v)"
    return [bool(row[0]) for row in conn.execute(sql, params).fetchall()]
