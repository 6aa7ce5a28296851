"""Knowledge reads as the data grows: search_knowledge and list_knowledge_items at 1,000 items
and at a large size, side by side (alternating, several repetitions), through the repository.

Items have a title of two words and a content of 50 words from a vocabulary of 3,000 (about
300 characters), their word index built in bulk the way a migration or an import builds it.
Each figure is the large size's median over the small size's; the issue's target is 3 times.

    python tests/benchmarks/bench_knowledge.py [--large 100000] [--repetitions 7]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Figure, alternate, print_table, write_report

from mcp_state.db import Database
from mcp_state.repositories.knowledge import KnowledgeRepository, reindex_sql

QUERIES = {"one word": "w5", "two words": "w17 w2000", "four words": "w1 w2 w3 w4"}


def build(path: Path, items: int) -> float:
    """A database of ``items`` knowledge items at ``path``; returns the seconds the index took."""
    with Database(path, idle_release=None) as db:
        conn = db.cursor()
        conn.execute(
            f"""INSERT INTO knowledge_items (id, title, content, category, tags, status, created_at, updated_at)
                SELECT 'km_' || i, 'Title w' || (hash(i) % 3000) || ' w' || (hash(i + 1) % 3000),
                       (SELECT string_agg('w' || (hash(i * 100 + j) % 3000), ' ') FROM range(50) r(j)),
                       'metrics', to_json(['t' || (i % 50)]), 'approved',
                       TIMESTAMP '2025-01-01' + INTERVAL (i) SECOND, TIMESTAMP '2025-01-01' + INTERVAL (i) SECOND
                FROM range({items}) t(i)"""
        )
        started = time.perf_counter()
        for sql in reindex_sql("SELECT id FROM knowledge_items"):
            conn.execute(sql)
        return time.perf_counter() - started


def timed(call: Callable[[KnowledgeRepository], object], repo: KnowledgeRepository) -> Callable[[], None]:
    """A side for ``alternate``: runs the call, returns nothing (so its wall time is taken)."""

    def side() -> None:
        call(repo)

    return side


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--repetitions", type=int, default=7)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-knowledge-"))
    index_seconds = {n: build(folder / f"k{n}.duckdb", n) for n in (args.small, args.large)}
    dbs = {n: Database(folder / f"k{n}.duckdb", idle_release=None) for n in (args.small, args.large)}
    repos = {n: KnowledgeRepository(db) for n, db in dbs.items()}
    calls = {
        f"search_knowledge, {label}": (lambda r, q=q: r.search_ranked(q, limit=51))
        for label, q in QUERIES.items()
    }
    calls["list_knowledge_items"] = lambda r: r.list_summaries(limit=51)
    calls["list_knowledge_items, sort=votes"] = lambda r: r.list_summaries(sort="votes", limit=51)
    figures = []
    for name, call in calls.items():
        stats = alternate(
            {"large": timed(call, repos[args.large]), "small": timed(call, repos[args.small])},
            repetitions=args.repetitions,
        )
        figures.append(
            Figure(
                name=f"{name}: {args.large:,} vs {args.small:,} items",
                ours_label=f"{args.large:,} items",
                ours=stats["large"].median,
                other_label=f"{args.small:,} items",
                other=stats["small"].median,
                unit="s",
                target=3.0,
                ours_spread=stats["large"].spread,
                other_spread=stats["small"].spread,
                section="knowledge",
            )
        )
    for db in dbs.values():
        db.close()
    print_table(figures)
    print(
        f"word index built in bulk: {', '.join(f'{n:,} items {s:.1f} s' for n, s in index_seconds.items())}"
    )
    write_report("knowledge", figures, {"index_build_seconds": index_seconds})


if __name__ == "__main__":
    main()
