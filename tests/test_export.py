"""Export writes the legacy layout back; migrating an export into an empty database gives
the same table contents (on the sample and on generated data with awkward values)."""

from __future__ import annotations

import json
import random
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from migration_support import FIXTURE, dump, legacy_copy

import mcp_state.legacy.export
from mcp_state.db import connect
from mcp_state.errors import MigrationError
from mcp_state.legacy import LAYOUT_FILES, export_all, migrate_all
from mcp_state.repositories import KnowledgeRepository


def round_trip(tmp_path: Path, source: Path) -> tuple[Path, Path, dict[str, int]]:
    """Migrate ``source``, export it, migrate the export into an empty database."""
    first, second = tmp_path / "first.duckdb", tmp_path / "second.duckdb"
    counts = migrate_all(source, db_path=first)
    exported = export_all(tmp_path / "export", db_path=first)
    assert exported == counts
    assert migrate_all(tmp_path / "export", db_path=second) == counts
    return first, second, counts


def test_the_sample_survives_a_round_trip(tmp_path):
    first, second, counts = round_trip(tmp_path, FIXTURE)
    assert sum(counts.values()) == 28
    assert dump(second) == dump(first)


def test_an_export_writes_every_file_of_the_layout_readable_by_its_owner_only(tmp_path):
    db = tmp_path / "db.duckdb"
    migrate_all(FIXTURE, db_path=db)
    export_all(tmp_path / "out", db_path=db)
    for name in LAYOUT_FILES:
        path = tmp_path / "out" / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    users = json.loads((tmp_path / "out/auth/users.json").read_text())
    assert users["jana@acme.com"] == {  # the same keys as the legacy file, plus the id it got
        "id": "jana@acme.com",
        "name": "Jana",
        "role": "analyst",
        "setup_token": "st-0f3a9c",
        "setup_token_created": "2026-03-20T10:00:00Z",
    }
    lines = (tmp_path / "out/audit/audit.jsonl").read_text().splitlines()
    assert json.loads(lines[1]) == json.loads((FIXTURE / "audit/audit.jsonl").read_text().splitlines()[1])


def test_an_export_never_overwrites_files(tmp_path):
    db = tmp_path / "db.duckdb"
    migrate_all(FIXTURE, db_path=db)
    legacy = legacy_copy(tmp_path)
    before = (legacy / "auth/users.json").read_bytes()
    with pytest.raises(MigrationError, match=r"already holds src_data/metadata/sync_state.json"):
        export_all(legacy, db_path=db)
    assert (legacy / "auth/users.json").read_bytes() == before


def test_exporting_without_a_database_is_a_clear_error(tmp_path):
    with pytest.raises(MigrationError, match="there is no database at"):
        export_all(tmp_path / "out", db_path=tmp_path / "missing.duckdb")
    assert not (tmp_path / "missing.duckdb").exists()


def test_export_of_an_export_is_the_same_files(tmp_path):
    _first, second, _ = round_trip(tmp_path, FIXTURE)
    export_all(tmp_path / "again", db_path=second)
    for name in LAYOUT_FILES:
        assert (tmp_path / "again" / name).read_bytes() == (tmp_path / "export" / name).read_bytes()


# -- generated data -----------------------------------------------------------------------------
AWKWARD = [
    "plain",
    "ünïcødé ✓",
    'quote " and \\ backslash',
    "tab\tnewline\n",
    "emoji 🦆",
    "/slash/",
    "",
    "  padded  ",
]


