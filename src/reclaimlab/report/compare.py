"""Several designs side by side, in the style of mmtests' ``compare-kernels.sh``.

A row of outcomes (how each design's runs ended: a hung or OOM-killed run's latencies are
not comparable), then one row per metric, one column per design: the arithmetic mean over that
design's seeds and, in brackets, the change against the first design (``(   0.00%)`` for the
baseline itself). Then,
per design, bpftrace-style log2 histograms of allocation latency (``@alloc_latency_ns[design]``),
summed over seeds.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable

_BAR = 52

METRICS: list[tuple[str, Callable[[dict[str, Any]], float]]] = [
    ("alloc latency p50 (ns)", lambda r: r["alloc_latency_ns"]["p50"]),
    ("alloc latency p90 (ns)", lambda r: r["alloc_latency_ns"]["p90"]),
    ("alloc latency p99 (ns)", lambda r: r["alloc_latency_ns"]["p99"]),
    ("alloc latency p99.9 (ns)", lambda r: r["alloc_latency_ns"]["p999"]),
    ("alloc latency max (ns)", lambda r: r["alloc_latency_ns"]["max"]),
    ("allocations", lambda r: r["alloc_latency_ns"]["count"]),
    ("direct reclaim stalls", lambda r: r["direct_reclaim"]["count"]),
    ("direct reclaim total (ns)", lambda r: r["direct_reclaim"]["total_ns"]),
    ("direct reclaim p99 (ns)", lambda r: r["direct_reclaim"]["p99_ns"]),
    ("direct reclaim max (ns)", lambda r: r["direct_reclaim"]["max_ns"]),
    ("inodes evicted", lambda r: r["inodes"]["evicted"]),
    ("inodes cleaned in reclaim", lambda r: r["inodes"]["evicted_in_reclaim"]),
    ("inodes deferred", lambda r: r["inodes"]["deferred"]),
    ("inodes leaked", lambda r: r["inodes"]["leaked"]),
    ("warnings", lambda r: len(r["warnings"])),
    ("deadlocks", lambda r: len(r["deadlocks"])),
    ("sim time (ns)", lambda r: r["sim_time_ns"]),
    ("events", lambda r: r["events"]),
]


def by_design(runs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Runs grouped by design, designs in first-seen order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault(r["design"], []).append(r)
    return groups


def pct_delta(value: float, base: float) -> float:
    if base == 0:
        return 0.0 if value == 0 else float("inf")
    return (value - base) / base * 100


def outcomes(runs: list[dict[str, Any]]) -> str:
    """How a design's runs ended, most common first: ``completed`` or ``completed 2, hung 1``.
    The means below include every run: this row keeps a hung or OOM-killed design from passing
    for a fast one."""
    counts = Counter(r.get("outcome") or "error" for r in runs)  # a sweep row that raised has none
    if len(counts) == 1:
        return next(iter(counts))
    return ", ".join(f"{o} {n}" for o, n in sorted(counts.items(), key=lambda x: (-x[1], x[0])))


def compare_table(runs: list[dict[str, Any]]) -> str:
    """The compare-kernels table: a row of outcomes, then
    ``Amean metric  v1 (   0.00%)  v2 ( -12.50%) …``."""
    groups = by_design(runs)
    designs = list(groups)
    name_w = max(len(n) for n, _ in METRICS) + 7
    col_w = 24
    lines = [" " * name_w + "".join(f"{d:>{col_w}}" for d in designs),
             f"{'Outcome':<{name_w}}" + "".join(f"{outcomes(groups[d]):>{col_w}}"
                                                  for d in designs)]
    for name, get in METRICS:
        means = [sum(get(r) for r in groups[d]) / len(groups[d]) for d in designs]
        cells = []
        for m in means:
            delta = pct_delta(m, means[0])
            pct = f"{delta:7.2f}%" if delta != float("inf") else "    inf%"
            cells.append(f"{m:>{col_w - 12}.2f} ({pct})")
        lines.append(f"Amean  {name:<{name_w - 7}}" + "".join(f"{c:>{col_w}}" for c in cells))
    return "\n".join(lines)


def _bound(k: int) -> str:
    """bpftrace's bucket bound: 1, 2, 4 … 512, 1K, 2K … 1M … (powers of 1024)."""
    v = 1 << k
    for suffix, scale in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if v >= scale:
            return f"{v // scale}{suffix}"
    return str(v)


def log2_histogram(name: str, buckets: list[int]) -> str:
    """bpftrace ``print(@name)`` of a ``hist()`` map from log2 bucket counts."""
    lines = [f"@{name}:"]
    if not any(buckets):
        return lines[0] + " (empty)"
    first = next(i for i, c in enumerate(buckets) if c)
    last = max(i for i, c in enumerate(buckets) if c)
    top = max(buckets)
    for k in range(first, last + 1):
        if k == 0:
            label = "[0]"
        elif k == 1:
            label = "[1]"
        else:
            label = f"[{_bound(k - 1)}, {_bound(k)})"
        count = buckets[k]
        bar = "@" * (count * _BAR // top)
        lines.append(f"{label:<20}{count:>8} |{bar:<{_BAR}}|")
    return "\n".join(lines)


def sum_buckets(histograms: list[list[int]]) -> list[int]:
    """Add log2 bucket counts of several runs."""
    summed: list[int] = []
    for buckets in histograms:
        if len(buckets) > len(summed):
            summed.extend([0] * (len(buckets) - len(summed)))
        for k, count in enumerate(buckets):
            summed[k] += count
    return summed


def compare_report(runs: list[dict[str, Any]]) -> str:
    """Table, then one latency histogram per design."""
    parts = [compare_table(runs)]
    for design, group in by_design(runs).items():
        parts.append(log2_histogram(f"alloc_latency_ns[{design}]",
                                    sum_buckets([r.get("alloc_latency_log2", []) for r in group])))
    return "\n\n".join(parts)
