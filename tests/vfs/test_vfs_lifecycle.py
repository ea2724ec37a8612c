"""The inode and dentry lifecycle, as kernel-semantics §3 states it."""

import pytest
from testfs import make_machine, run_task

from reclaimlab.mm.gfp import GFP_KERNEL, GFP_NOFS
from reclaimlab.mm.shrinker import SHRINK_STOP, shrink_control
from reclaimlab.sim import PF_KSWAPD, PF_MEMALLOC, down_write, up_write
from reclaimlab.vfs import dcache
from reclaimlab.vfs import inode as vi
from reclaimlab.vfs.errors import KernelError
from reclaimlab.vfs.fs import DCACHE_REFERENCED, I_FREEING, I_REFERENCED
from reclaimlab.vfs.super import super_cache_count, super_cache_scan
from reclaimlab.vfs.syscalls import (
    O_CREAT, O_RDWR, sys_close, sys_mkdir, sys_mount, sys_open, sys_rename, sys_stat, sys_umount,
    sys_unlink, sys_write,
)


def mounted(design="sync", **kw):
    sim = make_machine(design, **kw)
    sb = run_task(sim, sys_mount("testfs", "vda", "/mnt", {}), "mount")
    return sim, sb


def create(path, nbytes=0):
    fd = yield from sys_open(path, O_CREAT | O_RDWR)
    if nbytes:
        yield from sys_write(fd, nbytes)
    yield from sys_close(fd)


def cached_dentry(sb, name):
    return sb.s_root.d_children.get(name)


def test_unlink_of_an_unused_file_evicts_it_in_the_unlinking_task():
    sim, sb = mounted()

    def work():
        yield from create("/mnt/f", 5000)
        yield from sys_unlink("/mnt/f")

    run_task(sim, work(), "rm")
    fsi = sb.s_fs_info
    assert [(c[1]) for c in fsi.cleanups] == ["rm"]
    assert sim.vfs.leaked() == [] and sim.vfs.stats.evicted == 1
    d = cached_dentry(sb, "f")
    assert d is not None and d.d_inode is None  # left as a negative dentry


def test_unlink_of_an_open_file_defers_eviction_to_the_last_close():
    sim, sb = mounted()
    box = {}

    def work():
        yield from create("/mnt/f")
        fd = yield from sys_open("/mnt/f", O_RDWR)
        yield from sys_unlink("/mnt/f")
        box["after_unlink"] = list(sb.s_fs_info.cleanups)
        assert cached_dentry(sb, "f") is None  # unhashed, not negative
        st = None
        try:
            st = yield from sys_stat("/mnt/f")
        except KernelError as e:
            box["stat"] = e.errno
        assert st is None
        yield from sys_close(fd)

    run_task(sim, work(), "closer")
    assert box["after_unlink"] == [] and box["stat"] == "ENOENT"
    assert [c[1] for c in sb.s_fs_info.cleanups] == ["closer"]
    assert sim.vfs.leaked() == []


def test_unused_linked_inodes_are_cached_on_the_lru_and_dentries_on_the_dentry_lru():
    sim, sb = mounted()
    run_task(sim, create("/mnt/f"))
    d = cached_dentry(sb, "f")
    inode = d.d_inode
    assert d.d_count == 0 and d in sb.s_dentry_lru
    assert inode.i_count == 1  # the dentry's reference
    run_task(sim, sys_stat("/mnt/f"))
    assert d.d_flags & DCACHE_REFERENCED  # second dput while on the LRU


def prune(sim, sb, nr, gfp=GFP_KERNEL, flags=PF_MEMALLOC | PF_KSWAPD):
    sc = shrink_control(gfp, 0)
    sc.nr_to_scan = nr
    return run_task(sim, super_cache_scan(sb, sc), "kswapd-like", flags)


def test_sb_shrinker_gives_dentries_a_second_chance_then_frees_dentries_and_inodes():
    sim, sb = mounted()
    run_task(sim, create("/mnt/f", 4096))
    run_task(sim, sys_stat("/mnt/f"))  # DCACHE_REFERENCED
    d = cached_dentry(sb, "f")
    inode = d.d_inode
    assert super_cache_count(sb, None) == 1  # the dentry; its inode is pinned by it
    prune(sim, sb, 100)
    assert cached_dentry(sb, "f") is d and not d.d_flags & DCACHE_REFERENCED
    prune(sim, sb, 100)
    assert cached_dentry(sb, "f") is None
    # the dentry's death put the inode on the inode LRU, and prune_icache_sb (which runs after
    # prune_dcache_sb in the same scan) evicted it
    assert inode.i_state & vi.INODE_FREED_MARK
    assert [c[2] & PF_MEMALLOC for c in sb.s_fs_info.cleanups] == []  # nlink>0: no disk cleanup
    assert sim.vfs.stats.evicted_in_reclaim == 1  # but ->evict_inode ran under PF_MEMALLOC


