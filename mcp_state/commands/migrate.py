"""``mcp-state migrate``: move the legacy JSON state into the database, all or nothing."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import IO, Any

# Inputs at least this large get a progress bar (on a terminal).
LARGE_INPUT_BYTES = 8 * 2**20


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "migrate",
        help="move the legacy JSON state files into the database",
        description=(
            "Read every file of the legacy JSON layout under DIR (src_data/metadata/*.json, "
            "notifications/*.json, corporate-memory/*.json, auth/*.json, audit/audit.jsonl), check "
            "every entry and write them to the database in one transaction. Running it again over the "
            "same files changes nothing; over changed files it inserts and updates what changed "
            "(rows only in the database are kept). A malformed file or entry stops the run and "
            "nothing is written."
        ),
        epilog=(
            "examples:\n"
            "  mcp-state migrate --data-dir ./data --dry-run    # check and report, write nothing\n"
            "  mcp-state migrate --data-dir ./data              # into ./data/state/system.duckdb\n"
            "  mcp-state migrate --data-dir ./data --skip-invalid"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data-dir", required=True, metavar="DIR", help="the legacy data directory")
    parser.add_argument("--db", metavar="PATH", help="database file (default: DIR/state/system.duckdb)")
    parser.add_argument(
        "--dry-run", action="store_true", help="check everything and report what would change; write nothing"
    )
    parser.add_argument(
        "--skip-invalid",
        action="store_true",
        help="leave malformed entries out (each one is listed) instead of stopping",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mcp_state.legacy import migrate

    progress = progress_bar(sys.stderr, input_bytes(Path(args.data_dir)))
    report = migrate(
        args.data_dir,
        db_path=args.db,
        dry_run=args.dry_run,
        skip_invalid=args.skip_invalid,
        progress=progress,
        on_wait=say_waiting("migrate"),
    )
    if progress is not None:
        progress.clear()
    print(render(report))
    return 0


def say_waiting(command: str) -> Any:
    def on_wait(message: str) -> None:
        print(f"mcp-state {command}: {message} ...", file=sys.stderr, flush=True)

    return on_wait


def input_bytes(data_dir: Path) -> int:
    from mcp_state.legacy import LAYOUT_FILES

    return sum((data_dir / name).stat().st_size for name in LAYOUT_FILES if (data_dir / name).is_file())


class ProgressBar:
    """One line on a terminal, redrawn in place: the step and how far it is."""

    def __init__(self, stream: IO[str], width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self.shown = ""

    def __call__(self, step: str, fraction: float) -> None:
        filled = int(self.width * max(0.0, min(fraction, 1.0)))
        line = f"{step[:60]:<60} [{'#' * filled}{'.' * (self.width - filled)}] {fraction:4.0%}"
        if line != self.shown:
            self.stream.write("\r" + line)
            self.stream.flush()
            self.shown = line

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r" + " " * len(self.shown) + "\r")
            self.stream.flush()


def progress_bar(stream: IO[str], size: int) -> ProgressBar | None:
    """A progress bar for a large input on a terminal; None otherwise."""
    if size < LARGE_INPUT_BYTES or not stream.isatty():
        return None
    return ProgressBar(stream)


def render(report: Any) -> str:
    """The report as a table: per file and table, what was read, written and skipped."""
    header = ("file", "table", "read", "new", "changed", "unchanged", "skipped", "db only")
    rows = [header]
    for kind in report.kinds:
        if not kind.present:
            rows.append(
                (kind.file, kind.table, "no file", "", "", "", "", str(kind.db_only) if kind.db_only else "")
            )
            continue
        rows.append(
            (
                kind.file,
                kind.table,
                *(
                    str(n)
                    for n in (
                        kind.read,
                        kind.inserted,
                        kind.updated,
                        kind.unchanged,
                        len(kind.skipped),
                        kind.db_only,
                    )
                ),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i < 2 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    verb = "Would write" if report.dry_run else "Wrote"
    lines.insert(
        0,
        f"{'Dry run: nothing was written. ' if report.dry_run else ''}{report.data_dir} -> {report.db_path}",
    )
    lines.append(
        f"{verb} {report.written} row(s); {len(report.skipped)} entr{'y' if len(report.skipped) == 1 else 'ies'} "
        'skipped. Rows only in the database are kept ("db only").'
    )
    if report.skipped:
        lines.append("Skipped (--skip-invalid):")
        lines.extend(f"  {problem}" for problem in report.skipped)
    return "\n".join(lines)
