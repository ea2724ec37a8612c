#!/usr/bin/env python3
"""Regenerate the tables of docs/designs.md: every built-in scenario under every design.

Usage: ``python scripts/gen_designs_table.py [--seeds N] [--jobs J] [--doc PATH]``

Runs each built-in scenario under each design of the registry (``reclaimlab.vfs.designs``) for
seeds ``run.seed .. run.seed+N-1`` and rewrites the blocks between
``<!-- BEGIN GENERATED: NAME -->`` and ``<!-- END GENERATED: NAME -->``: ``scenarios`` (one
table per scenario, a row per design) and ``design DESIGN`` (a row per scenario). Other text is
left alone. With several seeds a cell shows the range over seeds (``lo–hi``).
"""

from __future__ import annotations

import argparse
import re
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from reclaimlab.scenario import builtin_names, load_scenario, run_scenario
from reclaimlab.vfs.designs import DESIGN_NAMES

DOC = Path(__file__).resolve().parent.parent / "docs" / "designs.md"
COLUMNS = ("outcome", "warnings", "evicted in reclaim", "deferred", "leaked", "fs errors",
           "alloc p99 / p99.9 / max (µs)", "direct reclaim (ms)")


def run(job: tuple[str, str, int]) -> dict[str, Any]:
    scenario, design, seed = job
    return run_scenario(scenario, design, seed)


def span(values: list[Any]) -> str:
    """One value, or the range over seeds."""
    lo, hi = min(values), max(values)
    return f"{lo}" if lo == hi else f"{lo}–{hi}"


def warnings_cell(results: list[dict[str, Any]]) -> str:
    kinds: dict[str, list[int]] = {}
    for r in results:
        for w in r["warnings"]:
            kinds.setdefault(w["kind"], [0] * len(results))
    for i, r in enumerate(results):
        for w in r["warnings"]:
            kinds[w["kind"]][i] += 1
    return ", ".join(f"{k} ×{span(v)}" for k, v in sorted(kinds.items())) or "—"


def fs_errors_cell(results: list[dict[str, Any]]) -> str:
    counts = [len(r.get("fs_errors", [])) for r in results]
    ro = any(e["read_only"] for r in results for e in r.get("fs_errors", []))
    return "—" if not any(counts) else f"{span(counts)}{' (read-only)' if ro else ''}"


def row(results: list[dict[str, Any]]) -> list[str]:
    us = lambda key: span([round(r["alloc_latency_ns"][key] / 1000, 1) for r in results])  # noqa: E731
    return [span([r["outcome"] for r in results]), warnings_cell(results),
            span([r["inodes"]["evicted_in_reclaim"] for r in results]),
            span([r["inodes"]["deferred"] for r in results]),
            span([r["inodes"]["leaked"] for r in results]), fs_errors_cell(results),
            f"{us('p99')} / {us('p999')} / {us('max')}",
            span([round(r["direct_reclaim"]["total_ns"] / 1e6, 2) for r in results])]


def table(first: str, rows: list[tuple[str, list[str]]]) -> str:
    head = f"| {first} | " + " | ".join(COLUMNS) + " |"
    rule = "| --- " * (len(COLUMNS) + 1) + "|"
    return "\n".join([head, rule] + [f"| {name} | " + " | ".join(cells) + " |"
                                     for name, cells in rows])


def replace_block(text: str, name: str, body: str) -> str:
    pattern = re.compile(rf"(<!-- BEGIN GENERATED: {re.escape(name)} -->\n).*?"
                         rf"(<!-- END GENERATED: {re.escape(name)} -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"{DOC}: no block 'BEGIN GENERATED: {name}'")
    return pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--doc", type=Path, default=DOC)
    args = ap.parse_args(argv)
    scenarios = builtin_names()
    jobs = []
    for sc in scenarios:
        first = load_scenario(sc).scenario.run.seed
        jobs += [(sc, d, s) for d in DESIGN_NAMES for s in range(first, first + args.seeds)]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        results = dict(zip(jobs, pool.map(run, jobs)))
    cells = {(sc, d): row([results[j] for j in jobs if j[:2] == (sc, d)])
             for sc in scenarios for d in DESIGN_NAMES}
    seeds = f"{args.seeds} seed{'s' if args.seeds > 1 else ''} each"
    text = args.doc.read_text(encoding="utf-8")
    text = replace_block(text, "scenarios", "\n\n".join(
        f"#### `{sc}` ({seeds})\n\n" + table("design", [(d, cells[sc, d]) for d in DESIGN_NAMES])
        for sc in scenarios))
    for d in DESIGN_NAMES:
        text = replace_block(text, f"design {d}",
                             table("scenario", [(sc, cells[sc, d]) for sc in scenarios]))
    args.doc.write_text(text, encoding="utf-8")
    print(f"rewrote {args.doc} ({len(jobs)} runs)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
