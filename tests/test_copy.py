"""``mcp-state copy``: the whole state from one database to another, DuckDB file to PostgreSQL
and back, in one transaction on the target; an empty target only; sequences numbered on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from server_support import contents, seeded_copy

from mcp_state.cli import main
from mcp_state.db import Database
from mcp_state.gateway import Gateway
from mcp_state.repositories.audit import AuditRepository
from mcp_state.repositories.tokens import TokenRepository, token_file
from mcp_state.sharing import shown_location
from mcp_state.transfer import copy_state


def test_copy_file_to_file_keeps_every_row_and_tokens(tmp_path, capsys):
    source, _ = seeded_copy(tmp_path)
    target = tmp_path / "copy.duckdb"
    assert main(["copy", "--from", str(source), "--to", str(target)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1].startswith("Copied ") and "the target's counts match" in out
    assert "api_tokens" in out and "audit_log" in out
    assert contents(str(target)) == contents(str(source))
    # The HTTP server's token list is published beside the new file: every active token's hash.
    published = json.loads(Path(token_file(str(target)) or "").read_text())
    with Database(str(source), idle_release=None) as db:
        hashes = {
            r["token_hash"]
            for r in Gateway(db).fetch_all("SELECT token_hash FROM api_tokens WHERE revoked_at IS NULL")
        }
    assert set(published) == hashes and len(hashes) >= 2


def test_the_copy_numbers_on_after_the_copied_rows(tmp_path):
    source, _ = seeded_copy(tmp_path)
    target = str(tmp_path / "copy.duckdb")
    copy_state(str(source), target)
    with Database(target, idle_release=None) as db:
        top = Gateway(db).fetch_value("SELECT max(seq) FROM audit_log")
        AuditRepository(db).log("tester", "after_copy")
        assert Gateway(db).fetch_value("SELECT seq FROM audit_log WHERE action = 'after_copy'") > top


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("same", "--from and --to name the same database"),
        ("full", "already holds state (1 rows in api_tokens"),
    ],
)
def test_refusals_are_one_line_and_change_nothing(tmp_path, capsys, target, message):
    source, _ = seeded_copy(tmp_path)
    if target == "same":
        to = str(source)
    else:
        to = str(tmp_path / "full.duckdb")
        with Database(to, idle_release=None) as db:
            TokenRepository(db).create("someone", "read")
    before = contents(to)
    assert main(["copy", "--from", str(source), "--to", to]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mcp-state copy: error: ") and message in err and err.count("\n") == 1
    assert contents(to) == before


def test_a_missing_source_is_refused_and_no_target_is_left(tmp_path, capsys):
    target = tmp_path / "new.duckdb"
    assert main(["copy", "--from", str(tmp_path / "none.duckdb"), "--to", str(target)]) == 1
    assert "no database at" in capsys.readouterr().err
    assert not target.exists()


def test_duckdb_to_postgres_and_back_gives_the_same_contents(tmp_path, pg_state_url, capsys):
    source, _ = seeded_copy(tmp_path)
    assert main(["copy", "--from", str(source), "--to", pg_state_url]) == 0
    assert contents(pg_state_url) == contents(str(source))
    back = tmp_path / "back.duckdb"
    assert main(["copy", "--from", pg_state_url, "--to", str(back)]) == 0
    assert contents(str(back)) == contents(str(source))
    out = capsys.readouterr().out
    assert shown_location(pg_state_url) in out and (
        shown_location(pg_state_url) == pg_state_url or pg_state_url not in out
    )
    # Into the PostgreSQL database again: it is not empty any more.
    assert main(["copy", "--from", str(source), "--to", pg_state_url]) == 1
    assert "already holds state" in capsys.readouterr().err
