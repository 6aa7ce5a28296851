"""``verify`` checks that rows agree with the audit trail: each damage, done by SQL on a copy of a
state written through the repositories, is named in one line and fails the check."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest
from recovery_support import cli

from mcp_state.backup import restore, verify
from mcp_state.db import Database
from mcp_state.gateway import utc_now
from mcp_state.repositories.audit import AuditRepository
from mcp_state.repositories.knowledge import KnowledgeRepository
from mcp_state.repositories.sync_state import SyncStateRepository
from mcp_state.repositories.tokens import TokenRepository

_BASE: dict[str, Path] = {}


def written(folder: Path) -> Path:
    """A state written through the repositories only (``fill``), with its tokens file."""
    path = folder / "base.duckdb"
    with Database(path, idle_release=None) as db:
        fill(db)
    return path


def fill(db: Database) -> None:
    """Syncs (one across a clock step back), knowledge items with votes, audit rows, two tokens."""
    sync = SyncStateRepository(db)
    sync.update_sync("orders", rows=10, file_size_bytes=100, hash="a")
    sync.update_sync("orders", rows=12, file_size_bytes=120, hash="b")
    later = utc_now() + timedelta(hours=1)
    sync.update_sync("jumpy", rows=1, file_size_bytes=1, hash="c", synced_at=later)
    sync.update_sync("jumpy", rows=2, file_size_bytes=2, hash="d")  # the clock is "behind": noted
    knowledge = KnowledgeRepository(db)
    knowledge.create("k1", "Orders arrive nightly", "Loaded at 02:00 from the shop", "ops", tags=["etl"])
    knowledge.create("k2", "Invoices", "Monthly", "finance")
    knowledge.vote("k1", "petr", 1)
    knowledge.vote("k1", "jana", -1)
    for i in range(3):
        AuditRepository(db).log(user_id="u", action="write", params={"i": i})
    tokens = TokenRepository(db)
    tokens.create("agent", "write")
    tokens.create("analyst", "read")


@pytest.fixture
def state(tmp_path_factory, tmp_path) -> Path:
    """A fresh copy of the written state (and its tokens file) for one test to damage."""
    if "db" not in _BASE:
        _BASE["db"] = written(tmp_path_factory.mktemp("agreement"))
    source = _BASE["db"]
    target = tmp_path / "state.duckdb"
    shutil.copyfile(source, target)
    shutil.copyfile(f"{source}.tokens", f"{target}.tokens")
    return target


def damage(path: Path, *statements: str) -> None:
    conn = duckdb.connect(str(path))
    try:
        for statement in statements:
            conn.execute(statement)
    finally:
        conn.close()


def test_a_state_written_through_the_repositories_agrees_with_itself(state):
    report = verify(str(state))
    assert report.problems == [] and report.notes == []
    assert report.rows["sync_history"] == 4 and report.rows["knowledge_votes"] == 2


DAMAGE = {
    "history deleted": (
        ["DELETE FROM sync_history WHERE table_id = 'orders'"],
        ["sync_state: table orders (last_sync ", ") has no sync_history row"],
    ),
    "last_sync moved": (
        ["UPDATE sync_state SET last_sync = last_sync + INTERVAL '1 minute' WHERE table_id = 'orders'"],
        ["sync_state: table orders has last_sync ", ", its latest sync_history row says "],
    ),
    "clock-jump note removed": (
        ["UPDATE sync_history SET note = NULL"],
        ["sync_history: the newest run of table jumpy (", "and notes no clock jump"],
    ),
    "vote on a missing item": (
        ["INSERT INTO knowledge_votes VALUES ('gone', 'petr', 1, NULL)"],
        ["knowledge_votes: 1 votes on item gone, which does not exist"],
    ),
    "vote out of range": (
        ["UPDATE knowledge_votes SET vote = 3 WHERE user_id = 'petr'"],
        ["knowledge_votes: the vote of petr on item k1 is 3, not +1 or -1"],
    ),
    "word missing from the index": (
        ["DELETE FROM knowledge_words WHERE item_id = 'k1' AND word = 'nightly'"],
        ["knowledge_words: item k1 is indexed wrongly (1 of its words missing, 0 rows"],
    ),
    "index row of a missing item": (
        ["INSERT INTO knowledge_words VALUES ('ghost', 'gone', true, false, 1, 99)"],
        ["knowledge_words: 1 rows for item gone, which does not exist"],
    ),
    "seq shared": (
        ["UPDATE audit_log SET seq = 1 WHERE seq = 2"],
        ["audit_log: 2 rows share seq 1"],
    ),
    "seq beyond its sequence": (
        ["UPDATE sync_history SET seq = 1000 WHERE seq = 4"],
        ["sync_history: seq 1000 is beyond its sequence sync_history_seq (last value 4)"],
    ),
    "change_seq beyond its sequence": (
        ["UPDATE knowledge_items SET change_seq = 999 WHERE id = 'k2'"],
        ["knowledge_items: change_seq 999 is beyond its sequence knowledge_change_seq"],
    ),
    "item_key beyond its sequence": (
        [
            "UPDATE knowledge_items SET item_key = 999 WHERE id = 'k2'",
            "UPDATE knowledge_words SET item_key = 999 WHERE item_id = 'k2'",
        ],
        ["knowledge_items: item_key 999 is beyond its sequence knowledge_item_key_seq"],
    ),
    "index rows with another item's key": (
        ["UPDATE knowledge_words SET item_key = 999 WHERE item_id = 'k2'"],
        ["knowledge_words: item k2 is indexed wrongly"],
    ),
    "token revoked, file not rewritten": (
        ["UPDATE api_tokens SET revoked_at = now() WHERE actor = 'analyst'"],
        [".tokens: token tok_", " (analyst, read) is revoked or unknown in api_tokens but accepted by it"],
    ),
    "token added, file not rewritten": (
        ["INSERT INTO api_tokens (id, actor, scope, token_hash) VALUES ('tok_new', 'bot', 'read', 'x')"],
        [".tokens: active token tok_new (bot, read) is missing from it"],
    ),
}


@pytest.mark.parametrize("case", DAMAGE)
def test_each_damage_is_named_in_one_line(state, case):
    statements, parts = DAMAGE[case]
    damage(state, *statements)
    report = verify(str(state))
    assert len(report.problems) == 1, report.problems
    assert all(part in report.problems[0] for part in parts), report.problems[0]
    assert "\n" not in report.problems[0]


def test_the_tokens_file_never_shows_a_hash_and_an_unreadable_one_is_named(state):
    hashes = list(json.loads(Path(f"{state}.tokens").read_text()))
    damage(state, "UPDATE api_tokens SET revoked_at = now()")
    problems = verify(str(state)).problems
    assert len(problems) == 2 and not any(h in p for h in hashes for p in problems)
    Path(f"{state}.tokens").write_text("{not json")
    assert verify(str(state)).problems == [
        f"tokens file {state}.tokens: unreadable (JSONDecodeError); start the HTTP server again "
        "(it rewrites the file from api_tokens)"
    ]
    Path(f"{state}.tokens").unlink()  # a backup has no tokens file: nothing to compare
    assert verify(str(state)).problems == []


def test_rows_imported_without_history_are_notes_and_many_mismatches_are_counted(state):
    damage(state, "INSERT INTO sync_state (table_id, last_sync) VALUES ('legacy', TIMESTAMP '2020-01-01')")
    report = verify(str(state))
    assert report.problems == []
    assert report.notes == [
        "sync_state: table legacy has no sync_history (imported: its last_sync predates the database)"
    ]
    damage(state, "INSERT INTO knowledge_votes SELECT 'gone' || i, 'u', 1, NULL FROM range(8) t(i)")
    problems = verify(str(state)).problems
    assert len(problems) == 6 and problems[-1] == "knowledge_votes: 3 more like the above"


@pytest.mark.slow  # runs the command as a process
def test_the_verify_command_exits_1_with_one_line_per_mismatch(state):
    damage(
        state,
        "DELETE FROM sync_history WHERE table_id = 'orders'",
        "UPDATE knowledge_votes SET vote = 0 WHERE user_id = 'jana'",
    )
    done = cli("verify", "--db", str(state))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 2 and all(line.startswith("mcp-state verify: error: ") for line in lines), lines
    assert "table orders" in lines[0] and "vote of jana on item k1 is 0" in lines[1]


def test_restore_sets_the_replaced_tokens_file_aside_so_the_restored_state_agrees(state, tmp_path):
    backup = tmp_path / "backup.duckdb"
    shutil.copyfile(state, backup)
    damage(backup, "UPDATE api_tokens SET revoked_at = now() WHERE actor = 'agent'")
    result = restore(str(backup), str(state), force=True)
    assert [Path(kept).name.split(".before-restore-")[0] for kept in result["kept"]] == [
        "state.duckdb",
        "state.duckdb.tokens",
    ]
    assert not Path(f"{state}.tokens").exists() and verify(str(state)).problems == []


@pytest.mark.parametrize(
    "command",
    [
        ["backup", "--to", "b"],
        ["restore", "--from", "b"],
        ["verify"],
        ["recover"],
        ["audit", "archive", "--before", "90d", "--to", "a"],
    ],
)
def test_the_recovery_commands_default_to_the_file_serve_uses(command, monkeypatch, tmp_path):
    from mcp_state.cli import build_parser
    from mcp_state.commands.backup import db_path
    from mcp_state.sharing import default_db_path

    monkeypatch.delenv("DATA_DIR", raising=False)
    args = build_parser().parse_args(command)
    assert db_path(args) == str(default_db_path().absolute())  # the user data folder, not ./data
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    assert db_path(args) == str(tmp_path / "state" / "system.duckdb")
