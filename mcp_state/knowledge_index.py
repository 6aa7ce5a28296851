"""The word index of knowledge items (table ``knowledge_words``): how items become index rows.

One row per (word, item): the word (lower case letters and digits, at most 64 of them) is in
the item's title, tags or content; ``in_title``/``in_tags`` say where, ``hits`` how often, and
``item_key`` is the item's integer key (``knowledge_items.item_key``, migration 6), so search
groups and joins on an integer, not on the id text. Written in the same transaction as the
item (``KnowledgeRepository``), by a legacy import, and checked by ``mcp-state verify``.
"""

from __future__ import annotations

# The index rows of the items ``{where}`` selects, as (word, item_id, in_title, in_tags, hits,
# item_key): ``mcp-state verify`` compares the table with this.
WORDS_SELECT = r"""
WITH src AS (SELECT id, item_key, title, tags, content FROM knowledge_items {where}),
words AS (
    SELECT id, item_key, 1 AS part, unnest(regexp_extract_all(lower(title), '[\pL\pN]+')) AS word FROM src
    UNION ALL
    SELECT id, item_key, 2, unnest(regexp_extract_all(lower(coalesce(CAST(tags AS VARCHAR), '')), '[\pL\pN]+'))
    FROM src
    UNION ALL
    SELECT id, item_key, 3, unnest(regexp_extract_all(lower(coalesce(content, '')), '[\pL\pN]+')) FROM src
)
SELECT word, id, bool_or(part = 1), bool_or(part = 2), count(*)::INTEGER, item_key
FROM words WHERE length(word) <= 64 GROUP BY word, id, item_key
"""

# Rows go in sorted by word, so that after a bulk build (a migration, a legacy import) the row
# groups' min/max let a lookup of one word skip nearly all of the table.
WORDS_OF = (
    "INSERT INTO knowledge_words (word, item_id, in_title, in_tags, hits, item_key)"
    + WORDS_SELECT
    + "ORDER BY word\n"
)

# Migration 6: every item gets an integer key from a sequence (existing items numbered in
# turn, new ones by the column default), and every index row the key of its item. Plain SQL
# that PostgreSQL accepts as well. No NOT NULL: DuckDB cannot add one in the transaction that
# filled the column; every write fills it (the default, WORDS_OF) and `mcp-state verify` checks.
V6_ITEM_KEYS = """
CREATE SEQUENCE IF NOT EXISTS knowledge_item_key_seq;
ALTER TABLE knowledge_items ADD COLUMN item_key BIGINT;
ALTER TABLE knowledge_items ALTER COLUMN item_key SET DEFAULT nextval('knowledge_item_key_seq');
UPDATE knowledge_items SET item_key = nextval('knowledge_item_key_seq');
ALTER TABLE knowledge_words ADD COLUMN item_key BIGINT;
UPDATE knowledge_words AS w SET item_key = k.item_key FROM knowledge_items AS k WHERE k.id = w.item_id;
CREATE OR REPLACE VIEW redacted.knowledge_items AS SELECT * FROM main.knowledge_items;
CREATE OR REPLACE VIEW redacted.knowledge_words AS SELECT * FROM main.knowledge_words;
"""
