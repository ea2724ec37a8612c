"""Slab caches in pages, compaction by migration, fs_reclaim lockdep annotations, swap."""

from __future__ import annotations

import pytest

from reclaimlab.mm import gfp as G
from reclaimlab.mm.anon import do_anonymous_page, exit_mmap, get_task_mm, mm_touch
from reclaimlab.mm.filemap import address_space
from reclaimlab.mm.page_alloc import alloc_pages, free_pages
from reclaimlab.mm.slab import (
    SLAB_RECLAIM_ACCOUNT, kmem_cache_alloc, kmem_cache_create, kmem_cache_destroy,
    kmem_cache_free,
)
from reclaimlab.sim import NSEC_PER_SEC, current, memalloc_nofs_restore, memalloc_nofs_save


def in_task(sim, gen, comm="t"):
    out = {}

    def task():
        out["v"] = yield from gen
    sim.spawn(task(), comm)
    sim.run(until=sim.now + NSEC_PER_SEC)
    return out.get("v")


def alloc_objs(cache, n, gfp=G.GFP_KERNEL):
    objs = []
    for _ in range(n):
        objs.append((yield from kmem_cache_alloc(cache, gfp)))
    return objs


# ------------------------------------------------------------------------ slab
def test_slab_objects_are_accounted_in_pages_and_freed_with_the_last_object(node):
    sim, pgdat, _ = node(64)
    inodes = kmem_cache_create(sim, "ext4_inode_cache", 1024, SLAB_RECLAIM_ACCOUNT)
    assert inodes.order == 1 and inodes.objects(1) == 8       # 8 objects: slub_min_objects
    free0 = pgdat.zone.free_pages
    objs = in_task(sim, alloc_objs(inodes, 20))
    assert len(set(objs)) == 20 and None not in objs
    assert inodes.nr_pages == 6 and pgdat.nr_slab_reclaimable == 6     # 3 slabs of 2 pages
    assert free0 - pgdat.zone.free_pages == 6
    for obj in objs[:8]:
        kmem_cache_free(inodes, obj)       # partially frees slabs: pages stay
    assert inodes.nr_pages >= 4
    for obj in objs[8:]:
        kmem_cache_free(inodes, obj)
    assert inodes.nr_pages == 0 and pgdat.zone.free_pages == free0
    with pytest.raises(ValueError):
        kmem_cache_free(inodes, objs[0])
    kmem_cache_destroy(inodes)
    assert pgdat.check_invariants() == []


def test_slab_falls_back_to_min_order_when_fragmented(node, drain):
    sim, pgdat, _ = node(64)
    cache = kmem_cache_create(sim, "buffer_head", 1024)
    held = sorted(drain(pgdat, leave=0))
    for pfn in held[::2]:
        free_pages(pfn, 0, pgdat)                      # order-0 holes only
    objs = in_task(sim, alloc_objs(cache, 1))
    assert objs[0] is not None
    slab = next(iter(cache.slabs.values()))
    assert slab.order == cache.min_order == 0 and cache.objects(0) == 4


def test_slab_memory_freed_by_a_shrinker_counts_as_reclaimed(node):
    from reclaimlab.mm.shrinker import Shrinker, register_shrinker
    from reclaimlab.mm.vmscan import scan_control, shrink_node
    sim, pgdat, _ = node(64)
    cache = kmem_cache_create(sim, "dentry", 256, SLAB_RECLAIM_ACCOUNT)
    objs = in_task(sim, alloc_objs(cache, 512))
    pages = cache.nr_pages

    def scan(sc):
        n = min(sc.nr_to_scan, len(objs))
        for _ in range(n):
            kmem_cache_free(cache, objs.pop())
        yield 0
        return n
    register_shrinker(sim, Shrinker("dcache", lambda sc: len(objs), scan))
    sc = scan_control(G.GFP_KERNEL, 0, 10_000, priority=0)

    def reclaim():
        current().reclaim_state = sc.reclaim_state
        yield from shrink_node(pgdat, sc)
    in_task(sim, reclaim())
    assert objs == [] and sc.nr_reclaimed == pages


