"""The database schema as numbered migrations, and a description of every column.

Each migration is applied once, in its own transaction, and recorded in ``schema_version``
(``mcp_state.migrations`` applies them; ``mcp_state.schema_pg`` has their PostgreSQL text).
Never edit a migration that has shipped: add a new one at the end of ``MIGRATIONS``.

Timestamps are ``TIMESTAMP`` (no zone) holding UTC; the query gateway converts on the way
in and out, and every connection runs with ``TimeZone = 'UTC'`` so ``current_timestamp``
defaults are UTC too. Tables whose rows are listed "newest first" carry a ``seq`` column
from a sequence, so two rows with one timestamp still have a total order.
"""

from __future__ import annotations

from dataclasses import dataclass

from mcp_state.knowledge_index import V6_ITEM_KEYS


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def postgres(self) -> str | None:
        """Its text for PostgreSQL (``mcp_state.schema_pg``), or None while it has none."""
        from mcp_state import schema_pg  # it ports this module's text

        return schema_pg.MIGRATIONS.get(self.version)


_V1_SEED_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER NOT NULL,
    applied_at TIMESTAMP DEFAULT current_timestamp
);

CREATE TABLE IF NOT EXISTS users (
    id VARCHAR PRIMARY KEY,
    email VARCHAR UNIQUE NOT NULL,
    name VARCHAR,
    role VARCHAR DEFAULT 'analyst',
    password_hash VARCHAR,
    setup_token VARCHAR,
    setup_token_created TIMESTAMP,
    reset_token VARCHAR,
    reset_token_created TIMESTAMP,
    created_at TIMESTAMP DEFAULT current_timestamp,
    updated_at TIMESTAMP
);

CREATE TABLE IF NOT EXISTS sync_state (
    table_id VARCHAR PRIMARY KEY,
    last_sync TIMESTAMP,
    rows BIGINT,
    file_size_bytes BIGINT,
    uncompressed_size_bytes BIGINT,
    columns INTEGER,
    hash VARCHAR,
    status VARCHAR DEFAULT 'ok',
    error TEXT
);

CREATE SEQUENCE IF NOT EXISTS sync_history_seq;
CREATE TABLE IF NOT EXISTS sync_history (
    id VARCHAR PRIMARY KEY,
    table_id VARCHAR NOT NULL,
    synced_at TIMESTAMP NOT NULL,
    rows BIGINT,
    duration_ms INTEGER,
    status VARCHAR,
    error TEXT,
    seq BIGINT NOT NULL DEFAULT nextval('sync_history_seq')
);

CREATE TABLE IF NOT EXISTS user_sync_settings (
    user_id VARCHAR NOT NULL,
    dataset VARCHAR NOT NULL,
    enabled BOOLEAN DEFAULT false,
    table_mode VARCHAR DEFAULT 'all',
    tables JSON,
    updated_at TIMESTAMP,
    PRIMARY KEY (user_id, dataset)
);

CREATE TABLE IF NOT EXISTS knowledge_items (
    id VARCHAR PRIMARY KEY,
    title VARCHAR NOT NULL,
    content TEXT,
    category VARCHAR,
    tags JSON,
    status VARCHAR DEFAULT 'pending',
    contributors JSON,
    source_user VARCHAR,
    audience VARCHAR,
    created_at TIMESTAMP DEFAULT current_timestamp,
    updated_at TIMESTAMP
);

CREATE TABLE IF NOT EXISTS knowledge_votes (
    item_id VARCHAR NOT NULL,
    user_id VARCHAR NOT NULL,
    vote INTEGER,
    voted_at TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (item_id, user_id)
);

CREATE SEQUENCE IF NOT EXISTS audit_log_seq;
CREATE TABLE IF NOT EXISTS audit_log (
    id VARCHAR PRIMARY KEY,
    timestamp TIMESTAMP NOT NULL DEFAULT current_timestamp,
    user_id VARCHAR,
    action VARCHAR NOT NULL,
    resource VARCHAR,
    params JSON,
    result VARCHAR,
    duration_ms INTEGER,
    seq BIGINT NOT NULL DEFAULT nextval('audit_log_seq')
);

