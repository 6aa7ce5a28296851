"""Malformed legacy files: each class stops the run with a message naming the file, the entry
and the problem, and leaves the database exactly as it was; --skip-invalid leaves them out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from migration_support import append_lines, dump, edit_json, legacy_copy

from mcp_state.db import connect
from mcp_state.errors import MigrationError
from mcp_state.legacy import migrate, migrate_all
from mcp_state.repositories import UserRepository


def truncate(path: Path) -> None:
    text = path.read_text()
    path.write_text(text[: len(text) // 2])


def knowledge_with(entry: dict) -> object:
    return lambda doc: doc.append(entry)


# (file, how to break it, text the error must contain: file, entry, problem)
CASES = {
    "truncated document": (
        "auth/users.json",
        truncate,
        ["auth/users.json, (whole file): not valid JSON", "line"],
    ),
    "truncated audit line": (
        "audit/audit.jsonl",
        lambda p: p.write_text(p.read_text() + '{"id": "a4", "timestamp": "2026-0'),
        ["audit/audit.jsonl, line 4: not valid JSON"],
    ),
    "wrong type": (
        "src_data/metadata/sync_state.json",
        lambda p: edit_json(p, lambda d: d["tables"]["orders"].update(rows="many")),
        ['sync_state.json, orders: "rows" must be a whole number of 0 or more; got "many"'],
    ),
    "vote of 5": (
        "corporate-memory/votes.json",
        lambda p: edit_json(p, lambda d: d["k1"].update({"petr@acme.com": 5})),
        ["corporate-memory/votes.json, k1/petr@acme.com: the vote must be one of -1, 1; got 5"],
    ),
    "duplicate email": (
        "auth/users.json",
        lambda p: edit_json(p, lambda d: d.update({"PETR@acme.com": {"id": "u-p2"}})),
        ["auth/users.json, PETR@acme.com: duplicate email", '"petr@acme.com"'],
    ),
    "duplicate id": (
        "corporate-memory/knowledge.json",
        lambda p: edit_json(p, knowledge_with({"id": "k1", "title": "Again"})),
        ['knowledge.json, entry #3 (id k1): duplicate id "k1"'],
    ),
    "duplicate audit id": (
        "audit/audit.jsonl",
        lambda p: append_lines(p, '{"id": "a2", "timestamp": "2026-03-28", "action": "x"}'),
        ['audit/audit.jsonl, line 4 (id a2): duplicate id "a2"'],
    ),
    "unknown value": (
        "notifications/scripts.json",
        lambda p: edit_json(p, lambda d: d["sales_alert"].update(last_status="great")),
        ['scripts.json, sales_alert: "last_status" must be one of ok, error, running, skipped; got "great"'],
    ),
    "missing field": (
        "notifications/scripts.json",
        lambda p: edit_json(p, lambda d: d["sales_alert"].pop("source")),
        ['scripts.json, sales_alert: missing "source"'],
    ),
    "bad timestamp": (
        "notifications/telegram_users.json",
        lambda p: edit_json(p, lambda d: d["petr@acme.com"].update(linked_at="yesterday")),
        ['telegram_users.json, petr@acme.com: "linked_at" must be an ISO 8601 date or time'],
    ),
    "entry not an object": (
        "auth/dataset_permissions.json",
        lambda p: edit_json(p, lambda d: d.update({"eva": "admin"})),
        ["dataset_permissions.json, eva: the entry must be a JSON object, not a string"],
    ),
    "wrong container": (
        "corporate-memory/knowledge.json",
        lambda p: p.write_text('{"k1": {"title": "MRR"}}'),
        ["knowledge.json, (whole file): the file must be a JSON list of entries, not a JSON object"],
    ),
    "vote for an unknown item": (
        "corporate-memory/votes.json",
        lambda p: edit_json(p, lambda d: d.update({"k9": {"petr@acme.com": 1}})),
        [
            'votes.json, k9/petr@acme.com: knowledge item "k9" is neither in corporate-memory/knowledge.json '
            "nor in the database"
        ],
    ),
    "selected without tables": (
        "notifications/sync_settings.json",
        lambda p: edit_json(
            p,
            lambda d: d["petr@acme.com"]["datasets"].update(
                sales={"enabled": True, "table_mode": "selected"}
            ),
        ),
        ['sync_settings.json, petr@acme.com/sales: table_mode "selected" needs the list of tables'],
    ),
    "rewritten audit entry": (
        "audit/audit.jsonl",
        lambda p: p.write_text(p.read_text().replace('"action": "login"', '"action": "logout"')),
        [
            "audit/audit.jsonl, line 1 (id a1): already in the database with other values; audit_log is append-only"
        ],
    ),
    "blank id": (
        "corporate-memory/knowledge.json",
        lambda p: edit_json(p, knowledge_with({"id": "  ", "title": "Blank"})),
        ['knowledge.json, entry #3: "id" must be a non-empty string'],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_malformed_file_stops_the_run_and_leaves_the_database_as_it_was(tmp_path, case):
    data = legacy_copy(tmp_path)
    db = data / "state" / "system.duckdb"
    migrate_all(data)
    conn = connect(db)
    UserRepository(conn).update("u-petr", role="viewer")  # the database has moved on since
    conn.close()
    before = dump(db)
    name, breaks, expected = CASES[case]
    breaks(data / name)
    with pytest.raises(MigrationError) as caught:
        migrate_all(data)
    message = str(caught.value)
    for text in expected:
        assert text in message
    assert "nothing was written" in message and "--skip-invalid" in message
    assert dump(db) == before


def test_a_failed_first_run_leaves_no_database_behind(tmp_path):
    data = legacy_copy(tmp_path)
    truncate(data / "auth/users.json")
    with pytest.raises(MigrationError):
        migrate_all(data)
    assert not (data / "state" / "system.duckdb").exists()


def test_every_problem_is_listed_not_only_the_first(tmp_path):
    data = legacy_copy(tmp_path)
    edit_json(
        data / "corporate-memory/votes.json",
        lambda d: d["k1"].update({"petr@acme.com": 5, "jana@acme.com": 2}),
    )
    append_lines(data / "audit/audit.jsonl", "not json", '{"timestamp": 5, "action": ""}')
    with pytest.raises(MigrationError) as caught:
        migrate_all(data)
    message = str(caught.value)
    assert message.startswith("4 problem(s)")
    assert "k1/petr@acme.com" in message and "k1/jana@acme.com" in message
    assert "line 4: not valid JSON" in message
    assert (
        'line 5: "timestamp" must be an ISO 8601' in message
        and '"action" must be a non-empty string' in message
    )


def test_a_database_row_with_the_email_under_another_id_is_a_conflict(tmp_path):
    data = legacy_copy(tmp_path)
    conn = connect(data / "state" / "system.duckdb")
    UserRepository(conn).create("jana-2", "Jana@acme.com", "Jana")  # emails are case-insensitive
    conn.close()
    with pytest.raises(
        MigrationError,
        match=r'auth/users.json, jana@acme.com: email "jana@acme.com" already '
        r"belongs to another row in the database \(jana-2\)",
    ):
        migrate_all(data)


def test_messages_never_show_a_secret(tmp_path):
    data = legacy_copy(tmp_path)
    edit_json(data / "notifications/pending_codes.json", lambda d: d["K7Q2ZP"].update(chat_id="x"))
    edit_json(
        data / "auth/users.json", lambda d: d["petr@acme.com"].update(password_hash=["$argon2id$secret"])
    )
    with pytest.raises(MigrationError) as caught:
        migrate_all(data)
    message = str(caught.value)
    assert 'pending_codes.json, entry #1: "chat_id" must be a whole number' in message
    assert 'petr@acme.com: "password_hash" must be a string' in message
    assert "K7Q2ZP" not in message and "secret" not in message


def test_skip_invalid_migrates_the_rest_and_lists_each_bad_entry(tmp_path):
    data = legacy_copy(tmp_path)
    edit_json(data / "corporate-memory/votes.json", lambda d: d["k1"].update({"petr@acme.com": 5}))
    edit_json(data / "auth/users.json", lambda d: d.update({"PETR@acme.com": {"id": "u-p2"}}))
    append_lines(
        data / "audit/audit.jsonl",
        '{"id": "a4", "timestamp": "2026-0',
        '{"id": "a5", "timestamp": "2026-03-28", "action": "ok"}',
    )
    truncate(data / "notifications/scripts.json")
    report = migrate(data, skip_invalid=True)
    skipped = [str(p) for p in report.skipped]
    assert len(skipped) == 4
    assert skipped[0].startswith(
        "corporate-memory/votes.json, k1/petr@acme.com: the vote must be one of -1, 1"
    )
    assert skipped[1].startswith("notifications/scripts.json, (whole file): not valid JSON")
    assert skipped[2].startswith(
        "auth/users.json, PETR@acme.com: duplicate email (emails are compared "
        'case-insensitively) "petr@acme.com": an earlier entry has it; the first is kept'
    )
    assert skipped[3] == "audit/audit.jsonl, line 4: not valid JSON (a truncated or corrupted line?)"
    counts = report.counts()
    assert (counts["votes"], counts["users"], counts["audit"], counts["scripts"]) == (2, 2, 4, 0)
    conn = connect(data / "state" / "system.duckdb")
    assert UserRepository(conn).get_by_id("u-p2") is None
    assert (
        conn.execute(
            "SELECT vote FROM knowledge_votes WHERE item_id = 'k1' AND user_id = 'petr@acme.com'"
        ).fetchall()
        == []
    )
    assert conn.execute("SELECT id FROM audit_log ORDER BY seq").fetchall() == [
        ("a1",),
        ("a2",),
        ("a3",),
        ("a5",),
    ]
    conn.close()


def test_a_line_number_counts_blank_lines(tmp_path):
    data = legacy_copy(tmp_path)
    append_lines(data / "audit/audit.jsonl", "", "   ", json.dumps({"timestamp": "2026-03-28", "action": 7}))
    with pytest.raises(MigrationError, match=r'audit/audit.jsonl, line 6: "action" must be'):
        migrate_all(data)
