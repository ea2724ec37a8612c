"""Metrics: latencies, stalls, inode counters, blocked time, time series."""

from types import SimpleNamespace

from reclaimlab.report import Metrics
from reclaimlab.report.metrics import nearest_rank
from reclaimlab.sim import (
    PF_MEMALLOC, Completion, Simulation, complete, current, wait_for_completion,
)


def run_with(sim, *programs, sample_ns=1):
    metrics = Metrics(sim, sample_ns)
    sim.add_observer(metrics)
    for i, p in enumerate(programs):
        sim.spawn(p(), f"t{i}")
    sim.run()
    metrics.finish()
    return metrics


def test_alloc_latency_percentiles_and_log2_buckets():
    sim = Simulation()

    def allocator():
        for ns in range(1, 101):
            sim.emit("alloc", current(), None, {"ns": ns, "order": 0, "gfp": "GFP_KERNEL"})
        yield 1

    m = run_with(sim, allocator)
    assert m.alloc_latency() == {"count": 100, "p50": 50, "p90": 90, "p99": 99, "p999": 100,
                                 "max": 100}
    assert m.alloc_log2[7] == 37  # bucket [64, 128): 64..100
    assert sum(m.alloc_log2) == 100


def test_direct_reclaim_stalls_are_exact_and_per_task():
    sim = Simulation()

    def reclaimer(lengths):
        def program():
            for ns in lengths:
                sim.emit("mm_vmscan_direct_reclaim_begin", current(), None, {})
                yield ns
                sim.emit("mm_vmscan_direct_reclaim_end", current(), None, {})
        return program

    m = run_with(sim, reclaimer([1000, 3000]), reclaimer([2000]))
    assert m.direct_reclaim() == {"count": 3, "total_ns": 6000, "p99_ns": 3000, "max_ns": 3000}


def test_inode_counters_and_cleanup_in_reclaim():
    sim = Simulation()

    def shrinker():
        yield 1
        current().flags |= PF_MEMALLOC
        sim.emit("inode_cleanup", current(), object(), {"ino": 1, "deferred": False})
        current().flags &= ~PF_MEMALLOC
        sim.emit("inode_cleanup", current(), object(), {"ino": 2, "deferred": False})
        sim.emit("inode_deferred", current(), object(), {"ino": 3})
        for _ in range(2):
            sim.emit("inode_evicted", current(), object(), {"ino": 4})

    m = run_with(sim, shrinker)
    assert (m.inodes_cleaned_in_reclaim, m.inodes_deferred, m.inodes_evicted) == (1, 1, 2)


def test_blocked_time_per_task_counts_d_waits_including_unfinished_ones():
    sim = Simulation()
    c = Completion("io")

    def waiter():
        yield from wait_for_completion(c)
        yield from wait_for_completion(Completion("never"))

    sim.call_after(5000, complete, c)

    def other():
        yield 9000

    m = run_with(sim, waiter, other)
    [row] = m.blocked_time()
    assert row == {"task": "t0:1", "blocked_ns": 5000 + 4000, "waits": 2, "max_ns": 5000}


def test_free_pages_and_queue_depth_series():
    sim = Simulation()
    zone = SimpleNamespace(free_pages=100, watermark=[10, 20, 30])
    sim.pgdat = SimpleNamespace(zone=zone)

    def program():
        for free in (90, 90, 80):
            zone.free_pages = free
            sim.emit("alloc", current(), None, {"ns": 1, "order": 0})
            sim.emit("queue_depth", current(), None, {"name": "inodegc", "depth": free // 10})
            yield 10

    m = run_with(sim, program)
    assert m.free_pages == [(0, 90), (20, 80)]
    assert m.watermarks == [(0, 10, 20, 30)]
    assert m.queue_depth == {"inodegc": [(0, 9), (20, 8)]}


def test_series_keep_one_extreme_point_per_quantum():
    sim = Simulation()
    zone = SimpleNamespace(free_pages=100, watermark=[10, 20, 30])
    sim.pgdat = SimpleNamespace(zone=zone)

    def program():
        for free, depth in ((90, 1), (70, 5), (95, 2), (60, 3)):
            zone.free_pages = free
            sim.emit("alloc", current(), None, {"ns": 1, "order": 0})
            sim.emit("queue_depth", current(), None, {"name": "inodegc", "depth": depth})
            yield 400

    m = run_with(sim, program, sample_ns=1000)
    assert m.free_pages == [(0, 70), (1200, 60)]  # slots [0, 1000) and [1000, 2000)
    assert m.queue_depth == {"inodegc": [(0, 5), (1200, 3)]}


def test_nearest_rank():
    assert nearest_rank([], 99) == 0
    assert nearest_rank([5], 99) == 5
    assert nearest_rank(list(range(1, 1001)), 99.9) == 999