CREATE TABLE IF NOT EXISTS telegram_links (
    user_id VARCHAR PRIMARY KEY,
    chat_id BIGINT NOT NULL,
    linked_at TIMESTAMP DEFAULT current_timestamp
);

CREATE TABLE IF NOT EXISTS pending_codes (
    code VARCHAR PRIMARY KEY,
    chat_id BIGINT NOT NULL,
    created_at TIMESTAMP DEFAULT current_timestamp
);

CREATE TABLE IF NOT EXISTS script_registry (
    id VARCHAR PRIMARY KEY,
    name VARCHAR NOT NULL,
    owner VARCHAR,
    schedule VARCHAR,
    source TEXT NOT NULL,
    deployed_at TIMESTAMP DEFAULT current_timestamp,
    last_run TIMESTAMP,
    last_status VARCHAR
);

CREATE TABLE IF NOT EXISTS table_registry (
    id VARCHAR PRIMARY KEY,
    name VARCHAR NOT NULL,
    folder VARCHAR,
    sync_strategy VARCHAR,
    primary_key VARCHAR,
    description TEXT,
    registered_by VARCHAR,
    registered_at TIMESTAMP DEFAULT current_timestamp
);

CREATE TABLE IF NOT EXISTS table_profiles (
    table_id VARCHAR PRIMARY KEY,
    profile JSON NOT NULL,
    profiled_at TIMESTAMP DEFAULT current_timestamp
);

CREATE TABLE IF NOT EXISTS dataset_permissions (
    user_id VARCHAR NOT NULL,
    dataset VARCHAR NOT NULL,
    access VARCHAR DEFAULT 'read',
    PRIMARY KEY (user_id, dataset)
);

CREATE INDEX IF NOT EXISTS sync_history_table_idx ON sync_history (table_id);
CREATE INDEX IF NOT EXISTS audit_log_time_idx ON audit_log (timestamp);
"""

_V2_API_TOKENS = """
CREATE TABLE IF NOT EXISTS api_tokens (
    id VARCHAR PRIMARY KEY,
    actor VARCHAR NOT NULL,
    scope VARCHAR NOT NULL,
    token_hash VARCHAR NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
    last_used_at TIMESTAMP,
    revoked_at TIMESTAMP
);
"""

_V3_REDACTED_VIEWS = """
CREATE SCHEMA IF NOT EXISTS redacted;
CREATE OR REPLACE VIEW redacted.users AS
    SELECT * EXCLUDE (password_hash, setup_token, reset_token),
           password_hash IS NOT NULL AS has_password,
           setup_token IS NOT NULL AS has_setup_token,
           reset_token IS NOT NULL AS has_reset_token
    FROM main.users;
