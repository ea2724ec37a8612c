"""kswapd (kernel-semantics §2): woken below low, reclaims to high, gives up when nothing is
reclaimable."""

from __future__ import annotations

from reclaimlab.mm import gfp as G
from reclaimlab.mm.anon import do_anonymous_page, get_task_mm
from reclaimlab.mm.filemap import address_space, page_cache_ra_unbounded
from reclaimlab.mm.page_alloc import MAX_RECLAIM_RETRIES, alloc_pages
from reclaimlab.sim import NSEC_PER_MSEC, NSEC_PER_SEC, current


def read_file(sim, pages: int):
    m = address_space(sim, "bigfile")
    yield from page_cache_ra_unbounded(m, 0, pages, G.GFP_HIGHUSER_MOVABLE)
    return m


def dip_below_low(pgdat, keep: list):
    """Allocate (GFP_KERNEL) until the zone is below its low watermark."""
    z = pgdat.zone
    while z.free_pages >= z.watermark[1]:
        keep.append((yield from alloc_pages(G.GFP_KERNEL, 0)))


def test_kswapd_reclaims_page_cache_from_below_low_to_above_high(node):
    sim, pgdat, rec = node(64)
    z = pgdat.zone
    keep: list = []

    def program():
        yield from read_file(sim, pgdat.nr_pages - z.watermark[2] - 200)
        assert z.free_pages > z.watermark[1]
        yield from dip_below_low(pgdat, keep)
    sim.spawn(program(), "reader")
    sim.run(until=NSEC_PER_SEC)
    assert z.free_pages < z.watermark[1] or rec.of("mm_vmscan_kswapd_wake")
    wakes = rec.of("mm_vmscan_kswapd_wake")
    assert wakes and pgdat.stats.kswapd_wakes >= 1
    # balanced: above high, and kswapd went back to sleep after its last wake
    assert z.free_pages > z.watermark[2]
    assert rec.of("mm_vmscan_kswapd_sleep")[-1][5] >= wakes[-1][5]
    assert pgdat.kswapd.state != "X" and pgdat.kswapd_failures == 0
    assert pgdat.stats.pgsteal > 0
    assert pgdat.check_invariants() == []


def test_kswapd_fails_and_gives_up_when_nothing_is_reclaimable(node):
    sim, pgdat, rec = node(64)
    z = pgdat.zone

    def hog():
        yield from do_anonymous_page(get_task_mm(current()), pgdat.nr_pages - z.watermark[1] + 32)
        yield 10 * NSEC_PER_SEC
    sim.spawn(hog(), "hog")                      # anonymous memory, no swap: pinned
    sim.run(until=NSEC_PER_SEC)
    assert z.free_pages < z.watermark[2]
    assert pgdat.kswapd_failures >= MAX_RECLAIM_RETRIES
    assert pgdat.kswapd.wait_state == "S"        # asleep: the node is left to direct reclaim
    n = len(rec.of("mm_vmscan_kswapd_wake"))
    # further allocations below low no longer wake a hopeless kswapd
    sim.spawn(alloc_then_sleep(), "more")
    sim.run(until=2 * NSEC_PER_SEC)
    assert len(rec.of("mm_vmscan_kswapd_wake")) == n


def alloc_then_sleep():
    yield from alloc_pages(G.GFP_KERNEL, 0)
    yield NSEC_PER_MSEC


def test_kswapd_holds_fs_reclaim_and_runs_shrinkers_with_gfp_kernel(node):
    from reclaimlab.mm.shrinker import Shrinker, register_shrinker
    sim, pgdat, rec = node(64)
    seen = []

    def count(sc):
        return 100_000

    def scan(sc):
        t = current()
        seen.append((t.comm, sc.gfp_mask, pgdat.fs_reclaim_map in t.held_locks))
        yield 0
        return 0
    register_shrinker(sim, Shrinker("test", count, scan))
    keep: list = []
    sim.spawn(dip_below_low(pgdat, keep), "alloc")
    sim.run(until=NSEC_PER_SEC)
    assert ("kswapd0", G.GFP_KERNEL, True) in seen


class BlockLog:
    def __init__(self):
        self.blocks = []

    def event(self, kind, task, obj, info):
        if kind == "block":
            self.blocks.append((task.comm, obj))


def test_direct_reclaimers_throttle_on_pfmemalloc_wait_but_kthreads_do_not(node, drain):
    from reclaimlab.sim import PF_KTHREAD
    sim, pgdat, rec = node(64)
    log = BlockLog()
    sim.add_observer(log)
    z = pgdat.zone
    sim.spawn(read_file(sim, pgdat.nr_pages // 2), "reader")
    sim.run(until=NSEC_PER_SEC)
    drain(pgdat, leave=z.watermark[0] // 4)          # below half the min watermark
    out = {}

    def user():
        out["user"] = yield from alloc_pages(G.GFP_KERNEL, 0)

    def kthread():
        out["kthread"] = yield from alloc_pages(G.GFP_KERNEL, 0)
    sim.spawn(kthread(), "kworker", flags=PF_KTHREAD)
    sim.spawn(user(), "user")
    sim.run(until=2 * NSEC_PER_SEC)
    assert out["user"] is not None and out["kthread"] is not None
    waits = [c for c, obj in log.blocks if obj is pgdat.pfmemalloc_wait]
    assert waits == ["user"]
    assert z.free_pages > z.watermark[0] // 2


def test_reclaim_throttles_on_writeback_and_io_completion_releases_it(node):
    from reclaimlab.mm.filemap import (
        address_space, filemap_dirty_folios, folio_clear_dirty_for_io, folio_end_writeback,
        folio_start_writeback, generic_perform_write,
    )
    from reclaimlab.mm.vmscan import VMSCAN_THROTTLE_WRITEBACK
    sim, pgdat, rec = node(64)
    log = BlockLog()
    sim.add_observer(log)
    m = address_space(sim, "log")

    def complete(batch):                         # the device's completion, 20 ms later
        for f in batch:
            folio_end_writeback(f)

    def flusher_writes():                        # what the VFS flusher does when reclaim asks
        batch = filemap_dirty_folios(m, 1 << 30)
        for f in batch:
            folio_clear_dirty_for_io(f)
            folio_start_writeback(f)
        sim.call_after(20 * NSEC_PER_MSEC, complete, batch)
    pgdat.wakeup_flusher_threads = flusher_writes

    def writer():
        return (yield from generic_perform_write(m, 0, 2 * pgdat.nr_pages, G.GFP_KERNEL))
    w = sim.spawn(writer(), "writer")
    sim.run(until=10 * NSEC_PER_SEC)
    throttled = [c for c, o in log.blocks if o is pgdat.reclaim_wait[VMSCAN_THROTTLE_WRITEBACK]]
    assert "kswapd0" in throttled
    assert w.state == "X" and w.exit_value == 2 * pgdat.nr_pages
    assert rec.of("oom_kill") == [] and rec.of("oom_panic") == []
    assert pgdat.check_invariants() == []
