"""The eviction design switch: who runs the filesystem's blocking cleanup, in which context."""

import pytest
from testfs import make_machine, run_task

from reclaimlab.mm.gfp import GFP_KERNEL
from reclaimlab.mm.shrinker import shrink_control
from reclaimlab.sim import PF_KSWAPD, PF_MEMALLOC, PF_WQ_WORKER
from reclaimlab.vfs import dcache, namei
from reclaimlab.vfs.errors import KernelError
from reclaimlab.vfs.evict_designs import resolve_design
from reclaimlab.vfs.fs import I_FREEING
from reclaimlab.vfs.inode import ilookup
from reclaimlab.vfs.super import super_cache_scan
from reclaimlab.vfs.syscalls import (
    O_CREAT, O_RDWR, sys_close, sys_mount, sys_open, sys_stat, sys_sync, sys_umount, sys_unlink,
    sys_write,
)

KSWAPD = PF_MEMALLOC | PF_KSWAPD


def mounted(design, fstype="testfs", **kw):
    sim = make_machine(design, **kw)
    sb = run_task(sim, sys_mount(fstype, "vda", "/mnt", {}), "mount")
    return sim, sb


def create(path, nbytes=0):
    fd = yield from sys_open(path, O_CREAT | O_RDWR)
    if nbytes:
        yield from sys_write(fd, nbytes)
    yield from sys_close(fd)


def pinned_unlinked(sim, n):
    """n unlinked files whose last reference is a dentry reference we hold (as an overlay inode
    holds its real dentry)."""
    def work():
        pins = []
        for i in range(n):
            yield from create(f"/mnt/f{i}", 4096)
            pins.append((yield from namei.filename_lookup(sim.vfs, f"/mnt/f{i}")))
            yield from sys_unlink(f"/mnt/f{i}")
        return pins
    return run_task(sim, work(), "setup")


def drop_pins(pins):
    for d in pins:
        yield from dcache.dput(d)


@pytest.mark.parametrize("design,in_reclaim", [("sync", True), ("native", True),
                                               ("inodegc", False), ("passive-ref", False)])
def test_final_dput_from_reclaim_runs_cleanup_in_reclaim_only_under_sync(design, in_reclaim):
    sim, sb = mounted(design)
    pins = pinned_unlinked(sim, 3)
    assert sb.s_fs_info.cleanups == []
    run_task(sim, drop_pins(pins), "kswapd0", KSWAPD)
    cleanups = sb.s_fs_info.cleanups
    assert len(cleanups) == 3
    st = sim.vfs.stats
    if in_reclaim:
        assert all(c[1] == "kswapd0" and c[2] & PF_MEMALLOC for c in cleanups)
        assert st.evicted_in_reclaim == 3 and st.deferred == 0
    else:
        assert all(c[2] & PF_WQ_WORKER and not c[2] & PF_MEMALLOC for c in cleanups)
        assert st.evicted_in_reclaim == 0 and st.deferred == 3
    assert sim.vfs.leaked() == []


def prune_all(sb):
    sc = shrink_control(GFP_KERNEL, 0)
    sc.nr_to_scan = 1 << 20
    yield from super_cache_scan(sb, sc)


@pytest.mark.parametrize("design", ["sync", "passive-ref"])
def test_inode_shrinker_evicts_cached_inodes_inline_or_deferred(design):
    sim, sb = mounted(design)
    for i in range(5):
        run_task(sim, create(f"/mnt/f{i}"))
    run_task(sim, prune_all(sb), "kswapd0", KSWAPD)
    run_task(sim, prune_all(sb), "kswapd0", KSWAPD)
    st = sim.vfs.stats
    assert st.evicted == 5
    if design == "sync":
        assert st.evicted_in_reclaim == 5 and st.deferred == 0
    else:
        assert st.evicted_in_reclaim == 0 and st.deferred == 5


