"""What every benchmark script shares: side-by-side timing, figures, and the report.

Each figure compares two ways of doing one thing, measured in one run, alternating A and B
over several repetitions so that a noisy neighbour slows both alike. A figure reports the
median and spread of each side and their ratio against a target.
"""

from __future__ import annotations

import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass
class Stats:
    samples: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def pct(self, q: float) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    @property
    def p50(self) -> float:
        return self.median

    @property
    def p95(self) -> float:
        return self.pct(0.95)

    @property
    def spread(self) -> float:
        """Interquartile range relative to the median."""
        return (self.pct(0.75) - self.pct(0.25)) / self.median if self.median else 0.0


def alternate(
    sides: dict[str, Callable[[], float | None]], *, repetitions: int, warmup: int = 1
) -> dict[str, Stats]:
    """Run each side once per round, alternating, and collect seconds per call.

    A side may return its own measured seconds (when setup must not count); otherwise its
    wall time is taken.
    """
    samples: dict[str, list[float]] = {name: [] for name in sides}
    for round_no in range(warmup + repetitions):
        order = list(sides.items())
        if round_no % 2:
            order.reverse()
        for name, fn in order:
            start = time.perf_counter()
            measured = fn()
            elapsed = time.perf_counter() - start if measured is None else measured
            if round_no >= warmup:
                samples[name].append(elapsed)
    return {name: Stats(values) for name, values in samples.items()}


async def alternate_async(
    sides: dict[str, Callable[[], Awaitable[float | None]]],
    *,
    repetitions: int,
    warmup: int = 1,
    shuffle: bool = False,
) -> dict[str, Stats]:
    """``alternate`` for coroutines (sides that talk to a server over one event loop).

    ``shuffle``: a new random order each round (seeded), for more than two sides, so that no
    side always follows the same one (a server called right after another call to itself
    finds its process warm; one called after a slow side finds it cold).
    """
    samples: dict[str, list[float]] = {name: [] for name in sides}
    rng = random.Random(0)
    for round_no in range(warmup + repetitions):
        order = list(sides.items())
        if shuffle:
            rng.shuffle(order)
        elif round_no % 2:
            order.reverse()
        for name, fn in order:
            start = time.perf_counter()
            measured = await fn()
            elapsed = time.perf_counter() - start if measured is None else measured
            if round_no >= warmup:
                samples[name].append(elapsed)
    return {name: Stats(values) for name, values in samples.items()}


@dataclass
class Figure:
    """One comparison: ``ours`` against ``other``; ``target`` bounds ours/other."""

    name: str
    ours_label: str
    ours: float
    other_label: str
    other: float
    unit: str
    target: float | None
    # "max": ours/other must be at most target; "speedup": other/ours must be at least target;
    # "limit": ours itself must be at most target (in ``unit``); other is a reference.
    kind: str = "max"
    ours_spread: float = 0.0
    other_spread: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)
    section: str = ""
    note: str = ""

    @property
    def ratio(self) -> float:
        if self.kind == "speedup":
            return self.other / self.ours if self.ours else float("inf")
        return self.ours / self.other if self.other else float("inf")

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        if self.kind == "limit":
            return self.ours <= self.target
        return self.ratio >= self.target if self.kind == "speedup" else self.ratio <= self.target

    def describe_target(self) -> str:
        if self.target is None:
            return "-"
        if self.kind == "limit":
            return f"≤ {format_value(self.target, self.unit)}"
        return f"≥ {self.target:g}× faster" if self.kind == "speedup" else f"≤ {self.target:g}×"

    def describe_ratio(self) -> str:
        if not self.other:
            return "-"
        return f"{self.ratio:.2f}× faster" if self.kind == "speedup" else f"{self.ratio:.2f}×"

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Figure:
        """A figure back from a report (``ratio`` and ``met`` are derived, so dropped)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})  # type: ignore[arg-type]


def machine() -> dict[str, str]:
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpus": str(os.cpu_count()),
        "memory": _memory(),
        "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?",
        "duckdb": _version("duckdb"),
        "mcp": _version("mcp"),
    }


def describe_machine(info: dict[str, str]) -> str:
    """One line: ``2 CPUs (Intel Xeon ...), 4 GB, Linux-..., Python 3.11.7, DuckDB 2.0.1, mcp 2.3.0``."""
    return (
        f"{info.get('cpus', '?')} CPUs ({info.get('cpu', '?')}), {info.get('memory', '?')}, "
        f"{info.get('platform', '?')}, Python {info.get('python', '?')}, DuckDB {info.get('duckdb', '?')}, "
        f"mcp {info.get('mcp', '?')}"
    )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or "?"


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.0f} GB RAM"
    except OSError:
        pass
    return "?"


def _version(module: str) -> str:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:
        return "?"


def format_value(value: float, unit: str) -> str:
    if unit == "s":
        if value < 1e-3:
            return f"{value * 1e6:.0f} µs"
        if value < 1:
            return f"{value * 1e3:.2f} ms"
        return f"{value:.2f} s"
    if unit == "B":
        return f"{value:,.0f} B"
    if unit == "MB":
        return f"{value:.1f} MB"
    if unit == "B/tool":
        return f"{value:,.0f} B/tool"
    return f"{value:g} {unit}"


HEADER = ("figure", "mcp-state", "baseline", "ratio", "target", "met")


def table_rows(figures: list[Figure]) -> list[tuple[str, ...]]:
    """One row per figure: figure, ours (± spread), baseline (± spread), ratio, target, met."""
    rows = []
    for fig in figures:
        ours = format_value(fig.ours, fig.unit) + (f" ±{fig.ours_spread:.0%}" if fig.ours_spread else "")
        other = (
            f"{fig.other_label}: {format_value(fig.other, fig.unit)}"
            + (f" ±{fig.other_spread:.0%}" if fig.other_spread else "")
            if fig.other_label
            else "-"
        )
        met = {True: "yes", False: "NO", None: "-"}[fig.met]
        rows.append((fig.name, ours, other, fig.describe_ratio(), fig.describe_target(), met))
    return rows


def print_table(figures: list[Figure], out=sys.stdout) -> None:
    rows = [HEADER, *table_rows(figures)]
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(HEADER))]
    for i, row in enumerate(rows):
        print(" | ".join(str(cell).ljust(widths[j]) for j, cell in enumerate(row)).rstrip(), file=out)
        if i == 0:
            print("-+-".join("-" * w for w in widths), file=out)


def markdown_table(figures: list[Figure]) -> str:
    """The same table in Markdown (for the README)."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += [
        "| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in table_rows(figures)
    ]
    return "\n".join(lines)


