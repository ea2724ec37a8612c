"""Page cache: folios per mapping, dirty/writeback life cycle, truncate/invalidate, and how
reclaim treats clean, dirty and writeback folios (kernel-semantics §2, LRU folios)."""

from __future__ import annotations

from reclaimlab.mm import gfp as G
from reclaimlab.mm.filemap import (
    address_space, filemap_dirty_folios, filemap_get_folio, folio_clear_dirty_for_io,
    folio_end_writeback, folio_mark_dirty, folio_start_writeback, generic_perform_write,
    invalidate_mapping_pages, mapping_release, page_cache_ra_unbounded, truncate_inode_pages,
)
from reclaimlab.mm.mm_types import PG_active, PG_lru
from reclaimlab.mm.page_alloc import alloc_pages
from reclaimlab.mm.vmscan import scan_control, shrink_node
from reclaimlab.sim import NSEC_PER_SEC, PF_MEMALLOC, current


def in_task(sim, gen, comm="t"):
    out = {}

    def task():
        out["v"] = yield from gen
    sim.spawn(task(), comm)
    sim.run(until=sim.now + NSEC_PER_SEC)
    return out.get("v")


def test_get_folio_creates_once_and_accounts(node):
    sim, pgdat, _ = node(64)
    m = address_space(sim, "inode")
    f = in_task(sim, filemap_get_folio(m, 5, G.GFP_NOFS))
    assert f.index == 5 and f.order == 0 and not f.uptodate and not f.dirty
    f.uptodate = True
    again = in_task(sim, filemap_get_folio(m, 5, G.GFP_NOFS))
    assert again == f and again.uptodate and again.pfn == f.pfn
    assert in_task(sim, filemap_get_folio(m, 6, G.GFP_NOFS, create=False)) is None
    # two lookups = two accesses: the folio was promoted to the active list
    assert m.nrpages == 1 and pgdat.nr_file_pages == 1 and pgdat.nr_lru[2:] == [0, 1]


def test_bs_gt_ps_folios_have_the_mapping_min_order(node):
    sim, pgdat, rec = node(64)
    m = address_space(sim, "bdev", min_order=4)                 # 64 KiB blocks on 4 KiB pages
    f = in_task(sim, filemap_get_folio(m, 37, G.GFP_NOFS | G.__GFP_NOFAIL))
    assert f.order == 4 and f.index == 32 and f.pfn % 16 == 0
    assert m.nrpages == 16 and pgdat.nr_lru[2] == 16
    ev = rec.of("alloc")[-1][3]
    assert ev["order"] == 4


def test_dirty_writeback_lifecycle(node):
    sim, pgdat, _ = node(64)
    m = address_space(sim, "inode")
    hooked = []

    class AOps:
        def dirty_folio(self, folio):
            hooked.append(folio.index)
    m.a_ops = AOps()
    in_task(sim, generic_perform_write(m, 0, 8, G.GFP_KERNEL))
    assert pgdat.nr_dirty == 8 and hooked == list(range(8))
    batch = filemap_dirty_folios(m, 3)
    assert [f.index for f in batch] == [0, 1, 2]
    for f in batch:
        assert folio_clear_dirty_for_io(f)
        folio_start_writeback(f)
    assert pgdat.nr_dirty == 5 and pgdat.nr_writeback == 3 and batch[0].writeback
    for f in batch:
        folio_end_writeback(f)
    assert pgdat.nr_writeback == 0 and not batch[0].writeback and not batch[0].dirty


def test_truncate_frees_everything_writeback_frames_when_io_ends(node):
    sim, pgdat, _ = node(64)
    m = address_space(sim, "inode")
    free0 = pgdat.zone.free_pages
    in_task(sim, generic_perform_write(m, 0, 4, G.GFP_KERNEL))
    f0 = filemap_dirty_folios(m, 1)[0]
    folio_clear_dirty_for_io(f0)
    folio_start_writeback(f0)
    assert truncate_inode_pages(m) == 4
    assert m.nrpages == 0 and pgdat.nr_dirty == 0 and pgdat.nr_lru[2] == 0
    assert pgdat.zone.free_pages == free0 - 1                     # the folio under IO
    mapping_release(m)                                            # the inode is gone
    assert pgdat.check_invariants() == []
    folio_end_writeback(f0)
    assert pgdat.zone.free_pages == free0 and pgdat.nr_file_pages == 0
    assert m.id not in pgdat.owners
    assert pgdat.check_invariants() == []


def test_invalidate_drops_only_clean_idle_folios(node):
    sim, pgdat, _ = node(64)
    m = address_space(sim, "inode")
    in_task(sim, page_cache_ra_unbounded(m, 0, 10, G.GFP_KERNEL))
    folio_mark_dirty(in_task(sim, filemap_get_folio(m, 3, G.GFP_KERNEL)))
    assert invalidate_mapping_pages(m) == 9
    assert list(m.i_pages) == [3]


