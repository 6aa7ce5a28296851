"""Run the whole benchmark suite: one table, one JSON report, one chart.

    python tests/benchmarks/run.py [--quick] [--only server,writes,sql,migration] [--publish]

Each benchmark runs in a process of its own (``bench_<name>.py``, which can also be run by
hand with more options) and writes ``results/<name>.json``; this script gathers their
figures, prints them as one table (figure, mcp-state, baseline, ratio, target, met), and
writes ``results/benchmarks.json`` (with the date and the machine), ``results/benchmarks.md``
(the table in Markdown) and ``results/benchmarks.png`` (needs matplotlib: ``pip install -e
".[bench]"``). ``--publish`` also copies the JSON and the chart to ``docs/``, where the
README shows them. The full run takes about six minutes on a 2-CPU machine; ``--quick``
(smaller data, fewer repetitions: a smoke run, not for publishing) about two and a half.

Benchmarks (each figure is measured side by side, alternating, several repetitions):
  server     tool-call latency over stdio, cold start, catalog size, peak memory of a huge query
  writes     record_sync vs the legacy JSON rewrite at 1k/10k/100k tables, and 4 writer threads
  sql        sql_query vs DuckDB directly and vs SQLite over 1M audit rows
  migration  migrating the large legacy data set vs DuckDB's own read_json of the same files
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import (  # noqa: E402 - after the sys.path line above
    RESULTS_DIR,
    Figure,
    describe_machine,
    machine,
    markdown_table,
    plot,
    print_table,
    read_report,
    write_report,
)

ROOT = HERE.parent.parent
DOCS = ROOT / "docs"

# name: (script, arguments of a full run, arguments of a quick run)
BENCHMARKS: dict[str, tuple[str, list[str], list[str]]] = {
    "server": ("bench_server.py", ["--calls", "1000", "--starts", "25"], ["--quick"]),
    "writes": ("bench_writes.py", [], ["--quick"]),
    "sql": ("bench_sql.py", ["--repetitions", "15"], ["--quick"]),
    "migration": (
        "bench_migration.py",
        ["--audit-lines", "1000000", "--entries", "100000", "--repetitions", "3"],
        ["--audit-lines", "200000", "--entries", "20000", "--repetitions", "2"],
    ),
}
ALIASES = {
    "latency": "server",
    "cold-start": "server",
    "catalog": "server",
    "memory": "server",
    "analytics": "sql",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog=__doc__.split("\n\n", 2)[-1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer repetitions and smaller data (a smoke run)"
    )
    parser.add_argument("--only", metavar="A,B", help=f"run only these: {', '.join(BENCHMARKS)}")
    parser.add_argument("--publish", action="store_true", help="also copy the JSON and the chart to docs/")
    parser.add_argument(
        "--chart-only",
        metavar="JSON",
        type=Path,
        help="draw the chart of an earlier report (next to it) and stop",
    )
    args = parser.parse_args(argv)
    if args.chart_only:
        figures, _, info = read_report(args.chart_only)
        title = f"mcp-state benchmarks, {info.get('date', '?')}, {info.get('cpus', '?')} CPUs ({info.get('cpu', '?')})"
        chart = plot(figures, args.chart_only.with_suffix(".png"), title)
        print(f"wrote {chart}" if chart else "no chart written")
        return 0 if chart else 1

    selected = list(BENCHMARKS)
    if args.only:
        wanted = [ALIASES.get(name.strip(), name.strip()) for name in args.only.split(",") if name.strip()]
        unknown = [name for name in wanted if name not in BENCHMARKS]
        if unknown:
            parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
        selected = [name for name in BENCHMARKS if name in wanted]

    info = machine()
    print(
        f"mcp-state benchmarks, {info['date']}: {describe_machine(info)}; load average {info['load_average']}"
    )
    env = dict(os.environ)
    # A fresh clone measures its own code, installed or not.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    figures: list[Figure] = []
    notes: dict[str, object] = {"quick": args.quick, "seconds": {}, "benchmarks": {}}
    failed: list[str] = []
    started_all = time.perf_counter()
    for name in selected:
        script, full, quick = BENCHMARKS[name]
        report = RESULTS_DIR / f"{name}.json"
        report.unlink(missing_ok=True)
        print(f"\n== {name}: {script} {' '.join(quick if args.quick else full)}", flush=True)
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, str(HERE / script), *(quick if args.quick else full)], check=False, env=env
        )
        seconds = round(time.perf_counter() - started, 1)
        notes["seconds"][name] = seconds  # type: ignore[index]
        if done.returncode != 0 or not report.exists():
            print(
                f"!! {name} failed (exit status {done.returncode}); its figures are missing", file=sys.stderr
            )
            notes["benchmarks"][name] = {"failed": done.returncode}  # type: ignore[index]
            failed.append(name)
            continue
        found, bench_notes, _ = read_report(report)
        for figure in found:
            if not figure.section:
                figure.section = name
                figure.name = f"{name}: {figure.name}"
        figures.extend(found)
        notes["benchmarks"][name] = bench_notes  # type: ignore[index]
    notes["total_seconds"] = round(time.perf_counter() - started_all, 1)
    info = machine()

    print(f"\nmcp-state benchmarks, {info['date']}: {describe_machine(info)}")
    print(f"load average at the end {info['load_average']}; {notes['total_seconds']} s in all\n")
    print_table(figures)
    missed = [f.name for f in figures if f.met is False]
    print(
        f"\n{sum(f.met is True for f in figures)} targets met, {len(missed)} missed"
        + (": " + "; ".join(missed) if missed else "")
    )

    path = write_report("benchmarks", figures, notes)
    (RESULTS_DIR / "benchmarks.md").write_text(
        f"Measured {info['date']} on {describe_machine(info)}.\n\n{markdown_table(figures)}\n"
    )
    title = f"mcp-state benchmarks, {info['date']}, {info['cpus']} CPUs ({info['cpu']})"
    chart = plot([f for f in figures if f.target is not None], RESULTS_DIR / "benchmarks.png", title)
    print(f"\nwrote {path}, {RESULTS_DIR / 'benchmarks.md'}" + (f" and {chart}" if chart else ""))
    if args.publish:
        DOCS.mkdir(exist_ok=True)
        shutil.copy(path, DOCS / "benchmarks.json")
        if chart:
            shutil.copy(chart, DOCS / "benchmarks.png")
        print(f"published to {DOCS}/benchmarks.json" + (" and benchmarks.png" if chart else ""))
    if failed:
        print(f"!! failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