# ------------------------------------------------------------------------ compaction
def test_compaction_migrates_page_cache_to_make_a_high_order_block(node, drain):
    from reclaimlab.mm.filemap import filemap_get_folio, truncate_inode_pages
    sim, pgdat, rec = node(64)
    a, b = address_space(sim, "a"), address_space(sim, "b")
    drain(pgdat, leave=6000)                          # pinned kernel memory elsewhere

    def interleave():
        for i in range(2800):                         # consecutive frames: a, b, a, b ...
            yield from filemap_get_folio(a, i, G.GFP_KERNEL)
            yield from filemap_get_folio(b, i, G.GFP_KERNEL)
    in_task(sim, interleave())
    drain(pgdat, leave=0)
    truncate_inode_pages(b)                           # 2800 single-page holes between a's
    z = pgdat.zone
    assert z.free_pages == 2800 and not z.free_area.has_block(1)
    before = sorted(a.i_pages)
    pfn = in_task(sim, alloc_pages(G.GFP_KERNEL, 4))
    assert pfn is not None and pfn % 16 == 0
    assert pgdat.stats.compact_success == 1
    assert sorted(a.i_pages) == before                # the same folios, some at new frames
    mm = pgdat.mem_map
    for index, p in a.i_pages.items():                # owner links follow the migration
        assert mm.owner[p] == a.id and mm.index[p] == index
    assert not any(pfn <= p < pfn + 16 for p in a.i_pages.values())
    assert pgdat.check_invariants() == []


def test_compaction_cannot_move_unmovable_pages(node, drain):
    sim, pgdat, rec = node(64)
    held = sorted(drain(pgdat, leave=0))
    for pfn in held[::2]:
        free_pages(pfn, 0, pgdat)
    res = in_task(sim, alloc_pages(G.GFP_KERNEL | G.__GFP_NORETRY | G.__GFP_NOWARN, 4))
    assert res is None and pgdat.stats.compact_success == 0


# ------------------------------------------------------------------------ lockdep
def fs_reclaim_acquires(rec, pgdat, task):
    return [e for e in rec.of("lock_acquire") if e[2] is pgdat.fs_reclaim_map and e[1] is task]


def test_gfp_kernel_allocation_touches_fs_reclaim_but_nofs_does_not(node):
    sim, pgdat, rec = node(64)

    def prog():
        yield from alloc_pages(G.GFP_KERNEL, 0)
        n = len(fs_reclaim_acquires(rec, pgdat, current()))
        yield from alloc_pages(G.GFP_NOFS, 0)
        old = memalloc_nofs_save()                     # scope strips __GFP_FS
        yield from alloc_pages(G.GFP_KERNEL, 0)
        memalloc_nofs_restore(old)
        return n
    t_n = in_task(sim, prog())
    assert t_n == 1
    assert len([e for e in rec.of("lock_acquire") if e[2] is pgdat.fs_reclaim_map]) == 1


def test_direct_reclaim_holds_fs_reclaim_while_shrinking(node, drain):
    from reclaimlab.mm.shrinker import Shrinker, register_shrinker
    sim, pgdat, rec = node(64)
    seen = []
    objs = [1] * 10_000

    def scan(sc):
        t = current()
        seen.append((t.comm, bool(pgdat.fs_reclaim_map in t.held_locks)))
        del objs[:sc.nr_to_scan]
        yield 0
        return sc.nr_to_scan
    register_shrinker(sim, Shrinker("s", lambda sc: len(objs), scan))
    drain(pgdat, leave=pgdat.zone.watermark[0] - 10)
    pgdat.kswapd_failures = 16                         # leave it to direct reclaim
    in_task(sim, alloc_pages(G.GFP_KERNEL | G.__GFP_NORETRY | G.__GFP_NOWARN, 0), "direct")
    assert ("direct", True) in seen


# ------------------------------------------------------------------------ swap
def test_anon_is_pinned_without_swap_and_swapped_with_it(node):
    for swap, expect_swapped in ((0, False), (64 << 20, True)):
        sim, pgdat, rec = node(64, swap_bytes=swap)

        def prog():
            mm = get_task_mm(current())
            yield from do_anonymous_page(mm, pgdat.nr_pages - 1000)
            mm_touch(mm)
            return mm
        mm = in_task(sim, prog(), "hog")

        def more():
            mm2 = get_task_mm(current())
            return (yield from do_anonymous_page(mm2, 2000))
        in_task(sim, more(), "hog2")
        assert (mm.swapents > 0) is expect_swapped
        if not expect_swapped:
            assert rec.of("oom_kill")                   # nothing reclaimable: the OOM killer
        exit_mmap(mm)
        assert pgdat.check_invariants() == []


def test_touching_anon_memory_marks_it_referenced(node):
    from reclaimlab.mm.mm_types import PG_anon, PG_referenced
    sim, pgdat, _ = node(64)

    def prog():
        mm = get_task_mm(current())
        yield from do_anonymous_page(mm, 100)
        return mm
    mm = in_task(sim, prog())
    flags = pgdat.mem_map.flags
    assert all(flags[p] & PG_anon and not flags[p] & PG_referenced for p in mm.pages)
    mm_touch(mm)
    assert all(flags[p] & PG_referenced for p in mm.pages)
    in_task(sim, do_anonymous_page(mm, 10))          # the mm can still grow after a touch
    assert mm.rss == 110 and exit_mmap(mm) == 110