def test_reclaim_frees_clean_never_writes_dirty_and_wakes_flushers(node):
    sim, pgdat, _ = node(64)
    m = address_space(sim, "inode")
    woken = []
    pgdat.wakeup_flusher_threads = lambda: woken.append(sim.now)
    in_task(sim, generic_perform_write(m, 0, 64, G.GFP_KERNEL))     # 64 dirty folios
    in_task(sim, page_cache_ra_unbounded(m, 64, 64, G.GFP_KERNEL))  # 64 clean ones
    sc = scan_control(G.GFP_KERNEL, 0, 1000, priority=0)

    def direct_reclaim():
        current().flags |= PF_MEMALLOC
        yield from shrink_node(pgdat, sc)
    in_task(sim, direct_reclaim(), "reclaimer")
    assert sc.nr_reclaimed == 64
    assert sorted(m.i_pages) == list(range(64))                   # only dirty ones remain
    assert pgdat.nr_dirty == 64 and pgdat.nr_writeback == 0       # nothing was written
    flags = pgdat.mem_map.flags
    assert all(flags[p] & PG_active and flags[p] & PG_lru for p in m.i_pages.values())
    assert woken                                                   # flushers were nudged


def test_writeback_end_rotates_reclaim_folios_for_quick_reclaim(node):
    sim, pgdat, _ = node(64)
    m = address_space(sim, "inode")
    in_task(sim, generic_perform_write(m, 0, 8, G.GFP_KERNEL))
    sc = scan_control(G.GFP_KERNEL, 0, 1000, priority=0)
    in_task(sim, shrink_node(pgdat, sc))
    assert sc.nr_reclaimed == 0
    for f in filemap_dirty_folios(m, 8):
        folio_clear_dirty_for_io(f)
        folio_start_writeback(f)
        folio_end_writeback(f)
    assert pgdat.nr_lru[2] == 8 and pgdat.nr_lru[3] == 0          # back on the inactive tail
    sc = scan_control(G.GFP_KERNEL, 0, 1000, priority=0)
    in_task(sim, shrink_node(pgdat, sc))
    assert sc.nr_reclaimed == 8 and m.nrpages == 0


def test_second_access_activates_and_active_folios_survive_a_pass(node):
    sim, pgdat, _ = node(64)
    hot, cold = address_space(sim, "hot"), address_space(sim, "cold")
    in_task(sim, page_cache_ra_unbounded(cold, 0, 32, G.GFP_KERNEL))
    for _ in range(2):
        for i in range(32):
            in_task(sim, filemap_get_folio(hot, i, G.GFP_KERNEL))
    assert pgdat.nr_lru[3] == 32                                   # hot: active
    sc = scan_control(G.GFP_KERNEL, 0, 32, priority=0)
    in_task(sim, shrink_node(pgdat, sc))
    assert cold.nrpages == 0 and hot.nrpages == 32


def test_direct_reclaim_under_allocation_pressure_frees_page_cache(node):
    sim, pgdat, rec = node(64)
    m = address_space(sim, "big")
    in_task(sim, page_cache_ra_unbounded(m, 0, pgdat.nr_pages, G.GFP_KERNEL))
    assert m.nrpages > pgdat.nr_pages // 2       # reading it all already recycled the cache
    stolen = pgdat.stats.pgsteal

    def grab(n):
        for _ in range(n):
            assert (yield from alloc_pages(G.GFP_KERNEL, 0)) is not None
    in_task(sim, grab(4000), "alloc")
    assert m.nrpages + 4000 + pgdat.zone.free_pages <= pgdat.nr_pages
    assert pgdat.stats.pgsteal > stolen
    assert rec.of("oom_kill") == []
    assert pgdat.check_invariants() == []


def test_folios_whose_buffers_cannot_be_released_stay(node):
    sim, pgdat, _ = node(64)
    m = address_space(sim, "bdev")
    pinned = {1}

    class AOps:
        def release_folio(self, folio):
            return folio.index not in pinned
    m.a_ops = AOps()
    in_task(sim, page_cache_ra_unbounded(m, 0, 4, G.GFP_KERNEL))
    for i in range(4):
        in_task(sim, filemap_get_folio(m, i, G.GFP_NOFS)).private = f"bh{i}"
    assert invalidate_mapping_pages(m) == 3 and list(m.i_pages) == [1]
    sc = scan_control(G.GFP_KERNEL, 0, 1000, priority=0)
    in_task(sim, shrink_node(pgdat, sc))
    assert list(m.i_pages) == [1] and in_task(sim, filemap_get_folio(m, 1, 0)).private == "bh1"
    pinned.clear()
    assert invalidate_mapping_pages(m) == 1 and m.nrpages == 0