def generate(root: Path, n: int, seed: int = 5) -> None:
    """Every file of the layout with ``n`` entries of each kind and awkward values."""
    rng = random.Random(seed)
    start = datetime(2025, 6, 1, tzinfo=UTC)

    def when(i: int) -> str:
        moment = start + timedelta(seconds=rng.randrange(10**7), microseconds=rng.choice([0, 0, 123456]))
        zone = rng.choice(["Z", "+02:00", "-05:30", "", "date"])
        if zone == "date":
            return moment.date().isoformat()
        local = (
            moment.astimezone(UTC if zone in ("Z", "") else datetime.strptime(zone, "%z").tzinfo)
            .replace(tzinfo=None)
            .isoformat()
        )
        return local + zone

    def text(i: int) -> str:
        return f"{AWKWARD[i % len(AWKWARD)]} {i}"

    def write(name: str, value: object) -> None:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value, ensure_ascii=rng.random() < 0.5))

    items = [f"k{i}" for i in range(n)]
    write(
        "src_data/metadata/sync_state.json",
        {
            "tables": {
                text(i): {
                    "last_sync": when(i),
                    "rows": i,
                    "file_size_bytes": i * 7,
                    **(
                        {"columns": i % 9, "hash": text(i + 1)}
                        if i % 2
                        else {"status": "error", "error": text(i)}
                    ),
                }
                for i in range(n)
            },
            "history": [
                {"table_id": text(i % 5), "synced_at": when(i % 4), "rows": i % 3, "status": "ok"}
                for i in range(n)
            ]
            + [{"id": f"h{i}", "table_id": "x", "synced_at": when(i), "rows": 1} for i in range(3)],
        },
    )
    write(
        "src_data/metadata/table_registry.json",
        {
            "tables": {
                text(i): {
                    "name": text(i + 2),
                    **({"registered_at": when(i), "folder": text(i)} if i % 3 else {}),
                }
                for i in range(n)
            }
        },
    )
    write(
        "src_data/metadata/profiles.json",
        {
            text(i): {
                "row_count": i,
                "nested": {"a": [1, 2.5, None, text(i)], "b": {}},
                "profiled_at": when(i),
            }
            for i in range(n)
        },
    )
    write(
        "notifications/sync_settings.json",
        {
            f"user{i}": {
                "datasets": {
                    "sales": bool(i % 2),
                    "support": {"enabled": True, "table_mode": "selected", "tables": [text(i)]},
                    "ops": {"enabled": False, "table_mode": "all", "tables": []},
                },
                **({"updated_at": when(i)} if i % 4 else {}),
            }
            for i in range(n)
        },
    )
    write(
        "notifications/telegram_users.json",
        {
            f"user{i}": {
                "chat_id": rng.randrange(-(2**63), 2**63),
                **({"linked_at": when(i)} if i % 2 else {}),
            }
            for i in range(n)
        },
    )
    write(
        "notifications/pending_codes.json",
        {f"C{i:05d}": {"chat_id": -i, "created_at": when(i)} for i in range(n)},
    )
    write(
        "notifications/scripts.json",
        {
            f"s{i}": {
                "name": text(i),
                "source": text(i) * 3,
                "owner": f"user{i}",
                "last_status": "error",
                "last_run": when(i),
            }
            for i in range(n)
        },
    )
    write(
        "corporate-memory/knowledge.json",
        [
            {
                "id": item,
                "title": text(i) + "t",
                "content": text(i),
                "tags": [text(i), "x"] if i % 2 else [],
                "status": ["pending", "approved", "rejected", "archived"][i % 4],
                "contributors": [f"user{i}"],
                **({"created_at": when(i), "updated_at": when(i + 1)} if i % 3 else {}),
            }
            for i, item in enumerate(items)
        ],
    )
    write(
        "corporate-memory/votes.json",
        {item: {f"user{j}": rng.choice([1, -1]) for j in range(i % 4)} for i, item in enumerate(items)},
    )
    write(
        "auth/users.json",
        {
            f"user{i}@acme.com": {
                **({"id": f"user{i}"} if i % 2 else {}),
                "name": text(i),
                "role": ["admin", "analyst", "viewer"][i % 3],
                "password_hash": f"$argon2id${i}",
                **({"reset_token": f"r{i}", "reset_token_created": when(i)} if i % 5 == 0 else {}),
            }
            for i in range(n)
        },
    )
    write(
        "auth/dataset_permissions.json", {f"user{i}": {"sales": "read", text(i): "admin"} for i in range(n)}
    )
    lines = []
    for i in range(n * 3):
        entry = {
            "timestamp": when(i % 7),
            "action": rng.choice(["login", "query"]),
            "user_id": f"user{i % 4}",
            "params": rng.choice([None, {"q": text(i), "deep": [1, {"x": None}]}, [1, 2], "scalar"]),
            "duration_ms": rng.randrange(100),
        }
        if i % 2:
            entry["id"] = f"a{i}"
        lines.append(json.dumps(entry, ensure_ascii=False))
    lines += lines[-4:]  # exact repeats; the two with ids are duplicates, so make them distinct
    lines[-1] = lines[-1].replace('"id": "a', '"id": "again-a')
    lines[-3] = lines[-3].replace('"id": "a', '"id": "again-a')
    (root / "audit").mkdir(parents=True, exist_ok=True)
    (root / "audit/audit.jsonl").write_text("\n".join(lines) + "\n")


def test_generated_data_survives_a_round_trip(tmp_path, monkeypatch):
    monkeypatch.setattr(mcp_state.legacy.export, "CHUNK_ROWS", 7)  # stream the audit log in several chunks
    source = tmp_path / "generated"
    generate(source, 40)
    first, second, counts = round_trip(tmp_path, source)
    assert counts["audit"] == 124 and counts["votes"] == 60 and counts["sync_history"] == 43
    assert dump(second) == dump(first)
    export_all(tmp_path / "again", db_path=second)
    for name in LAYOUT_FILES:
        assert (tmp_path / "again" / name).read_bytes() == (tmp_path / "export" / name).read_bytes()


def test_what_the_layout_has_no_place_for_is_left_out(tmp_path):
    db = tmp_path / "db.duckdb"
    migrate_all(FIXTURE, db_path=db)
    conn = connect(db)
    KnowledgeRepository(conn).vote("k2", "eva@acme.com", 1)  # the server records when
    conn.close()
    export_all(tmp_path / "out", db_path=db)
    votes = json.loads((tmp_path / "out/corporate-memory/votes.json").read_text())
    assert votes["k2"] == {"eva@acme.com": 1, "petr@acme.com": -1}
    migrate_all(tmp_path / "out", db_path=tmp_path / "back.duckdb")
    conn = connect(tmp_path / "back.duckdb")
    voted = conn.execute(
        "SELECT user_id, voted_at FROM knowledge_votes WHERE item_id = 'k2' ORDER BY 1"
    ).fetchall()
    conn.close()
    assert voted == [("eva@acme.com", None), ("petr@acme.com", None)]
