"""The legitimate corpus: analytical statements an agent or analyst writes, each answered with
the right rows (worked out by hand from the seed in sql_support.py, not by DuckDB)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sql_support import CANARIES, make_server, result_text, seeded_db_path, with_client

from mcp_state.schema import TABLE_DESCRIPTIONS
from mcp_state.sql import SqlEngine, hardened_database
from mcp_state.sql.runner import SQL_ONLY_TABLES

# Every table has a redacted view of the same name; the SQL tool adds the audit archive's tables.
VIEWS = sorted([*TABLE_DESCRIPTIONS, *SQL_ONLY_TABLES])
USER_COLUMNS = [
    "id",
    "email",
    "name",
    "role",
    "setup_token_created",
    "reset_token_created",
    "created_at",
    "updated_at",
    "has_password",
    "has_setup_token",
    "has_reset_token",
]

Expected = list[list[Any]] | Callable[[dict[str, Any]], bool]


def first_column(values: list[Any]) -> Callable[[dict[str, Any]], bool]:
    return lambda result: [row[0] for row in result["rows"]] == values


def _summarize_votes(result: dict[str, Any]) -> bool:
    names = [c["name"] for c in result["columns"]]
    rows = {row[0]: dict(zip(names, row, strict=True)) for row in result["rows"]}
    return (
        list(rows) == ["item_id", "user_id", "vote", "voted_at"]
        and all(r["count"] == 5 for r in rows.values())
        and (rows["vote"]["min"], rows["vote"]["max"]) == ("-1", "1")
    )


def _show_all_tables(result: dict[str, Any]) -> bool:
    names = [c["name"] for c in result["columns"]]
    found = {(r[names.index("schema")], r[names.index("name")]) for r in result["rows"]}
    return {("redacted", v) for v in VIEWS} <= found


LEGIT: list[tuple[str, Expected]] = [
    ("SELECT count(*) AS n FROM users", [[4]]),
    (
        "SELECT id, has_password, has_setup_token, has_reset_token FROM users ORDER BY id",
        [
            ["u1", True, False, True],
            ["u2", True, True, False],
            ["u3", False, True, False],
            ["u4", True, False, False],
        ],
    ),
    ("FROM users SELECT email WHERE role = 'admin'", [["ana@example.com"]]),
    # "Which tables failed to sync twice this week?"
    (
        "SELECT table_id, count(*) AS failures FROM sync_history WHERE status = 'error' "
        "AND synced_at >= TIMESTAMP '2026-03-16' GROUP BY ALL HAVING count(*) >= 2 ORDER BY table_id",
        [["t_orders", 2]],
    ),
    # "Who approved the most knowledge items?"
    (
        "SELECT user_id, count(*) AS approvals FROM audit_log WHERE action = 'approve_knowledge' AND result = 'ok' "
        "GROUP BY ALL ORDER BY approvals DESC, user_id LIMIT 1",
        [["u1", 3]],
    ),
    # "Actions per user per day"
    (
        "SELECT user_id, timestamp::DATE AS day, count(*) AS actions FROM audit_log GROUP BY ALL ORDER BY ALL",
        [
            ["u1", "2026-03-20", 2],
            ["u1", "2026-03-21", 1],
            ["u1", "2026-03-22", 2],
            ["u2", "2026-03-20", 1],
            ["u2", "2026-03-21", 1],
            ["u2", "2026-03-22", 1],
            ["u3", "2026-03-21", 1],
            ["u4", "2026-03-22", 1],
        ],
    ),
    (
        "SELECT user_id, action FROM audit_log "
        "QUALIFY row_number() OVER (PARTITION BY user_id ORDER BY timestamp DESC) = 1 ORDER BY user_id",
        [["u1", "approve_knowledge"], ["u2", "vote"], ["u3", "vote"], ["u4", "vote"]],
    ),
    (
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 10) SELECT sum(n) AS total FROM r",
        [[55]],
    ),
    (
        "WITH RECURSIVE days(d) AS (SELECT DATE '2026-03-20' UNION ALL SELECT d + 1 FROM days "
        "WHERE d < DATE '2026-03-22') "
        "SELECT d, (SELECT count(*) FROM audit_log WHERE timestamp::DATE = d) AS n FROM days ORDER BY d",
        [["2026-03-20", 3], ["2026-03-21", 3], ["2026-03-22", 4]],
    ),
    (
        "WITH scores AS (SELECT item_id, sum(vote) AS score FROM knowledge_votes GROUP BY ALL) "
        "SELECT k.id, k.title, s.score FROM knowledge_items k JOIN scores s ON s.item_id = k.id "
        "ORDER BY s.score DESC, k.id",
        [["k1", "Revenue definition", 1], ["k2", "Churn", 1], ["k3", "On-call runbook", -1]],
    ),
    (
        "SELECT k.id, count(v.user_id) AS votes FROM knowledge_items k "
        "LEFT JOIN knowledge_votes v ON v.item_id = k.id GROUP BY ALL ORDER BY k.id",
        [["k1", 3], ["k2", 1], ["k3", 1], ["k4", 0]],
    ),
    (
        "SELECT id, sum(duration_ms) OVER (PARTITION BY table_id ORDER BY synced_at) AS running "
        "FROM sync_history WHERE table_id = 't_orders' ORDER BY synced_at",
        [["h1", 1200], ["h2", 4200], ["h3", 7200]],
    ),
    (
        "SELECT id, rows - lag(rows) OVER (ORDER BY synced_at) AS delta FROM sync_history "
        "WHERE table_id = 't_events' ORDER BY synced_at",
        [["h4", None], ["h5", -5]],
    ),
    (
        "SELECT user_id, count(*) AS n, rank() OVER (ORDER BY count(*) DESC) AS r FROM audit_log "
        "GROUP BY ALL ORDER BY r, user_id",
        [["u1", 5, 1], ["u2", 3, 2], ["u3", 1, 3], ["u4", 1, 3]],
    ),
    (
        "PIVOT (SELECT user_id, action FROM audit_log) ON action IN ('approve_knowledge', 'vote') "
        "USING count(*) ORDER BY user_id",
        [["u1", 3, 0], ["u2", 1, 2], ["u3", 0, 1], ["u4", 0, 1]],
    ),
    (
        "SELECT * FROM (SELECT user_id, result FROM audit_log) "
        "PIVOT (count(*) FOR result IN ('ok', 'error')) ORDER BY user_id",
        [["u1", 5, 0], ["u2", 2, 1], ["u3", 1, 0], ["u4", 1, 0]],
    ),
    (
        "UNPIVOT (SELECT table_id, rows, file_size_bytes FROM sync_state WHERE table_id = 't_users') "
        "ON rows, file_size_bytes INTO NAME metric VALUE amount ORDER BY metric",
        [["t_users", "file_size_bytes", 40], ["t_users", "rows", 4]],
    ),
    ("DESCRIBE users", first_column(USER_COLUMNS)),
    (
        "DESCRIBE SELECT id, has_password FROM users",
        lambda r: [row[:2] for row in r["rows"]] == [["id", "VARCHAR"], ["has_password", "BOOLEAN"]],
    ),
    ("SHOW TABLES", lambda r: sorted({row[0] for row in r["rows"]}) == VIEWS),
    ("SHOW ALL TABLES", _show_all_tables),
    ("SUMMARIZE knowledge_votes", _summarize_votes),
    ("FROM knowledge_items SELECT id WHERE status = 'approved' ORDER BY id", [["k1"], ["k2"]]),
    (
        "SELECT params->>'$.item' AS item, count(*) AS votes FROM audit_log WHERE action = 'vote' "
        "GROUP BY ALL ORDER BY ALL",
        [["k1", 3], ["k3", 1]],
    ),
    (
        "SELECT sum(CAST(json_extract(params, '$.rows') AS INTEGER)) AS synced FROM audit_log "
        "WHERE action = 'record_sync'",
        [[105]],
    ),
    (
        "SELECT id, json_array_length(tags) AS n FROM knowledge_items ORDER BY id",
        [["k1", 2], ["k2", 1], ["k3", 2], ["k4", 2]],
    ),
    (
        "SELECT tag, count(*) AS n FROM (SELECT unnest(from_json(tags, '[\"VARCHAR\"]')) AS tag FROM knowledge_items) "
        "GROUP BY ALL ORDER BY n DESC, tag",
        [["metrics", 3], ["finance", 1], ["legacy", 1], ["ops", 1], ["runbook", 1]],
    ),
    (
        "SELECT k.id, e.value->>'$' AS tag FROM knowledge_items k, json_each(k.tags) e "
        "WHERE k.id = 'k3' ORDER BY e.key",
        [["k3", "ops"], ["k3", "runbook"]],
    ),
    ("SELECT id FROM knowledge_items WHERE list_contains(tags::VARCHAR[], 'finance')", [["k1"]]),
    (
        "SELECT tags, contributors FROM knowledge_items WHERE id = 'k1'",
        [[["metrics", "finance"], ["u1", "u2"]]],
    ),
    (
        "SELECT table_id, (profile->>'$.row_count')::INTEGER AS n, json_array_length(profile->'$.columns') AS cols "
        "FROM table_profiles",
        [["t_orders", 100, 2]],
    ),
    (
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'redacted' ORDER BY 1",
        [[v] for v in sorted(VIEWS)],
    ),
    ("SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = 'redacted'", [[len(VIEWS)]]),
    (
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'redacted' "
        "AND table_name = 'api_tokens' ORDER BY ordinal_position",
        [["id"], ["actor"], ["scope"], ["created_at"], ["last_used_at"], ["revoked_at"]],
    ),
    (
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'redacted' "
        "AND table_name = 'pending_codes' ORDER BY ordinal_position",
        [["chat_id"], ["created_at"]],
    ),
    ("SELECT sum(range) AS s FROM range(101)", [[5050]]),
    (
        "SELECT count(*) AS days FROM generate_series(TIMESTAMP '2026-03-01', TIMESTAMP '2026-03-31', INTERVAL 1 DAY)",
        [[31]],
    ),
    ("SELECT id FROM users EXCEPT SELECT user_id FROM dataset_permissions ORDER BY 1", [["u3"], ["u4"]]),
    (
        "SELECT source_user FROM knowledge_items INTERSECT SELECT user_id FROM knowledge_votes ORDER BY 1",
        [["u2"], ["u3"], ["u4"]],
    ),
    (
        "SELECT count(*) FILTER (WHERE status = 'ok') AS ok, count(*) FILTER (WHERE status = 'error') AS failed "
        "FROM sync_history",
        [[3, 5]],
    ),
    (
        "SELECT date_trunc('week', synced_at) AS week, count(*) AS runs FROM sync_history GROUP BY ALL ORDER BY ALL",
        [["2026-03-09T00:00:00Z", 2], ["2026-03-16T00:00:00Z", 6]],
    ),
    (
        "SELECT id, avg(duration_ms) OVER (ORDER BY seq ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS moving "
        "FROM audit_log ORDER BY seq LIMIT 3",
        [["a01", 12.0], ["a02", 11.0], ["a03", 7.5]],
    ),
    (
        "SELECT upper(name) AS n, split_part(email, '@', 2) AS domain FROM users WHERE id = 'u2'",
        [["BO", "example.com"]],
    ),
    (
        "SELECT regexp_extract(email, '^([a-z]+)@', 1) AS local FROM users ORDER BY id",
        [["ana"], ["bo"], ["cy"], ["di"]],
    ),
    (
        "SELECT {'a': 1, 'b': [1, 2]} AS s, [1, 2, 3] AS l, 1.10::DECIMAL(10, 2) AS d, "
        "TIMESTAMP '2026-03-20 09:00:00' AS ts, TIMESTAMPTZ '2026-03-20 09:00:00+02' AS tz, DATE '2026-03-20' AS day, "
        "'00000000-0000-0000-0000-000000000001'::UUID AS u, 'ab'::BLOB AS b, "
        "170141183460469231731687303715884105727::HUGEINT AS big, INTERVAL 90 MINUTE AS i, "
        "'nan'::DOUBLE AS nan, map([1, 2], ['x', 'y']) AS m",
        [
            [
                {"a": 1, "b": [1, 2]},
                [1, 2, 3],
                "1.10",
                "2026-03-20T09:00:00Z",
                "2026-03-20T07:00:00Z",
                "2026-03-20",
                "00000000-0000-0000-0000-000000000001",
                "YWI=",
                "170141183460469231731687303715884105727",
                "PT1H30M",
                "NaN",
                {"1": "x", "2": "y"},
            ]
        ],
    ),
    ("SELECT * FROM (VALUES (2, 'b'), (1, 'a')) t(x, y) ORDER BY x", [[1, "a"], [2, "b"]]),
    (
        "SELECT id, (SELECT count(*) FROM knowledge_votes v WHERE v.user_id = u.id) AS votes FROM users u "
        "WHERE EXISTS (SELECT 1 FROM dataset_permissions p WHERE p.user_id = u.id) ORDER BY id",
        [["u1", 2], ["u2", 1]],
    ),
    (
        "SELECT list_transform([1, 2, 3], lambda x: x * 2) AS doubled, [x + 1 FOR x IN [1, 2]] AS inc",
        [[[2, 4, 6], [2, 3]]],
    ),
    ("SELECT max(COLUMNS('^(rows|duration_ms)$')) FROM sync_history", [[100, 3000]]),
    (
        "SELECT * EXCLUDE (content, created_at, updated_at, tags, contributors, change_seq, item_key) "
        "FROM knowledge_items WHERE id = 'k2'",
        [["k2", "Churn", "metrics", "approved", "u2", "all"]],
    ),
    (
        "SELECT role, count(*) AS n FROM users GROUP BY ROLLUP (role) ORDER BY role NULLS LAST",
        [["admin", 1], ["analyst", 2], ["viewer", 1], [None, 4]],
    ),
    ("SELECT median(duration_ms) AS m FROM sync_history", [[550.0]]),
    ("SELECT uuid() IS NOT NULL AS ok, random() < 1 AS r", [[True, True]]),
    ("SELECT count(*) FROM redacted.users", [[4]]),
    ("PIVOT (SELECT result FROM audit_log) ON result USING count(*)", [[1, 9]]),
    ("SELECT id FROM users WHERE has_reset_token", [["u1"]]),
    ("SELECT string_agg(id, ',' ORDER BY id DESC) AS ids FROM users", [["u4,u3,u2,u1"]]),
    (
        "SELECT table_id, CASE WHEN status = 'error' THEN 'failing' ELSE 'healthy' END AS health "
        "FROM sync_state ORDER BY table_id",
        [["t_events", "healthy"], ["t_orders", "failing"], ["t_users", "healthy"]],
    ),
    ("SELECT id, scope FROM api_tokens WHERE revoked_at IS NULL", [["tok1", "admin"]]),
    ("SELECT count(*) FROM (SELECT * FROM audit_log USING SAMPLE 100 PERCENT (bernoulli))", [[10]]),
    (
        "WITH m AS MATERIALIZED (SELECT user_id, count(*) AS n FROM audit_log GROUP BY ALL) "
        "SELECT u.name, m.n FROM users u JOIN m ON m.user_id = u.id ORDER BY m.n DESC, u.name LIMIT 2",
        [["Ana", 5], ["Bo", 3]],
    ),
]


def _matches(result: dict[str, Any], expected: Expected) -> bool:
    return expected(result) if callable(expected) else result["rows"] == expected


def test_the_corpus_is_large():
    assert len(LEGIT) >= 40
    assert len({sql for sql, _ in LEGIT}) == len(LEGIT)


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    path = seeded_db_path(tmp_path_factory.mktemp("legit") / "data")
    db = hardened_database(path, idle_release=None)
    yield SqlEngine(db, timeout=5.0)
    db.close()


@pytest.mark.parametrize(("sql", "expected"), LEGIT, ids=[f"{i:03d}" for i in range(len(LEGIT))])
def test_engine_answers(engine, sql, expected):
    result = engine.query(sql)
    assert _matches(result, expected), result["rows"]
    assert result["row_count"] == len(result["rows"]) and not result["truncated"]


def test_legit_corpus_through_mcp(tmp_path):
    path = seeded_db_path(tmp_path / "data")

    async def run_all(client):
        return [await client.call_tool("sql_query", {"sql": sql, "limit": 1000}) for sql, _ in LEGIT]

    results = with_client(make_server(path), run_all)
    failed = [sql for (sql, _), r in zip(LEGIT, results, strict=True) if r.is_error]
    assert failed == [], [result_text(r) for r in results if r.is_error]
    wrong = [
        sql
        for (sql, expected), r in zip(LEGIT, results, strict=True)
        if not _matches(r.structured_content, expected)
    ]
    assert wrong == []
    assert not any(c in result_text(r) for r in results for c in CANARIES)
