"""Same inputs, same run: an mm-heavy simulation is deterministic."""

from __future__ import annotations

from reclaimlab.mm import gfp as G
from reclaimlab.mm.anon import do_anonymous_page, exit_mmap, get_task_mm
from reclaimlab.mm.filemap import address_space, generic_perform_write, page_cache_ra_unbounded
from reclaimlab.mm.page_alloc import MemoryConfig, alloc_pages, free_pages, pglist_data
from reclaimlab.sim import NSEC_PER_MSEC, NSEC_PER_SEC, Simulation, current


def one_run(seed: int) -> tuple:
    sim = Simulation(seed=seed, ncpus=2)
    pgdat = pglist_data(sim, MemoryConfig(memory_bytes=64 << 20))

    def reader(i):
        m = address_space(sim, f"f{i}")
        for _ in range(5):
            yield from page_cache_ra_unbounded(m, 0, 3000, G.GFP_HIGHUSER_MOVABLE)
            yield sim.rng.randrange(1, 5) * NSEC_PER_MSEC

    def writer():
        m = address_space(sim, "w")
        yield from generic_perform_write(m, 0, 2000, G.GFP_KERNEL)

    def hog():
        mm = get_task_mm(current())
        yield from do_anonymous_page(mm, 6000)
        yield 50 * NSEC_PER_MSEC
        exit_mmap(mm)

    def kernel_allocs():
        held = []
        for _ in range(200):
            held.append((yield from alloc_pages(G.GFP_KERNEL, sim.rng.randrange(0, 3))))
        for pfn in held:
            if pfn is not None:
                free_pages(pfn, pgdat.mem_map.order[pfn])
    for i in range(3):
        sim.spawn(reader(i), f"reader{i}")
    sim.spawn(writer(), "writer")
    sim.spawn(hog(), "hog")
    sim.spawn(kernel_allocs(), "kalloc")
    sim.run(until=NSEC_PER_SEC)
    assert pgdat.check_invariants() == []
    st = pgdat.stats
    return (sim.digest(), sim.now, st.allocs, st.pgscan, st.pgsteal, st.direct_reclaim_count,
            pgdat.zone.free_pages)


def test_same_seed_same_run():
    assert one_run(3) == one_run(3)