def test_inode_lru_isolate_gives_referenced_inodes_a_second_chance_and_drops_busy_ones():
    sim, sb = mounted()
    run_task(sim, create("/mnt/f"))
    run_task(sim, create("/mnt/g"))
    run_task(sim, dcache.shrink_dcache_sb(sb))
    f, g = list(sb.s_inode_lru)[:2]
    f.i_state |= I_REFERENCED
    g.i_count += 1  # someone grabbed it
    dispose = []
    assert vi.inode_lru_isolate(f, dispose) == vi.LRU_ROTATE
    assert vi.inode_lru_isolate(g, dispose) == vi.LRU_REMOVED and g not in sb.s_inode_lru
    assert vi.inode_lru_isolate(f, dispose) == vi.LRU_REMOVED and dispose == [f]
    assert f.i_state & I_FREEING
    run_task(sim, vi.dispose_list(dispose))
    g.i_count -= 1


def test_sb_shrinker_stops_without_gfp_fs_or_when_s_umount_is_held():
    sim, sb = mounted()
    run_task(sim, create("/mnt/f"))
    assert prune(sim, sb, 100, gfp=GFP_NOFS) == SHRINK_STOP
    box = {}

    def holder():
        yield from down_write(sb.s_umount)
        sc = shrink_control(GFP_KERNEL, 0)
        sc.nr_to_scan = 100
        box["r"] = yield from super_cache_scan(sb, sc)
        up_write(sb.s_umount)

    run_task(sim, holder())
    assert box["r"] == SHRINK_STOP


def test_lookup_of_an_inode_being_evicted_waits_until_it_is_unhashed():
    """Rule 5: evict runs with the inode hashed; iget sleeps in __wait_on_freeing_inode."""
    sim, sb = mounted(preset="hdd")
    run_task(sim, create("/mnt/f"))
    ino = cached_dentry(sb, "f").d_inode.i_ino
    order = []

    def unlinker():
        yield from sys_unlink("/mnt/f")  # evict does itable IO on an hdd: slow
        order.append(("unlinked", sim.now))

    def looker():
        while not (sb.s_inode_hash.get(ino) and sb.s_inode_hash[ino].i_state & I_FREEING):
            yield 500_000  # poll until the unlinker is inside ->evict_inode
        t0 = sim.now
        got = yield from vi.ilookup(sb, ino)
        order.append(("lookup", sim.now, got, t0))

    sim.spawn(unlinker(), "rm")
    sim.spawn(looker(), "look")
    sim.run()
    look = [o for o in order if o[0] == "lookup"][0]
    assert look[2] is None and look[1] > look[3]  # slept, then found nothing


def test_rename_over_an_existing_file_evicts_the_victim():
    sim, sb = mounted()

    def work():
        yield from create("/mnt/a")
        yield from create("/mnt/b")
        yield from sys_rename("/mnt/a", "/mnt/b")
        return (yield from sys_stat("/mnt/b"))

    st = run_task(sim, work(), "mv")
    assert st["ino"] == 2 + 0 or st["ino"] > 0
    assert [c[1] for c in sb.s_fs_info.cleanups] == ["mv"]
    assert sim.vfs.leaked() == []
    with pytest.raises(KernelError, match="ENOENT"):
        run_task(sim, sys_stat("/mnt/a"))


def test_unmount_evicts_everything_and_refuses_while_busy():
    sim, sb = mounted()

    def work():
        yield from sys_mkdir("/mnt/d")
        yield from create("/mnt/d/f", 10000)
        fd = yield from sys_open("/mnt/d/f", O_RDWR)
        try:
            yield from sys_umount("/mnt")
        except KernelError as e:
            assert e.errno == "EBUSY"
        yield from sys_close(fd)
        yield from sys_unlink("/mnt/d/f")
        yield from sys_umount("/mnt")

    run_task(sim, work())
    assert sb.s_inodes == {} and sb not in sim.vfs.super_blocks
    assert sim.vfs.check_invariants() == []
    assert sim.vfs.leaked() == []
    assert sim.pgdat.check_invariants() == [] if hasattr(sim.pgdat, "check_invariants") else True
