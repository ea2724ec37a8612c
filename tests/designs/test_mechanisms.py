"""Each design's mechanism on a small filesystem (testfs), one rule at a time.

testfs blocks where real filesystems do (inode-table IO when an unlinked inode is freed). For
these tests it also supplies what the designs build on: ``->inactive`` (the blocking cleanup of
an evicted inode) and ``->needs_inactive`` (its mark "evicting this inode is hard": unlinked, or
``HARD_SIZE`` bytes of data standing for preallocations to discard).
"""

from __future__ import annotations

import pytest
from testfs import TestSuperOps, _free_disk_inode, make_machine, run_task

from reclaimlab.mm.gfp import GFP_KERNEL, GFP_NOFS, __GFP_NOFAIL
from reclaimlab.mm.shrinker import shrink_control
from reclaimlab.sim import PF_KSWAPD, PF_MEMALLOC, PF_WQ_WORKER, current
from reclaimlab.vfs import dcache, designs, namei
from reclaimlab.vfs import inode as vi
from reclaimlab.vfs.fs import I_FREEING
from reclaimlab.vfs.super import super_cache_scan
from reclaimlab.vfs.syscalls import (
    O_CREAT, O_RDWR, sys_close, sys_mount, sys_open, sys_sync, sys_unlink, sys_write,
)

KSWAPD = PF_MEMALLOC | PF_KSWAPD
HARD_SIZE = 8192
NOFAIL_MASK = GFP_NOFS | __GFP_NOFAIL   # (a module name: a class body would mangle __GFP_*)


class SplitOps(TestSuperOps):
    """testfs with the parts the designs use; ``evict_gfps`` records ``evict_gfp`` of a NOFAIL
    mask at each eviction (what a filesystem's eviction-path allocation would get)."""

    def __init__(self) -> None:
        self.evict_gfps: list[int] = []

    def evict_inode(self, inode):
        self.evict_gfps.append(designs.evict_gfp(NOFAIL_MASK))
        yield from TestSuperOps.evict_inode(self, inode)

    def inactive(self, inode):
        if inode.i_nlink == 0:
            yield from _free_disk_inode(inode)

    def needs_inactive(self, inode):
        return inode.i_nlink == 0 or inode.i_size >= HARD_SIZE


def mounted(design, **kw):
    sim = make_machine(design, **kw)
    sb = run_task(sim, sys_mount("testfs", "vda", "/mnt", {}), "mount")
    sb.s_op = SplitOps()
    return sim, sb


def create(path, nbytes=0):
    fd = yield from sys_open(path, O_CREAT | O_RDWR)
    if nbytes:
        yield from sys_write(fd, nbytes)
    yield from sys_close(fd)


def pinned_unlinked(sim, n):
    """n unlinked files whose last reference is a dentry we hold (as an overlay inode holds
    its real dentry); returns (dentries, inode numbers)."""
    def work():
        pins = []
        for i in range(n):
            yield from create(f"/mnt/f{i}", 4096)
            pins.append((yield from namei.filename_lookup(sim.vfs, f"/mnt/f{i}")))
            yield from sys_unlink(f"/mnt/f{i}")
        return pins
    pins = run_task(sim, work(), "setup")
    return pins, [d.d_inode.i_ino for d in pins]


def drop_pins(pins):
    for d in pins:
        yield from dcache.dput(d)


@pytest.mark.parametrize("design,in_reclaim", [
    ("evict-async", False), ("split-evict", False), ("deferred-reclaim", False),
    ("skip-unlinked", True), ("nofail-drop", True)])
def test_who_deletes_an_unlinked_inode_released_by_reclaim(design, in_reclaim):
    """The W1 shape: kswapd drops the dentry holding the last reference. evict-async,
    split-evict and deferred-reclaim hand the deletion to a worker; skip-unlinked (acts only on
    the inode LRU) and nofail-drop (changes only allocation flags) delete in kswapd."""
    sim, sb = mounted(design)
    pins, _ = pinned_unlinked(sim, 3)
    run_task(sim, drop_pins(pins), "kswapd0", KSWAPD)
    cleanups = sb.s_fs_info.cleanups
    assert len(cleanups) == 3
    if in_reclaim:
        assert all(c[1] == "kswapd0" for c in cleanups)
        assert sim.vfs.stats.evicted_in_reclaim == 3
    else:
        assert all(c[2] & PF_WQ_WORKER and not c[2] & PF_MEMALLOC for c in cleanups)
        assert sim.vfs.stats.evicted_in_reclaim == 0 and sim.vfs.stats.deferred == 3
    run_task(sim, sys_sync(), "sync")
    assert sim.vfs.leaked() == []


def test_evict_async_keeps_the_inode_hashed_until_the_worker_is_done():
    """evict-async: the inode stays hashed and I_FREEING while ->inactive is pending; a lookup of
    its number sleeps in __wait_on_freeing_inode until the worker unhashes it."""
    sim, sb = mounted("evict-async", evict_async_delay_jiffies=50)
    pins, inos = pinned_unlinked(sim, 1)
    inode = pins[0].d_inode
    run_task(sim, drop_pins(pins), "kswapd0", KSWAPD, until=sim.now + 1000)
    assert sb.s_inode_hash.get(inos[0]) is inode and inode.i_state & I_FREEING
    assert sb.s_fs_info.cleanups == []

    def lookup():
        found = yield from vi.ilookup(sb, inos[0])
        return found, current().sim.now, len(sb.s_fs_info.cleanups)

    found, when, cleaned = run_task(sim, lookup(), "lookup")
    assert found is None and cleaned == 1 and inos[0] not in sb.s_inode_hash
    assert when > 0


