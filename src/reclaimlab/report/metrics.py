"""Metrics: an observer turning the model's events into the numbers a run is judged by.

- allocation latency (``alloc`` events, entry to return): an HDR histogram in ns (3 significant
  digits, exact count and max) plus bpftrace-style log2 buckets;
- direct-reclaim stalls from ``mm_vmscan_direct_reclaim_begin/end`` pairs (exact durations);
- inode counters from ``inode_cleanup`` (in reclaim when the task has ``PF_MEMALLOC``),
  ``inode_deferred`` and ``inode_evicted``;
- per-task time spent in uninterruptible waits (``block``/``wake`` in ``D``);
- time series: free pages and watermarks of ``sim.pgdat.zone`` (sampled at mm events, when they
  changed) and queue depths (``queue_depth`` events).

No timers: sampling at events never changes the schedule or the end time of a run.
"""

from __future__ import annotations

from typing import Any

from hdrh.histogram import HdrHistogram

from reclaimlab.sim import NSEC_PER_SEC, PF_MEMALLOC

# 1 ns .. ~2.8 h of virtual time, 3 significant digits
_HIST_MAX_NS = 10_000 * NSEC_PER_SEC
_MM_SAMPLE_KINDS = (
    "alloc", "mm_vmscan_direct_reclaim_begin", "mm_vmscan_direct_reclaim_end",
    "mm_vmscan_kswapd_wake", "mm_vmscan_kswapd_sleep", "mm_shrink_slab_end", "oom_kill",
)
CDF_PERCENTILES = (
    *range(0, 90, 2), *[90 + i / 2 for i in range(18)], 99.0, 99.5, 99.9, 99.99, 100.0,
)


