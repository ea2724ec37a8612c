"""The human report of one run: the splats in dmesg order, rich tables, the allocation latency
as a bpftrace-style log2 histogram, a one-line verdict.

Built from the run result alone (its ``dmesg`` field holds the splats), so a saved result or a
replay prints the same report.
"""

from __future__ import annotations

import io
from collections import Counter
from typing import Any

from rich.console import Console
from rich.table import Table

from .compare import log2_histogram


def fmt_ns(ns: float) -> str:
    """A duration with a unit a reader takes in at a glance (``950 ns``, ``12.3 ms``)."""
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{int(ns)} ns"


def _table(title: str, columns: list[str], rows: list[list[str]]) -> Table:
    table = Table(title=title, title_justify="left")
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    return table


def tables(result: dict[str, Any], top_blocked: int = 10) -> list[Table]:
    lat = result["alloc_latency_ns"]
    dr = result["direct_reclaim"]
    ino = result["inodes"]
    out = [
        _table("Allocation latency", ["allocations", "p50", "p90", "p99", "p99.9", "max"],
               [[str(lat["count"]), *(fmt_ns(lat[k]) for k in ("p50", "p90", "p99", "p999",
                                                                "max"))]]),
        _table("Direct-reclaim stalls", ["stalls", "total", "p99", "max"],
               [[str(dr["count"]), fmt_ns(dr["total_ns"]), fmt_ns(dr["p99_ns"]),
                 fmt_ns(dr["max_ns"])]]),
        _table("Inodes", ["evicted", "cleaned up in reclaim", "deferred", "leaked"],
               [[str(ino["evicted"]), str(ino["evicted_in_reclaim"]), str(ino["deferred"]),
                 str(ino["leaked"])]]),
    ]
    blocked = result.get("blocked", [])[:top_blocked]
    if blocked:
        out.append(_table("D-state wait per task",
                          ["task", "waits", "total", "longest"],
                          [[r["task"], str(r["waits"]), fmt_ns(r["blocked_ns"]),
                            fmt_ns(r["max_ns"])] for r in blocked]))
    if result["invariants"]["violations"]:
        out.append(_table("Invariant violations", ["violation"],
                          [[v] for v in result["invariants"]["violations"]]))
    return out


def verdict(result: dict[str, Any]) -> str:
    """One line: outcome, what was reported, how long it ran."""
    kinds = Counter(w["kind"] for w in result["warnings"])
    warned = ", ".join(f"{n}× {k}" for k, n in sorted(kinds.items())) or "no warnings"
    return (f"{result['scenario']} [{result['design']}, seed {result['seed']}]: "
            f"{result['outcome'].upper()} — {warned}; {len(result['deadlocks'])} deadlock(s); "
            f"invariants {'ok' if result['invariants']['ok'] else 'VIOLATED'}; "
            f"{fmt_ns(result['sim_time_ns'])} simulated, {result['events']} events, "
            f"{result['wall_s']:.2f} s wall")


def render_human(result: dict[str, Any], width: int = 100) -> str:
    """The whole report as text."""
    console = Console(file=io.StringIO(), width=width, record=True, color_system=None)
    dmesg = result.get("dmesg", "")
    if dmesg:
        console.print(dmesg, end="", markup=False, highlight=False, soft_wrap=True)
        console.print()
    for table in tables(result):
        console.print(table)
    if result["alloc_latency_ns"]["count"]:
        console.print(log2_histogram("alloc_latency_ns", result.get("alloc_latency_log2", [])),
                      markup=False, highlight=False, soft_wrap=True)
        console.print()
    console.print(verdict(result), markup=False, highlight=False, soft_wrap=True)
    return console.export_text()