def test_split_evict_unhashes_at_once_and_frees_disk_space_later():
    """split-evict: an unlinked inode is unhashed inline; its disk-space part runs later in a
    worker holding a passive reference; nlink > 0 eviction stays inline."""
    sim, sb = mounted("split-evict", split_evict_delay_jiffies=50)
    pins, inos = pinned_unlinked(sim, 1)
    inode = pins[0].d_inode
    run_task(sim, drop_pins(pins), "kswapd0", KSWAPD, until=sim.now + 1000)
    assert inos[0] not in sb.s_inode_hash
    assert sb.s_fs_info.cleanups == [] and inode.i_obj_count >= 1
    run_task(sim, sys_sync(), "sync")
    assert len(sb.s_fs_info.cleanups) == 1 and sim.vfs.leaked() == []


def prune_all(sb):
    """Two full passes of the superblock shrinker (the first clears I_REFERENCED)."""
    for _ in range(2):
        sc = shrink_control(GFP_KERNEL, 0)
        sc.nr_to_scan = 1 << 20
        yield from super_cache_scan(sb, sc)


def cached(sim, sizes):
    """Files of the given sizes, closed, synced and clean on the inode LRU."""
    def work():
        for i, size in enumerate(sizes):
            yield from create(f"/mnt/c{i}", size)
        yield from sys_sync()
    run_task(sim, work(), "setup")


@pytest.mark.parametrize("flags,hard_left", [(KSWAPD, 2), (0, 0)])
def test_skip_unlinked_leaves_hard_inodes_on_the_lru_only_in_reclaim(flags, hard_left):
    """skip-unlinked: inode_lru_isolate skips inodes the fs marks hard when the caller has
    PF_MEMALLOC; without it (drop_caches) they are evicted like the others."""
    sim, sb = mounted("skip-unlinked")
    cached(sim, [0, HARD_SIZE, 0, HARD_SIZE])
    run_task(sim, prune_all(sb), "pruner", flags)
    left = [i for i in sb.s_inode_lru if i.i_size >= HARD_SIZE]
    assert len(left) == hard_left
    assert not [i for i in sb.s_inode_lru if i.i_size < HARD_SIZE]


def test_deferred_reclaim_evicts_inline_outside_reclaim():
    """deferred-reclaim only defers evictions done by reclaim: an unlink by a user task that
    drops the last reference deletes inline."""
    sim, sb = mounted("deferred-reclaim")
    pins, _ = pinned_unlinked(sim, 2)
    run_task(sim, drop_pins(pins), "user")
    assert [c[1] for c in sb.s_fs_info.cleanups] == ["user", "user"]
    assert sim.vfs.stats.deferred == 0


class Tracepoints:
    def __init__(self) -> None:
        self.seen: list[dict] = []

    def event(self, kind, task, obj, info):
        if kind == "tracepoint" and info.get("name") == "deferred_reclaim_throttle":
            self.seen.append(info)


def test_deferred_reclaim_throttles_adders_by_the_measured_average():
    """Above deferred_reclaim_list_limit an adder sleeps throttle_factor times the average time
    the worker measured per inode (no sleep before anything was measured)."""
    sim, sb = mounted("deferred-reclaim", deferred_reclaim_list_limit=0,
                      deferred_reclaim_throttle_factor=2.0)
    tp = Tracepoints()
    sim.add_observer(tp)
    pins, _ = pinned_unlinked(sim, 1)
    run_task(sim, drop_pins(pins), "kswapd0", KSWAPD)
    run_task(sim, sys_sync(), "sync")
    assert tp.seen == []                                  # nothing measured yet
    avg = sb.s_deferred_evict.average_ns()
    assert avg > 0
    pins, _ = pinned_unlinked(sim, 1)
    start = sim.now

    def drop_and_time():
        yield from drop_pins(pins)
        return current().sim.now - start

    took = run_task(sim, drop_and_time(), "kswapd0", KSWAPD)
    assert [t["ns"] for t in tp.seen] == [2 * avg]
    assert took >= 2 * avg


@pytest.mark.parametrize("design,flags,nofail", [
    ("nofail-drop", KSWAPD, False), ("nofail-drop", 0, True), ("sync", KSWAPD, True)])
def test_nofail_drop_strips_nofail_only_when_reclaim_evicts(design, flags, nofail):
    """nofail-drop: inside an eviction by a PF_MEMALLOC task a NOFAIL mask loses __GFP_NOFAIL;
    in any other task, or under another design, it keeps it."""
    sim, sb = mounted(design)
    pins, _ = pinned_unlinked(sim, 1)
    run_task(sim, drop_pins(pins), "dropper", flags)
    assert [bool(g & __GFP_NOFAIL) for g in sb.s_op.evict_gfps] == [nofail]
    assert designs.evict_gfp(NOFAIL_MASK) == NOFAIL_MASK   # outside any task: unchanged