CREATE OR REPLACE VIEW redacted.pending_codes AS SELECT * EXCLUDE (code) FROM main.pending_codes;
CREATE OR REPLACE VIEW redacted.api_tokens AS SELECT * EXCLUDE (token_hash) FROM main.api_tokens;
CREATE OR REPLACE VIEW redacted.sync_state AS SELECT * FROM main.sync_state;
CREATE OR REPLACE VIEW redacted.sync_history AS SELECT * FROM main.sync_history;
CREATE OR REPLACE VIEW redacted.user_sync_settings AS SELECT * FROM main.user_sync_settings;
CREATE OR REPLACE VIEW redacted.knowledge_items AS SELECT * FROM main.knowledge_items;
CREATE OR REPLACE VIEW redacted.knowledge_votes AS SELECT * FROM main.knowledge_votes;
CREATE OR REPLACE VIEW redacted.audit_log AS SELECT * FROM main.audit_log;
CREATE OR REPLACE VIEW redacted.telegram_links AS SELECT * FROM main.telegram_links;
CREATE OR REPLACE VIEW redacted.script_registry AS SELECT * FROM main.script_registry;
CREATE OR REPLACE VIEW redacted.table_registry AS SELECT * FROM main.table_registry;
CREATE OR REPLACE VIEW redacted.table_profiles AS SELECT * FROM main.table_profiles;
CREATE OR REPLACE VIEW redacted.dataset_permissions AS SELECT * FROM main.dataset_permissions;
CREATE OR REPLACE VIEW redacted.schema_version AS SELECT * FROM main.schema_version;
"""

# The words of knowledge items (title, tags, content), one row per (word, item), as migration 4
# built them; since migration 6 the index's rows are written by mcp_state.knowledge_index.
_V4_WORDS_OF = r"""
INSERT INTO knowledge_words (word, item_id, in_title, in_tags, hits)
WITH src AS (SELECT id, title, tags, content FROM knowledge_items {where}),
words AS (
    SELECT id, 1 AS part, unnest(regexp_extract_all(lower(title), '[\pL\pN]+')) AS word FROM src
    UNION ALL
    SELECT id, 2, unnest(regexp_extract_all(lower(coalesce(CAST(tags AS VARCHAR), '')), '[\pL\pN]+')) FROM src
    UNION ALL
    SELECT id, 3, unnest(regexp_extract_all(lower(coalesce(content, '')), '[\pL\pN]+')) FROM src
)
SELECT word, id, bool_or(part = 1), bool_or(part = 2), count(*)::INTEGER
FROM words WHERE length(word) <= 64 GROUP BY word, id
ORDER BY word
"""

_V4_KNOWLEDGE_WORDS = (
    """
CREATE TABLE IF NOT EXISTS knowledge_words (
    word VARCHAR NOT NULL,
    item_id VARCHAR NOT NULL,
    in_title BOOLEAN NOT NULL,
    in_tags BOOLEAN NOT NULL,
    hits INTEGER NOT NULL
);
CREATE OR REPLACE VIEW redacted.knowledge_words AS SELECT * FROM main.knowledge_words;
"""
    + _V4_WORDS_OF.format(where="")
    + ";\n"
)

# Order by commit sequence, not by the clock. ``change_seq``: a new number from
# knowledge_change_seq on every change of a knowledge item made through the repository (items
# imported or older than this migration have none and sort after, by time). ``note``: set on a
# sync history row when the clock stood behind the stored last_sync. No new index: DuckDB's
# top-N scan reads only the newest row groups for ``ORDER BY seq DESC LIMIT n``.
_V4_COMMIT_ORDER = """
ALTER TABLE sync_history ADD COLUMN note VARCHAR;
CREATE SEQUENCE IF NOT EXISTS knowledge_change_seq;
ALTER TABLE knowledge_items ADD COLUMN change_seq BIGINT;
"""

# Every knowledge item gets a ``change_seq``: newest first is then a sort on one plain column.
# Items without one are numbered below all others, newest by time highest (the order they had).
_V5_CHANGE_SEQ_EVERYWHERE = """
ALTER TABLE knowledge_items ALTER COLUMN change_seq SET DEFAULT nextval('knowledge_change_seq');
UPDATE knowledge_items AS k SET change_seq = n.seq
FROM (SELECT id, -row_number() OVER (
          ORDER BY coalesce(updated_at, created_at) DESC NULLS LAST, id) AS seq
      FROM knowledge_items WHERE change_seq IS NULL) AS n
WHERE k.id = n.id;
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "seed schema: the state tables", _V1_SEED_SCHEMA),
    Migration(2, "api_tokens for HTTP bearer auth", _V2_API_TOKENS),
    Migration(3, "redacted views for the read-only SQL tool", _V3_REDACTED_VIEWS),
    Migration(
        4,
        "knowledge_words index; commit order (knowledge change_seq, sync history note)",
        _V4_KNOWLEDGE_WORDS + _V4_COMMIT_ORDER,
    ),
    Migration(5, "every knowledge item has a change_seq (a plain sort column)", _V5_CHANGE_SEQ_EVERYWHERE),
    Migration(6, "knowledge item_key: an integer key for the word index", V6_ITEM_KEYS),
)

