"""Metrics: an observer turning the model's events into the numbers a run is judged by.

- allocation latency (``alloc`` events, entry to return): an HDR histogram in ns (3 significant
  digits, exact count and max) plus bpftrace-style log2 buckets;
- direct-reclaim stalls from ``mm_vmscan_direct_reclaim_begin/end`` pairs (exact durations);
- inode counters from ``inode_cleanup`` (in reclaim when the task has ``PF_MEMALLOC``),
  ``inode_deferred`` and ``inode_evicted``;
- per-task time spent in uninterruptible waits (``block``/``wake`` in ``D``);
- time series: free pages and watermarks of ``sim.pgdat.zone`` (sampled at mm events) and
  queue depths (``queue_depth`` events), with at most one point per ``sample_ns`` of virtual
  time — the lowest free-page count and the deepest queue in it — so that a run of tens of
  millions of events keeps a plot-sized series.

No timers: sampling at events never changes the schedule or the end time of a run.
"""

from __future__ import annotations

from typing import Any, Callable

from hdrh.histogram import HdrHistogram

from reclaimlab.check.splat import Detector
from reclaimlab.sim import NSEC_PER_MSEC, NSEC_PER_SEC, PF_MEMALLOC

# 1 ns .. ~2.8 h of virtual time, 3 significant digits
_HIST_MAX_NS = 10_000 * NSEC_PER_SEC
# distinct latencies counted before they are handed to the histogram
_PENDING_MAX = 4096
CDF_PERCENTILES = (
    *range(0, 90, 2), *[90 + i / 2 for i in range(18)], 99.0, 99.5, 99.9, 99.99, 100.0,
)