def write_report(
    name: str, figures: list[Figure], notes: dict[str, object] | None = None, *, path: Path | None = None
) -> Path:
    """Write ``results/<name>.json`` (figures plus the machine) and return its path."""
    path = path or RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "machine": machine(),
        "figures": [dict(asdict(f), ratio=f.ratio, met=f.met) for f in figures],
        "notes": notes or {},
    }
    path.write_text(json.dumps(payload, indent=2, default=str))
    return path


def read_report(path: Path) -> tuple[list[Figure], dict[str, object], dict[str, str]]:
    """Figures, notes and machine of a report written by ``write_report``."""
    payload = json.loads(path.read_text())
    figures = [Figure.from_dict(item) for item in payload.get("figures", [])]
    return figures, payload.get("notes", {}), payload.get("machine", {})


def budget(figure: Figure) -> float:
    """How much of its target a figure uses: below 1 the target is met, above 1 missed."""
    assert figure.target is not None
    if figure.kind == "limit":
        return figure.ours / figure.target
    if figure.kind == "speedup":
        return figure.target / figure.ratio if figure.ratio else float("inf")
    return figure.ratio / figure.target


def plot(figures: list[Figure], path: Path, title: str = "") -> Path | None:
    """A PNG with one bar per figure that has a target: the share of the target it uses (left
    of the line: met), labelled with the measured value and the target.

    matplotlib is the optional ``bench`` extra; without it, say how to get it and return None.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(
            'no chart: matplotlib is not installed. Install it with `pip install -e ".[bench]"` '
            "(or `pip install matplotlib`) and run again.",
            file=sys.stderr,
        )
        return None
    shown = [f for f in figures if f.target is not None]
    if not shown:
        return None
    loads = [budget(f) for f in shown]
    fig, ax = plt.subplots(figsize=(11, 0.42 * len(shown) + 1.4))
    ys = list(range(len(shown)))[::-1]
    colors = ["#2f855a" if f.met else "#c53030" for f in shown]
    ax.barh(ys, loads, color=colors, height=0.6)
    ax.axvline(1.0, color="#1a202c", linewidth=1)
    ax.set_xscale("log")
    low, high = min([*loads, 1.0]), max([*loads, 1.0])
    ax.set_xlim(low / 1.6, high * 4)
    ax.set_yticks(ys)
    ax.set_yticklabels([f.name for f in shown], fontsize=8)
    for y, figure, load in zip(ys, shown, loads, strict=True):
        measured = (
            format_value(figure.ours, figure.unit) if figure.kind == "limit" else figure.describe_ratio()
        )
        verdict = "met" if figure.met else "MISSED"
        ax.text(
            load * 1.08,
            y,
            f"{measured} (target {figure.describe_target()}): {verdict}",
            va="center",
            fontsize=7.5,
        )
    ax.set_xlabel("share of the target used (log scale; left of the line: target met)", fontsize=8)
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks([t for t in (0.1, 0.2, 0.3, 0.5, 1, 2, 3, 5, 10) if low / 1.6 <= t <= high * 4])
    ax.tick_params(axis="x", labelsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
