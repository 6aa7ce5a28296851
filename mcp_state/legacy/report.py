"""What a migration run found and did: per file and table, and the problems it met."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# progress(step, fraction): called as each step of a run goes on.
Progress = Callable[[str, float], None]


@dataclass(frozen=True)
class Problem:
    file: str
    entry: str
    problem: str

    def __str__(self) -> str:
        return f"{self.file}, {self.entry}: {self.problem}"


@dataclass
class KindReport:
    kind: str
    file: str
    table: str
    present: bool = False
    read: int = 0  # entries found in the file
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    db_only: int = 0  # rows in the table that the file does not have (kept)
    skipped: list[Problem] = field(default_factory=list)

    @property
    def migrated(self) -> int:
        """Entries of the file that are in the database after the run."""
        return self.inserted + self.updated + self.unchanged

    @property
    def written(self) -> int:
        return self.inserted + self.updated


@dataclass
class MigrationReport:
    data_dir: Path
    db_path: Path | str  # a file, or a PostgreSQL URL as shown (no password)
    dry_run: bool
    kinds: list[KindReport]

    def counts(self) -> dict[str, int]:
        return {k.kind: k.migrated for k in self.kinds}

    @property
    def skipped(self) -> list[Problem]:
        return [p for k in self.kinds for p in k.skipped]

    @property
    def written(self) -> int:
        return sum(k.written for k in self.kinds)


def problems_message(problems: list[Problem], shown: int = 20) -> str:
    lines = [f"  {p}" for p in problems[:shown]]
    if len(problems) > shown:
        lines.append(f"  ... and {len(problems) - shown} more")
    return (
        f"{len(problems)} problem(s) in the legacy files; nothing was written:\n"
        + "\n".join(lines)
        + "\nFix these entries (or restore the files from a backup) and run again, "
        "or run with --skip-invalid to migrate everything else and list what was left out."
    )