def nearest_rank(sorted_values: list[int], pct: float) -> int:
    """The ``pct`` percentile of sorted values by the nearest-rank method (exact, no bins)."""
    if not sorted_values:
        return 0
    rank = max(1, -(-len(sorted_values) * pct // 100))
    return sorted_values[min(len(sorted_values), int(rank)) - 1]


def zone_watermarks(zone: Any) -> tuple[int, int, int]:
    """``(min, low, high)``: ``zone->_watermark[WMARK_MIN..WMARK_HIGH]``."""
    wm = zone.watermark
    return wm[0], wm[1], wm[2]


class Series:
    """A step series keeping, per ``quantum_ns`` slot, one point: the extreme (``pick``) value
    seen in the slot, at the slot's first sample time; a value equal to the last is dropped."""

    def __init__(self, quantum_ns: int, pick: Callable[[int, int], int]) -> None:
        self.quantum_ns = quantum_ns
        self.pick = pick
        self.points: list[tuple[int, int]] = []
        self.slot = -1

    def add(self, t: int, value: int) -> None:
        points = self.points
        slot = t // self.quantum_ns
        if slot == self.slot:
            t0, old = points[-1]
            best = self.pick(old, value)
            if best != old:
                points[-1] = (t0, best)
        elif not points or points[-1][1] != value:
            points.append((t, value))
            self.slot = slot


class Metrics(Detector):
    """Observer collecting the run's measurements."""

    def __init__(self, sim: Any, sample_ns: int = NSEC_PER_MSEC) -> None:
        self.sim = sim
        self.sample_ns = sample_ns
        self.alloc_hist = HdrHistogram(1, _HIST_MAX_NS, 3)
        self.alloc_pending: dict[int, int] = {}
        self.alloc_count = 0
        self.alloc_max = 0
        self.alloc_log2: list[int] = []
        self.dr_begin: dict[int, int] = {}
        self.direct_reclaim_ns: list[int] = []
        self.inodes_cleaned_in_reclaim = 0
        self.inodes_deferred = 0
        self.inodes_evicted = 0
        self.block_since: dict[int, int] = {}
        self.blocked: dict[int, dict[str, Any]] = {}
        self.free_series = Series(sample_ns, min)
        self.watermarks: list[tuple[int, int, int, int]] = []
        self.queue_series: dict[str, Series] = {}
        self.event_routes = self.handlers()  # the runtime merges these with other observers'

    def handlers(self) -> dict[str, Callable[[Any, Any, Any], None]]:
        return {"block": self.on_block, "wake": self.on_wake, "exit": self.on_wake,
                "alloc": self.on_alloc,
                "mm_vmscan_direct_reclaim_begin": self.on_direct_reclaim_begin,
                "mm_vmscan_direct_reclaim_end": self.on_direct_reclaim_end,
                "mm_vmscan_kswapd_wake": self.on_mm, "mm_vmscan_kswapd_sleep": self.on_mm,
                "mm_shrink_slab_end": self.on_mm, "oom_kill": self.on_mm,
                "inode_cleanup": self.on_inode_cleanup, "inode_deferred": self.on_inode_deferred,
                "inode_evicted": self.on_inode_evicted, "queue_depth": self.on_queue_depth}

    def on_block(self, task: Any, obj: Any, state: Any) -> None:
        if state == "D":
            self.block_since[task.pid] = self.sim.now

    def on_wake(self, task: Any, obj: Any, info: Any) -> None:
        since = self.block_since.pop(task.pid, None)
        if since is not None:
            self.add_blocked(task, self.sim.now - since)

    def on_alloc(self, task: Any, obj: Any, info: Any) -> None:
        self.record_alloc(int(info["ns"]))
        if self.watermarks:
            pgdat = getattr(self.sim, "pgdat", None)
            if pgdat is not None:
                self.free_series.add(self.sim.now, pgdat.zone.free_pages)
        else:
            self.sample_zone()

    def on_direct_reclaim_begin(self, task: Any, obj: Any, info: Any) -> None:
        self.dr_begin[task.pid] = self.sim.now
        self.sample_zone()

    def on_direct_reclaim_end(self, task: Any, obj: Any, info: Any) -> None:
        begin = self.dr_begin.pop(task.pid, None)
        if begin is not None:
            self.direct_reclaim_ns.append(self.sim.now - begin)
        self.sample_zone()

    def on_mm(self, task: Any, obj: Any, info: Any) -> None:
        self.sample_zone()

    def on_inode_cleanup(self, task: Any, inode: Any, info: Any) -> None:
        if task is not None and task.flags & PF_MEMALLOC:
            self.inodes_cleaned_in_reclaim += 1

    def on_inode_deferred(self, task: Any, inode: Any, info: Any) -> None:
        self.inodes_deferred += 1

    def on_inode_evicted(self, task: Any, inode: Any, info: Any) -> None:
        self.inodes_evicted += 1

    def on_queue_depth(self, task: Any, obj: Any, info: Any) -> None:
        series = self.queue_series.get(info["name"])
        if series is None:
            series = self.queue_series[info["name"]] = Series(self.sample_ns, max)
        series.add(self.sim.now, int(info["depth"]))

    def record_alloc(self, ns: int) -> None:
        """Count one latency. Virtual-time latencies repeat a lot, so they are counted per
        value and handed to the HDR histogram in batches (``record_value(v, count)``)."""
        self.alloc_count += 1
        pending = self.alloc_pending
        if ns in pending:
            pending[ns] += 1
        else:
            pending[ns] = 1
            if len(pending) > _PENDING_MAX:
                self.flush_allocs()
            if ns > self.alloc_max:
                self.alloc_max = ns
        b = ns.bit_length()  # bpftrace hist(): 0 for 0, k for [2^(k-1), 2^k)
        buckets = self.alloc_log2
        if b >= len(buckets):
            buckets.extend([0] * (b + 1 - len(buckets)))
        buckets[b] += 1

    def flush_allocs(self) -> None:
        for ns, count in self.alloc_pending.items():
            self.alloc_hist.record_value(min(ns, _HIST_MAX_NS), count)
        self.alloc_pending.clear()

    def add_blocked(self, task: Any, ns: int) -> None:
        row = self.blocked.setdefault(task.pid, {"task": f"{task.comm}:{task.pid}",
                                                 "blocked_ns": 0, "waits": 0, "max_ns": 0})
        row["blocked_ns"] += ns
        row["waits"] += 1
        row["max_ns"] = max(row["max_ns"], ns)

    def sample_zone(self) -> None:
        """Sample free pages, and watermarks when they changed (at reclaim events: they do not
        move at a plain allocation)."""
        pgdat = getattr(self.sim, "pgdat", None)
        if pgdat is None:
            return
        now = self.sim.now
        self.free_series.add(now, int(pgdat.zone.free_pages))
        wm = zone_watermarks(pgdat.zone)
        if not self.watermarks or self.watermarks[-1][1:] != wm:
            self.watermarks.append((now, *wm))

    # ------------------------------------------------------------------ summaries
    @property
    def free_pages(self) -> list[tuple[int, int]]:
        """``(time, free pages)`` points."""
        return self.free_series.points

    @property
    def queue_depth(self) -> dict[str, list[tuple[int, int]]]:
        """Queue name -> ``(time, depth)`` points."""
        return {name: s.points for name, s in self.queue_series.items()}

    def finish(self) -> None:
        """Count waits still in progress at the end of the run."""
        for pid, since in list(self.block_since.items()):
            self.add_blocked(self.sim.tasks[pid], self.sim.now - since)
        self.block_since.clear()
        self.sample_zone()

    def alloc_latency(self) -> dict[str, int]:
        self.flush_allocs()
        h = self.alloc_hist
        if not self.alloc_count:
            return {"count": 0, "p50": 0, "p90": 0, "p99": 0, "p999": 0, "max": 0}
        return {"count": self.alloc_count,
                "p50": min(h.get_value_at_percentile(50), self.alloc_max),
                "p90": min(h.get_value_at_percentile(90), self.alloc_max),
                "p99": min(h.get_value_at_percentile(99), self.alloc_max),
                "p999": min(h.get_value_at_percentile(99.9), self.alloc_max),
                "max": self.alloc_max}

    def alloc_latency_hist(self) -> str:
        """The allocation-latency histogram in HdrHistogram's compressed base64 encoding, so
        runs can be merged (sweeps add histograms across seeds)."""
        self.flush_allocs()
        return self.alloc_hist.encode().decode("ascii")

    def alloc_latency_cdf(self) -> list[list[float]]:
        """``[[ns, fraction], …]`` at ``CDF_PERCENTILES``, for plots and comparisons."""
        if not self.alloc_count:
            return []
        self.flush_allocs()
        return [[min(self.alloc_hist.get_value_at_percentile(p), self.alloc_max), p / 100]
                for p in CDF_PERCENTILES]

    def direct_reclaim(self) -> dict[str, int]:
        stalls = sorted(self.direct_reclaim_ns)
        return {"count": len(stalls), "total_ns": sum(stalls),
                "p99_ns": nearest_rank(stalls, 99), "max_ns": stalls[-1] if stalls else 0}

    def blocked_time(self) -> list[dict[str, Any]]:
        """Per-task uninterruptible wait time, longest first."""
        return sorted(self.blocked.values(), key=lambda r: (-r["blocked_ns"], r["task"]))