def test_native_picks_each_filesystem_types_own_design():
    sim = make_machine("native", disks=2)

    def work():
        a = yield from sys_mount("testfs", "vda", "/a", {})
        b = yield from sys_mount("testfs-gc", "vdb", "/b", {})
        return a, b

    a, b = run_task(sim, work())
    assert (a.s_evict_design, b.s_evict_design) == ("sync", "inodegc")
    assert resolve_design("passive-ref", b.s_type) == "passive-ref"


def test_passive_ref_throttles_a_task_that_queues_past_the_backlog():
    sim, sb = mounted("passive-ref", preset="hdd", passive_ref_max_backlog=2, ncpus=1)
    pins = pinned_unlinked(sim, 8)
    depths = []
    sim.add_observer(type("O", (), {"event": lambda self, k, t, o, i: depths.append(i["depth"])
                                    if k == "queue_depth" else None})())
    t0 = sim.now
    box = {}

    def dropper():
        yield from drop_pins(pins)
        box["t"] = sim.now

    run_task(sim, dropper(), "rm")
    assert max(depths) <= 3
    assert box["t"] - t0 > 2 * 8_000_000  # waited for at least a couple of hdd evictions
    assert len(sb.s_fs_info.cleanups) == 8 and sim.vfs.leaked() == []


def test_passive_ref_reclaim_is_exempt_from_the_throttle():
    sim, sb = mounted("passive-ref", preset="hdd", passive_ref_max_backlog=2, ncpus=1)
    pins = pinned_unlinked(sim, 8)
    depths = []
    sim.add_observer(type("O", (), {"event": lambda self, k, t, o, i: depths.append(i["depth"])
                                    if k == "queue_depth" else None})())
    run_task(sim, drop_pins(pins), "kswapd0", KSWAPD)
    assert max(depths) == 8


def test_passive_ref_deferred_inode_stays_hashed_and_lookups_wait_for_it():
    sim, sb = mounted("passive-ref", preset="hdd")
    pins = pinned_unlinked(sim, 1)
    ino = pins[0].d_inode.i_ino
    got = {}

    def reclaimer():
        yield from drop_pins(pins)

    def looker():
        yield 1  # the reclaimer has queued the inode (I_FREEING, still hashed)
        assert sb.s_inode_hash[ino].i_state & I_FREEING
        got["inode"] = yield from ilookup(sb, ino)
        got["t"] = sim.now

    sim.spawn(reclaimer(), "kswapd0", KSWAPD)
    sim.spawn(looker(), "look")
    sim.run()
    assert got["inode"] is None and got["t"] > 1_000_000  # waited for the worker's IO
    assert sb.s_evict.inodes == type(sb.s_evict.inodes)()


def test_sync_flushes_passive_ref_evictions():
    sim, sb = mounted("passive-ref", preset="hdd")
    pins = pinned_unlinked(sim, 4)
    box = {}

    def work():
        yield from drop_pins(pins)
        box["queued"] = len(sb.s_evict.inodes) + (sb.s_evict.worker is not None)
        yield from sys_sync()
        box["after"] = len(sb.s_evict.inodes)
        box["cleanups"] = len(sb.s_fs_info.cleanups)

    run_task(sim, work(), "syncer")
    assert box["queued"] > 0 and box["after"] == 0 and box["cleanups"] == 4


@pytest.mark.parametrize("design", ["sync", "inodegc", "passive-ref", "native"])
def test_unmount_leaves_nothing_behind_under_every_design(design):
    sim, sb = mounted(design)
    pins = pinned_unlinked(sim, 3)

    def work():
        for i in range(3):
            yield from create(f"/mnt/keep{i}", 8192)
        yield from drop_pins(pins)
        yield from sys_umount("/mnt")

    run_task(sim, work(), "umount")
    assert sim.vfs.leaked() == [] and sim.vfs.check_invariants() == []
    assert sim.vfs.stats.evicted == sim.vfs.stats.allocated


def test_bad_design_is_rejected():
    with pytest.raises(ValueError, match="design"):
        make_machine("lazy")


def test_stat_after_unmount_fails_cleanly():
    sim, sb = mounted("sync")
    run_task(sim, sys_umount("/mnt"))
    with pytest.raises(KernelError, match="ENOENT"):
        run_task(sim, sys_stat("/mnt/x"))
