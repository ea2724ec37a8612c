"""The anonymous fault path: batches of pages are accounted exactly as single pages would be."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from reclaimlab.mm import gfp as G
from reclaimlab.mm.anon import do_anonymous_page, get_task_mm
from reclaimlab.mm.mm_types import (
    LRU_INACTIVE_ANON, PG_active, PG_anon, PG_referenced, PG_swapbacked, PG_uptodate,
)
from reclaimlab.mm.page_alloc import (
    MemoryConfig, alloc_pages, alloc_pages_bulk, claim_block, pglist_data,
)
from reclaimlab.mm.swap import lruvec_add_folio
from reclaimlab.sim import Simulation, current

MEMORY = 16 << 20


def one_page_at_a_time(nr: int):
    """The fault path page by page, through the allocator's single-page entry and the LRU's
    one-folio primitive: what a batch must amount to."""
    mm = get_task_mm(current())
    pgdat = mm.pgdat
    flags = pgdat.mem_map.flags
    for _ in range(nr):
        pfn = yield from alloc_pages(G.GFP_HIGHUSER_MOVABLE, 0)
        claim_block(pgdat, pfn, 0, mm.id, len(mm.pages))
        mm.pages.append(pfn)
        flags[pfn] = (flags[pfn] | PG_anon | PG_swapbacked | PG_uptodate) \
            & ~(PG_active | PG_referenced)
        lruvec_add_folio(pgdat, pfn)
        mm.rss += 1
        pgdat.nr_anon += 1


def faults(nr: int):
    """``nr`` pages faulted in batches (``do_anonymous_page``)."""
    yield from do_anonymous_page(get_task_mm(current()), nr)


def node_after(program) -> pglist_data:
    sim = Simulation(seed=0)
    pgdat = pglist_data(sim, MemoryConfig(memory_bytes=MEMORY))
    sim.spawn(program, "hog")
    sim.run(until=10**9)
    return pgdat


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 600))
def test_a_batched_fault_leaves_the_node_as_single_faults_would(nr):
    batched = node_after(faults(nr))
    single = node_after(one_page_at_a_time(nr))
    for field in ("flags", "order", "owner", "index", "lru_next", "lru_prev"):
        assert getattr(batched.mem_map, field) == getattr(single.mem_map, field), field
    assert batched.nr_lru == single.nr_lru and batched.nr_lru[LRU_INACTIVE_ANON] == nr
    assert batched.raw_pages_by_pid == single.raw_pages_by_pid == {}
    assert batched.zone.free_area.nr_free == single.zone.free_area.nr_free


def test_a_bulk_allocation_stops_at_the_low_watermark():
    sim = Simulation(seed=0)
    pgdat = pglist_data(sim, MemoryConfig(memory_bytes=MEMORY))
    z = pgdat.zone
    fa = z.free_area
    while fa.nr_free > z.watermark[1] + z.lowmem_reserve + 10:
        fa.rmqueue_smallest(0)
    got: list[int] = []

    def bulk():
        got.append((yield from alloc_pages_bulk(G.GFP_HIGHUSER_MOVABLE, 64, [])))
    sim.spawn(bulk(), "bulk")
    sim.run(until=10**6)
    assert got == [10]
    assert fa.nr_free == z.watermark[1] + z.lowmem_reserve
    assert pgdat.stats.allocs == 10