LATEST_VERSION = MIGRATIONS[-1].version

# Columns whose values are JSON documents; the gateway decodes them on the way out.
JSON_COLUMNS = frozenset({"tags", "contributors", "params", "tables", "profile"})

# Columns that hold secrets: never returned by a tool, a resource, a log line or SQL.
SECRET_COLUMNS: dict[str, frozenset[str]] = {
    "users": frozenset({"password_hash", "setup_token", "reset_token"}),
    "pending_codes": frozenset({"code"}),
    "api_tokens": frozenset({"token_hash"}),
}

TABLE_DESCRIPTIONS: dict[str, str] = {
    "users": "People who use the application, one row per account.",
    "sync_state": "Latest sync of each data table: one row per table_id.",
    "sync_history": "Every sync run; the newest has the highest seq.",
    "user_sync_settings": "Which datasets each user syncs, one row per (user_id, dataset).",
    "knowledge_items": "Corporate-memory knowledge items.",
    "knowledge_votes": "Votes on knowledge items: +1 or -1, one per (item_id, user_id).",
    "knowledge_words": "Word index of knowledge items (search_knowledge): one row per (word, item_id).",
    "audit_log": "Append-only log of every change and notable action.",
    "telegram_links": "Telegram chats linked to users.",
    "pending_codes": "One-time codes waiting to link a Telegram chat (the code itself is secret).",
    "script_registry": "Scheduled scripts deployed by users.",
    "table_registry": "Data tables registered for syncing.",
    "table_profiles": "The latest data profile of each registered table.",
    "dataset_permissions": "Per-user access levels on datasets.",
    "api_tokens": "Bearer tokens for the HTTP transport (only a hash is stored).",
    "schema_version": "Applied schema migrations.",
}

