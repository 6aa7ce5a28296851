"""What every benchmark script shares: side-by-side timing, figures, and the report.

Each figure compares two ways of doing one thing, measured in one run, alternating A and B
over several repetitions so that a noisy neighbour slows both alike. A figure reports the
median and spread of each side and their ratio against a target.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
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
        return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]

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
    # "max": ours/other must be at most target; "speedup": other/ours must be at least target.
    kind: str = "max"
    ours_spread: float = 0.0
    other_spread: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        if self.kind == "speedup":
            return self.other / self.ours if self.ours else float("inf")
        return self.ours / self.other if self.other else float("inf")

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        return self.ratio >= self.target if self.kind == "speedup" else self.ratio <= self.target

    def describe_target(self) -> str:
        if self.target is None:
            return "-"
        return f"≥ {self.target:g}× faster" if self.kind == "speedup" else f"≤ {self.target:g}×"


def machine() -> dict[str, str]:
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": str(os.cpu_count()),
        "duckdb": _version("duckdb"),
        "mcp": _version("mcp"),
    }


def _version(module: str) -> str:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:  # noqa: BLE001 - a missing package is reported, not fatal
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
    return f"{value:g} {unit}"


def print_table(figures: list[Figure], out=sys.stdout) -> None:
    header = ("figure", "mcp-state", "baseline", "ratio", "target", "met")
    rows = [header]
    for fig in figures:
        ours = f"{format_value(fig.ours, fig.unit)} ±{fig.ours_spread:.0%}" if fig.ours_spread else format_value(fig.ours, fig.unit)
        other = (
            f"{fig.other_label}: {format_value(fig.other, fig.unit)}"
            + (f" ±{fig.other_spread:.0%}" if fig.other_spread else "")
        )
        met = {True: "yes", False: "NO", None: "-"}[fig.met]
        rows.append((fig.name, ours, other, f"{fig.ratio:.2f}×", fig.describe_target(), met))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    for i, row in enumerate(rows):
        print(" | ".join(str(cell).ljust(widths[j]) for j, cell in enumerate(row)), file=out)
        if i == 0:
            print("-+-".join("-" * w for w in widths), file=out)


def write_report(name: str, figures: list[Figure], notes: dict[str, object] | None = None) -> Path:
    """Write ``results/<name>.json`` (figures plus the machine) and return its path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    payload = {
        "machine": machine(),
        "figures": [dict(asdict(f), ratio=f.ratio, met=f.met) for f in figures],
        "notes": notes or {},
    }
    path.write_text(json.dumps(payload, indent=2, default=str))
    return path