def nearest_rank(sorted_values: list[int], pct: float) -> int:
    """The ``pct`` percentile of sorted values by the nearest-rank method (exact, no bins)."""
    if not sorted_values:
        return 0
    rank = max(1, -(-len(sorted_values) * pct // 100))
    return sorted_values[min(len(sorted_values), int(rank)) - 1]


def log2_bucket(ns: int) -> int:
    """bpftrace ``hist()`` bucket: 0 for 0, k for values in [2^(k-1), 2^k)."""
    return int(ns).bit_length()


def zone_watermarks(zone: Any) -> tuple[int, int, int]:
    """``(min, low, high)`` from ``zone.watermark`` (a list indexed by WMARK_* or a dict)."""
    wm = zone.watermark
    if isinstance(wm, dict):
        return int(wm["min"]), int(wm["low"]), int(wm["high"])
    return int(wm[0]), int(wm[1]), int(wm[2])


class Metrics:
    """Observer collecting the run's measurements."""

    def __init__(self, sim: Any) -> None:
        self.sim = sim
        self.alloc_hist = HdrHistogram(1, _HIST_MAX_NS, 3)
        self.alloc_count = 0
        self.alloc_max = 0
        self.alloc_log2: list[int] = []
        self.dr_begin: dict[int, int] = {}
        self.direct_reclaim_ns: list[int] = []
        self.inodes_cleaned = 0
        self.inodes_cleaned_in_reclaim = 0
        self.inodes_deferred = 0
        self.inodes_evicted = 0
        self.block_since: dict[int, int] = {}
        self.blocked: dict[int, dict[str, Any]] = {}
        self.free_pages: list[tuple[int, int]] = []
        self.watermarks: list[tuple[int, int, int, int]] = []
        self.queue_depth: dict[str, list[tuple[int, int]]] = {}

    def event(self, kind: str, task: Any, obj: Any, info: Any) -> None:
        if kind == "block":
            if info == "D":
                self.block_since[task.pid] = self.sim.now
        elif kind == "wake" or kind == "exit":
            since = self.block_since.pop(task.pid, None)
            if since is not None:
                self.add_blocked(task, self.sim.now - since)
        elif kind == "alloc":
            self.record_alloc(int(info["ns"]))
        elif kind == "mm_vmscan_direct_reclaim_begin":
            self.dr_begin[task.pid] = self.sim.now
        elif kind == "mm_vmscan_direct_reclaim_end":
            begin = self.dr_begin.pop(task.pid, None)
            if begin is not None:
                self.direct_reclaim_ns.append(self.sim.now - begin)
        elif kind == "inode_cleanup":
            self.inodes_cleaned += 1
            if task is not None and task.flags & PF_MEMALLOC:
                self.inodes_cleaned_in_reclaim += 1
        elif kind == "inode_deferred":
            self.inodes_deferred += 1
        elif kind == "inode_evicted":
            self.inodes_evicted += 1
        elif kind == "queue_depth":
            self.queue_depth.setdefault(info["name"], []).append((self.sim.now, int(info["depth"])))
        if kind in _MM_SAMPLE_KINDS:
            self.sample_zone()

    def record_alloc(self, ns: int) -> None:
        self.alloc_count += 1
        self.alloc_hist.record_value(min(ns, _HIST_MAX_NS))
        if ns > self.alloc_max:
            self.alloc_max = ns
        b = log2_bucket(ns)
        buckets = self.alloc_log2
        if b >= len(buckets):
            buckets.extend([0] * (b + 1 - len(buckets)))
        buckets[b] += 1

    def add_blocked(self, task: Any, ns: int) -> None:
        row = self.blocked.setdefault(task.pid, {"task": f"{task.comm}:{task.pid}",
                                                 "blocked_ns": 0, "waits": 0, "max_ns": 0})
        row["blocked_ns"] += ns
        row["waits"] += 1
        row["max_ns"] = max(row["max_ns"], ns)

    def sample_zone(self) -> None:
        """Append free pages / watermarks when they changed since the last sample."""
        pgdat = getattr(self.sim, "pgdat", None)
        if pgdat is None:
            return
        now = self.sim.now
        free = int(pgdat.zone.free_pages)
        if not self.free_pages or self.free_pages[-1][1] != free:
            self.free_pages.append((now, free))
        wm = zone_watermarks(pgdat.zone)
        if not self.watermarks or self.watermarks[-1][1:] != wm:
            self.watermarks.append((now, *wm))

    # ------------------------------------------------------------------ summaries
    def finish(self) -> None:
        """Count waits still in progress at the end of the run."""
        for pid, since in list(self.block_since.items()):
            self.add_blocked(self.sim.tasks[pid], self.sim.now - since)
        self.block_since.clear()
        self.sample_zone()

    def alloc_latency(self) -> dict[str, int]:
        h = self.alloc_hist
        if not self.alloc_count:
            return {"count": 0, "p50": 0, "p90": 0, "p99": 0, "p999": 0, "max": 0}
        return {"count": self.alloc_count,
                "p50": min(h.get_value_at_percentile(50), self.alloc_max),
                "p90": min(h.get_value_at_percentile(90), self.alloc_max),
                "p99": min(h.get_value_at_percentile(99), self.alloc_max),
                "p999": min(h.get_value_at_percentile(99.9), self.alloc_max),
                "max": self.alloc_max}

    def alloc_latency_cdf(self) -> list[list[float]]:
        """``[[ns, fraction], …]`` at ``CDF_PERCENTILES``, for plots and comparisons."""
        if not self.alloc_count:
            return []
        return [[min(self.alloc_hist.get_value_at_percentile(p), self.alloc_max), p / 100]
                for p in CDF_PERCENTILES]

    def direct_reclaim(self) -> dict[str, int]:
        stalls = sorted(self.direct_reclaim_ns)
        return {"count": len(stalls), "total_ns": sum(stalls),
                "p99_ns": nearest_rank(stalls, 99), "max_ns": stalls[-1] if stalls else 0}

    def blocked_time(self) -> list[dict[str, Any]]:
        """Per-task uninterruptible wait time, longest first."""
        return sorted(self.blocked.values(), key=lambda r: (-r["blocked_ns"], r["task"]))
