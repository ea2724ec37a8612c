"""do_shrink_slab's arithmetic and the registry (kernel-semantics §2, Shrinkers).

Expected scan counts are worked out here from the documented formula:
delta = (freeable >> priority) * 4 / seeks (seeks 0: freeable / 2);
total_scan = min((nr_deferred >> priority) + delta, 2 * freeable);
scan in batches while total_scan >= batch or total_scan >= freeable (counted once);
next_deferred = min(max(nr_deferred + delta - scanned, 0), 2 * freeable).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from reclaimlab.mm import gfp as G
from reclaimlab.mm.shrinker import (
    SHRINK_BATCH, SHRINK_STOP, Shrinker, do_shrink_slab, register_shrinker, shrink_control,
    shrink_slab, unregister_shrinker,
)
from reclaimlab.sim import down_write, up_write


class Cache:
    """A shrinkable population; records every nr_to_scan it is asked for."""

    def __init__(self, objects: int, stop_after: int | None = None) -> None:
        self.objects = objects
        self.calls: list[int] = []
        self.stop_after = stop_after

    def count(self, sc) -> int:
        return self.objects

    def scan(self, sc):
        if self.stop_after is not None and len(self.calls) >= self.stop_after:
            return SHRINK_STOP
        self.calls.append(sc.nr_to_scan)
        freed = min(sc.nr_to_scan, self.objects)
        self.objects -= freed
        yield 0
        return freed


def run_in_task(sim, gen):
    out = {}

    def task():
        out["v"] = yield from gen
    sim.spawn(task(), "reclaimer")
    sim.run()
    return out["v"]


def expected_scans(freeable, nr_deferred, priority, seeks, batch):
    delta = (freeable >> priority) * 4 // seeks if seeks else freeable // 2
    total = min((nr_deferred >> priority) + delta, 2 * freeable)
    scans = []
    while total >= batch or total >= freeable:
        n = min(batch, total)
        scans.append(n)
        total -= n
    next_deferred = min(max(nr_deferred + delta - sum(scans), 0), 2 * freeable)
    return scans, next_deferred


def test_low_pressure_only_defers(node):
    sim, pgdat, _ = node(64)
    c = Cache(10_000)
    s = Shrinker("c", c.count, c.scan)
    freed = run_in_task(sim, do_shrink_slab(pgdat, shrink_control(G.GFP_KERNEL, 12), s))
    # delta = (10000 >> 12) * 4 / 2 = 4: below a batch of 128 and below the population
    assert freed == 0 and c.calls == [] and s.nr_deferred == 4


def test_full_priority_scans_in_batches(node):
    sim, pgdat, _ = node(64)
    c = Cache(1000)
    s = Shrinker("c", c.count, c.scan, batch=300)
    freed = run_in_task(sim, do_shrink_slab(pgdat, shrink_control(G.GFP_KERNEL, 0), s))
    # delta = 1000 * 4 / 2 = 2000 = 2 * freeable: 300 x 6; the 200 left is below a batch
    # and below the population counted at the start; it is deferred.
    assert c.calls == [300] * 6
    assert freed == 1000 and s.nr_deferred == 200


def test_shrink_stop_aborts_and_defers_the_rest(node):
    sim, pgdat, _ = node(64)
    c = Cache(1000, stop_after=1)
    s = Shrinker("c", c.count, c.scan, batch=100)
    run_in_task(sim, do_shrink_slab(pgdat, shrink_control(G.GFP_KERNEL, 2), s))
    # delta = (1000 >> 2) * 2 = 500; one batch of 100 done, 400 deferred
    assert c.calls == [100] and s.nr_deferred == 400


def test_seeks_zero_means_half_the_population(node):
    sim, pgdat, _ = node(64)
    c = Cache(4096)
    s = Shrinker("gc", c.count, c.scan, seeks=0, batch=2049)
    run_in_task(sim, do_shrink_slab(pgdat, shrink_control(G.GFP_KERNEL, 12), s))
    assert c.calls == [] and s.nr_deferred == 2048           # first pass: 2048 < 2049
    # the next pass of a reclaim (priority 11) adds the deferred work: 1 + 2048 = a batch
    run_in_task(sim, do_shrink_slab(pgdat, shrink_control(G.GFP_KERNEL, 11), s))
    assert c.calls == [2049]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 50_000), st.integers(0, 100_000), st.integers(0, 12),
       st.integers(0, 4), st.sampled_from([0, 64, 1024]))
def test_scan_counts_follow_the_formula(freeable, deferred, priority, seeks, batch):
    from reclaimlab.mm.page_alloc import MemoryConfig, pglist_data
    from reclaimlab.sim import Simulation
    sim = Simulation()
    pgdat = pglist_data(sim, MemoryConfig(memory_bytes=8 << 20))
    c = Cache(freeable)
    s = Shrinker("c", c.count, c.scan, seeks=seeks, batch=batch)
    s.nr_deferred = deferred
    run_in_task(sim, do_shrink_slab(pgdat, shrink_control(G.GFP_KERNEL, priority), s))
    scans, next_deferred = expected_scans(freeable, deferred, priority, seeks,
                                          batch or SHRINK_BATCH)
    assert c.calls == scans
    assert s.nr_deferred == next_deferred


def test_registry_and_rwsem_trylock(node):
    sim, pgdat, _ = node(64)
    a, b = Cache(1000), Cache(1000)
    sa, sb = Shrinker("a", a.count, a.scan), Shrinker("b", b.count, b.scan)
    register_shrinker(sim, sa)
    register_shrinker(sim, sb)
    run_in_task(sim, shrink_slab(pgdat, G.GFP_KERNEL, 0))
    assert a.calls and b.calls
    unregister_shrinker(sim, sb)
    a.calls.clear()
    b.calls.clear()
    a.objects = 1000

    def writer_holds_rwsem():
        yield from down_write(pgdat.shrinker_rwsem)
        freed = yield from shrink_slab(pgdat, G.GFP_KERNEL, 0)
        up_write(pgdat.shrinker_rwsem)
        return freed
    assert run_in_task(sim, writer_holds_rwsem()) == 0     # trylock failed: nothing scanned
    assert a.calls == [] and b.calls == []
    run_in_task(sim, shrink_slab(pgdat, G.GFP_KERNEL, 0))
    assert a.calls and b.calls == []


def test_shrink_slab_emits_start_and_end(node):
    sim, pgdat, rec = node(64)
    c = Cache(1000)
    register_shrinker(sim, Shrinker("c", c.count, c.scan))
    run_in_task(sim, shrink_slab(pgdat, G.GFP_KERNEL, 0))
    (start,), (end,) = rec.of("mm_shrink_slab_start"), rec.of("mm_shrink_slab_end")
    assert start[3]["cache_items"] == 1000 and end[3]["freed"] == 1000