COLUMN_DESCRIPTIONS: dict[str, dict[str, str]] = {
    "users": {
        "id": "User id (legacy data uses the email).",
        "email": "Unique email address.",
        "name": "Display name.",
        "role": "One of admin, analyst, viewer.",
        "password_hash": "Secret: password hash.",
        "setup_token": "Secret: account setup token.",
        "setup_token_created": "When the setup token was issued (UTC).",
        "reset_token": "Secret: password reset token.",
        "reset_token_created": "When the reset token was issued (UTC).",
        "created_at": "When the account was created (UTC).",
        "updated_at": "When the account last changed (UTC).",
    },
    "sync_state": {
        "table_id": "Id of the synced table.",
        "last_sync": "When the table last synced (UTC).",
        "rows": "Row count after the last sync.",
        "file_size_bytes": "Size of the synced file in bytes.",
        "uncompressed_size_bytes": "Uncompressed size in bytes.",
        "columns": "Number of columns.",
        "hash": "Content hash of the last synced file.",
        "status": "One of ok, error, running, skipped.",
        "error": "Error message of the last sync, if it failed.",
    },
    "sync_history": {
        "id": "Run id.",
        "table_id": "Id of the synced table.",
        "synced_at": "When the run finished (UTC).",
        "rows": "Rows synced.",
        "duration_ms": "How long the run took, in milliseconds.",
        "status": "One of ok, error, running, skipped.",
        "error": "Error message, if the run failed.",
        "seq": "Commit order: newest first is highest seq first, whatever the clock said.",
        "note": "Set when the clock stepped back: last_sync kept the later time.",
    },
    "user_sync_settings": {
        "user_id": "The user.",
        "dataset": "The dataset.",
        "enabled": "Whether the user syncs this dataset.",
        "table_mode": "all (every table) or selected (only those in tables).",
        "tables": "JSON list of table ids when table_mode is selected.",
        "updated_at": "When the setting last changed (UTC).",
    },
    "knowledge_items": {
        "id": "Item id.",
        "title": "Title.",
        "content": "Body text.",
        "category": "Free-form category, e.g. metrics.",
        "tags": "JSON list of tags.",
        "status": "One of pending, approved, rejected, archived.",
        "contributors": "JSON list of user ids who contributed.",
        "source_user": "Who proposed the item.",
        "audience": "Who the item is for, e.g. all.",
        "created_at": "When the item was created (UTC).",
        "updated_at": "When the item last changed (UTC).",
        "change_seq": "Commit order of the item's last change: most recently changed is highest.",
        "item_key": "Integer key of the item (never changes), used by the word index.",
    },
    "knowledge_votes": {
        "item_id": "The knowledge item.",
        "user_id": "The voter.",
        "vote": "+1 or -1.",
        "voted_at": "When the vote was cast (UTC).",
    },
    "knowledge_words": {
        "word": "A word (lower case letters and digits) of the item's title, tags or content.",
        "item_id": "The knowledge item.",
        "in_title": "Whether the word is in the title.",
        "in_tags": "Whether the word is in a tag.",
        "hits": "How many times the word occurs in the item.",
        "item_key": "The knowledge item's item_key.",
    },
    "audit_log": {
        "id": "Entry id.",
        "timestamp": "When it happened (UTC).",
        "user_id": "The actor.",
        "action": "What was done, e.g. a tool name.",
        "resource": "The id of what it touched.",
        "params": "JSON arguments, secrets removed.",
        "result": "ok, or the kind of error.",
        "duration_ms": "How long it took, in milliseconds.",
        "seq": "Commit order: newest first is highest seq first, whatever the clock said.",
    },
    "telegram_links": {
        "user_id": "The user.",
        "chat_id": "Telegram chat id.",
        "linked_at": "When the chat was linked (UTC).",
    },
    "pending_codes": {
        "code": "Secret: the one-time code.",
        "chat_id": "Telegram chat waiting to be linked.",
        "created_at": "When the code was issued (UTC).",
    },
    "script_registry": {
        "id": "Script id.",
        "name": "Name.",
        "owner": "Owning user.",
        "schedule": "Cron expression.",
        "source": "Script source code.",
        "deployed_at": "When it was deployed (UTC).",
        "last_run": "When it last ran (UTC).",
        "last_status": "Status of the last run: ok, error, running, skipped.",
    },
    "table_registry": {
        "id": "Table id.",
        "name": "Display name.",
        "folder": "Folder it syncs into.",
        "sync_strategy": "e.g. full or incremental.",
        "primary_key": "Primary key column(s).",
        "description": "What the table holds.",
        "registered_by": "Who registered it.",
        "registered_at": "When it was registered (UTC).",
    },
    "table_profiles": {
        "table_id": "The profiled table.",
        "profile": "JSON profile (row_count, columns, ...).",
        "profiled_at": "When the profile was taken (UTC).",
    },
    "dataset_permissions": {
        "user_id": "The user.",
        "dataset": "The dataset.",
        "access": "One of read, write, admin.",
    },
    "api_tokens": {
        "id": "Token id (safe to show).",
        "actor": "Audit actor of requests made with the token.",
        "scope": "One of read, write, admin.",
        "token_hash": "Secret: SHA-256 of the token.",
        "created_at": "When the token was created (UTC).",
        "last_used_at": "When the token was last used (UTC).",
        "revoked_at": "When the token was revoked (UTC), or null.",
    },
    "schema_version": {
        "version": "Applied migration number.",
        "applied_at": "When it was applied (UTC).",
    },
}


# The read-only SQL tool reads the views in this schema (migration 3) in place of the tables:
# each is its table without the SECRET_COLUMNS, plus the yes/no flags below. A migration that
# adds a table or a secret column must (re)create its view here too; tests/test_sql_views.py
# fails until it does.
REDACTED_SCHEMA = "redacted"

REDACTED_FLAG_COLUMNS: dict[str, dict[str, str]] = {
    "users": {
        "has_password": "Whether a password is set (the hash itself is not visible).",
        "has_setup_token": "Whether an account setup token is outstanding (the token is not visible).",
        "has_reset_token": "Whether a password reset token is outstanding (the token is not visible).",
    },
}
