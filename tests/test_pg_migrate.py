"""Legacy migration into a PostgreSQL database that already holds state behaves as into a file
that does: a re-run changes nothing, changed files update what changed (the same rows as in a
file), rows only in the database are kept, and a dry run writes nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from docs_support import SAMPLE as SAMPLE_DATA
from server_support import contents

from mcp_state.cli import main
from mcp_state.db import Database
from mcp_state.repositories import UserRepository

SKIP = ("schema_version",)


def changed_copy(folder: Path) -> Path:
    """The sample files with an item edited, a vote turned and an audit entry added."""
    data = folder / "changed"
    shutil.copytree(SAMPLE_DATA, data)
    knowledge = data / "corporate-memory" / "knowledge.json"
    items = json.loads(knowledge.read_text())
    items[0]["title"] = "MRR, monthly recurring revenue"
    knowledge.write_text(json.dumps(items))
    votes = data / "corporate-memory" / "votes.json"
    votes.write_text(json.dumps({**json.loads(votes.read_text()), "k2": {"petr@acme.com": 1}}))
    with (data / "audit" / "audit.jsonl").open("a") as audit:
        audit.write(
            json.dumps(
                {
                    "id": "a4",
                    "timestamp": "2026-03-28T09:00:00Z",
                    "user_id": "u-petr",
                    "action": "sync_trigger",
                    "resource": "orders",
                    "params": None,
                    "result": "ok",
                }
            )
            + "\n"
        )
    return data


def wrote(out: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(("Wrote", "Would write")))


@pytest.mark.slow  # seven migrations
def test_migrating_again_into_postgresql_behaves_as_into_a_file(pg_state_url, tmp_path, capsys):
    file = str(tmp_path / "state.duckdb")
    for db in (file, pg_state_url):
        assert main(["migrate", "--data-dir", str(SAMPLE_DATA), "--db", db]) == 0
    capsys.readouterr()
    # Again over the same files: nothing changes.
    assert main(["migrate", "--data-dir", str(SAMPLE_DATA), "--db", pg_state_url]) == 0
    assert wrote(capsys.readouterr().out).startswith("Wrote 0 row(s)")
    assert contents(pg_state_url, skip=SKIP) == contents(file, skip=SKIP)
    # A server wrote meanwhile (a row the files never had); then the files changed.
    with Database(pg_state_url) as db:
        UserRepository(db).create("u-live", "live@example.com", "Live")
    changed = changed_copy(tmp_path)
    assert main(["migrate", "--data-dir", str(changed), "--db", pg_state_url, "--dry-run"]) == 0
    assert wrote(capsys.readouterr().out).startswith("Would write 3 row(s)")
    assert main(["migrate", "--data-dir", str(changed), "--db", file]) == 0
    into_file = capsys.readouterr().out
    assert main(["migrate", "--data-dir", str(changed), "--db", pg_state_url]) == 0
    into_pg = capsys.readouterr().out
    assert wrote(into_pg) == wrote(into_file) and wrote(into_pg).startswith("Wrote 3 row(s)")
    on_pg = contents(pg_state_url, skip=SKIP)
    assert [u["id"] for u in on_pg["users"] if u["id"] == "u-live"] == ["u-live"]  # kept: "db only"
    on_pg["users"] = [u for u in on_pg["users"] if u["id"] != "u-live"]
    # The same rows as in the file: the edit (and its word index), the vote, the audit entry
    # numbered next.
    assert on_pg == contents(file, skip=SKIP)
    assert main(["verify", "--db", pg_state_url]) == 0
