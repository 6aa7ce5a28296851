"""The PostgreSQL text of each schema migration (``schema.MIGRATIONS`` names them by version).

The same tables, columns and views as on DuckDB, mostly DuckDB's own text ported (``port``):
``JSONB`` for the JSON columns, timestamps without a zone holding UTC whose defaults take UTC
whatever the session's zone; explicit column lists where DuckDB writes ``* EXCLUDE``; and the
indexes DuckDB does without (its zone maps skip row groups; PostgreSQL needs a btree for
``ORDER BY seq DESC LIMIT n`` and for one word of the knowledge index). Tables live in the
connection's first schema (``public`` unless the URL sets ``search_path``); the redacted views
in ``redacted``. Never edit a migration that has shipped: add a new one.
"""

from __future__ import annotations

import re

from mcp_state import knowledge_index, schema

NOW = "(now() AT TIME ZONE 'UTC')"
# A word of the knowledge index: a run of letters and digits (DuckDB: '[\pL\pN]+'). PostgreSQL's
# classes follow the database's LC_CTYPE: a UTF-8 locale (C.UTF-8, en_US.UTF-8) knows every letter.
WORD = "[[:alnum:]]+"


def port(duckdb_sql: str) -> str:
    """DuckDB DDL in PostgreSQL's words: JSON columns as JSONB, UTC defaults, no ``main.`` schema."""
    sql = re.sub(r"\bJSON\b", "JSONB", duckdb_sql)
    return sql.replace("DEFAULT current_timestamp", f"DEFAULT {NOW}").replace(" main.", " ")


V1_INDEXES = """
CREATE INDEX IF NOT EXISTS audit_log_seq_idx ON audit_log (seq);
CREATE INDEX IF NOT EXISTS sync_history_seq_idx ON sync_history (seq);
CREATE INDEX IF NOT EXISTS users_email_lower_idx ON users (lower(email));
"""

_PLAIN_VIEWS = (
    "sync_state",
    "sync_history",
    "user_sync_settings",
    "knowledge_items",
    "knowledge_votes",
    "audit_log",
    "telegram_links",
    "script_registry",
    "table_registry",
    "table_profiles",
    "dataset_permissions",
    "schema_version",
)


def _view(table: str) -> str:
    """A redacted view that is its table whole (re-created when the table gains a column)."""
    return f"CREATE OR REPLACE VIEW redacted.{table} AS SELECT * FROM {table};\n"


V3_REDACTED_VIEWS = """
CREATE SCHEMA IF NOT EXISTS redacted;
CREATE OR REPLACE VIEW redacted.users AS
    SELECT id, email, name, role, setup_token_created, reset_token_created, created_at, updated_at,
           password_hash IS NOT NULL AS has_password,
           setup_token IS NOT NULL AS has_setup_token,
           reset_token IS NOT NULL AS has_reset_token
    FROM users;
CREATE OR REPLACE VIEW redacted.pending_codes AS SELECT chat_id, created_at FROM pending_codes;
CREATE OR REPLACE VIEW redacted.api_tokens AS
    SELECT id, actor, scope, created_at, last_used_at, revoked_at FROM api_tokens;
""" + "".join(_view(t) for t in _PLAIN_VIEWS)

# The knowledge word index as migration 4 built it (DuckDB's text: in schema._V4_KNOWLEDGE_WORDS);
# ``{where}`` picks the items.
V4_WORDS_OF = f"""
INSERT INTO knowledge_words (word, item_id, in_title, in_tags, hits)
WITH src AS (SELECT id, title, tags, content FROM knowledge_items {{where}}),
words AS (
    SELECT id, 1 AS part, m[1] AS word FROM src, regexp_matches(lower(title), '{WORD}', 'g') AS m
    UNION ALL
    SELECT id, 2, m[1] FROM src, regexp_matches(lower(coalesce(CAST(tags AS TEXT), '')), '{WORD}', 'g') AS m
    UNION ALL
    SELECT id, 3, m[1] FROM src, regexp_matches(lower(coalesce(content, '')), '{WORD}', 'g') AS m
)
SELECT word, id, bool_or(part = 1), bool_or(part = 2), CAST(count(*) AS INTEGER)
FROM words WHERE length(word) <= 64 GROUP BY word, id
ORDER BY word
"""

# What writes an item's rows of the index now (``Dialect.knowledge_words_of``): a migration that
# changes the index's columns changes this too. Since migration 6, with the item's item_key.
WORDS_OF = f"""
INSERT INTO knowledge_words (word, item_id, in_title, in_tags, hits, item_key)
WITH src AS (SELECT id, item_key, title, tags, content FROM knowledge_items {{where}}),
words AS (
    SELECT id, item_key, 1 AS part, m[1] AS word FROM src, regexp_matches(lower(title), '{WORD}', 'g') AS m
    UNION ALL
    SELECT id, item_key, 2, m[1]
    FROM src, regexp_matches(lower(coalesce(CAST(tags AS TEXT), '')), '{WORD}', 'g') AS m
    UNION ALL
    SELECT id, item_key, 3, m[1] FROM src, regexp_matches(lower(coalesce(content, '')), '{WORD}', 'g') AS m
)
SELECT word, id, bool_or(part = 1), bool_or(part = 2), CAST(count(*) AS INTEGER), item_key
FROM words WHERE length(word) <= 64 GROUP BY word, id, item_key
ORDER BY word
"""

V4_KNOWLEDGE_WORDS_AND_COMMIT_ORDER = (
    port(  # DuckDB's table and view, with PostgreSQL's statement filling the index
        re.sub(
            r"INSERT INTO knowledge_words.*",
            lambda _: V4_WORDS_OF.format(where="") + ";\n",
            schema._V4_KNOWLEDGE_WORDS,
            flags=re.DOTALL,
        )
    )
    + """
CREATE INDEX IF NOT EXISTS knowledge_words_word_idx ON knowledge_words (word);
CREATE INDEX IF NOT EXISTS knowledge_words_item_idx ON knowledge_words (item_id);
"""
    + port(schema._V4_COMMIT_ORDER)
    + _view("sync_history")  # a view of `SELECT *` keeps the columns its table had when made
    + _view("knowledge_items")
)

V5_CHANGE_SEQ_EVERYWHERE = (
    port(schema._V5_CHANGE_SEQ_EVERYWHERE)
    + "CREATE INDEX IF NOT EXISTS knowledge_items_change_seq_idx ON knowledge_items (change_seq);\n"
)

# Migration 6 is plain SQL (knowledge_index.V6_ITEM_KEYS); PostgreSQL also gets an index for
# the join of filtered searches on item_key.
V6_ITEM_KEYS = (
    port(knowledge_index.V6_ITEM_KEYS)
    + "CREATE INDEX IF NOT EXISTS knowledge_items_item_key_idx ON knowledge_items (item_key);\n"
)

# Each migration's PostgreSQL text, by version (``schema.Migration.postgres``).
MIGRATIONS: dict[int, str] = {
    1: port(schema._V1_SEED_SCHEMA) + V1_INDEXES,
    2: port(schema._V2_API_TOKENS),
    3: V3_REDACTED_VIEWS,
    4: V4_KNOWLEDGE_WORDS_AND_COMMIT_ORDER,
    5: V5_CHANGE_SEQ_EVERYWHERE,
    6: V6_ITEM_KEYS,
}
