"""overlayfs on real filesystems (testfs): layers, copy-up, whiteouts, and the W1 path."""

import pytest
from testfs import make_machine, run_task

from reclaimlab.fs.overlay import OverlayFsType
from reclaimlab.mm.gfp import GFP_KERNEL
from reclaimlab.mm.shrinker import shrink_slab
from reclaimlab.sim import PF_KSWAPD, PF_MEMALLOC, PF_WQ_WORKER
from reclaimlab.vfs.errors import KernelError
from reclaimlab.vfs.fs import S_ISCHR
from reclaimlab.vfs.super import register_filesystem
from reclaimlab.vfs.syscalls import (
    O_CREAT, O_RDONLY, O_RDWR, sys_close, sys_mkdir, sys_mount, sys_open, sys_read, sys_stat,
    sys_umount, sys_unlink, sys_write,
)

KSWAPD = PF_MEMALLOC | PF_KSWAPD
OPTS = {"lowerdir": "/lower/l", "upperdir": "/upper/u", "workdir": "/upper/w"}


def create(path, nbytes=0):
    fd = yield from sys_open(path, O_CREAT | O_RDWR)
    if nbytes:
        yield from sys_write(fd, nbytes)
    yield from sys_close(fd)


def machine(design="sync", **kw):
    sim = make_machine(design, disks=2, **kw)
    register_filesystem(sim, OverlayFsType())

    def setup():
        upper = yield from sys_mount("testfs", "vda", "/upper", {})
        lower = yield from sys_mount("testfs", "vdb", "/lower", {})
        for d in ("/upper/u", "/upper/w", "/lower/l"):
            yield from sys_mkdir(d)
        yield from create("/lower/l/base", 10000)
        ovl = yield from sys_mount("overlay", None, "/merged", OPTS)
        return upper, lower, ovl

    upper, lower, ovl = run_task(sim, setup(), "setup")
    return sim, upper, lower, ovl


def test_lower_files_are_visible_and_readable_through_the_overlay():
    sim, upper, lower, ovl = machine()

    def work():
        st = yield from sys_stat("/merged/base")
        fd = yield from sys_open("/merged/base", O_RDONLY)
        n = yield from sys_read(fd, 1 << 20)
        yield from sys_close(fd)
        return st, n

    st, n = run_task(sim, work())
    assert st["size"] == 10000 and n == 10000 and st["dev"] == ovl.s_id
    assert "base" not in upper.s_fs_info.itable[2].entries  # /upper/u: nothing copied up


def test_open_for_write_copies_up_data_and_leaves_the_lower_file_alone():
    sim, upper, lower, ovl = machine()

    def work():
        fd = yield from sys_open("/merged/base", O_RDWR)
        yield from sys_close(fd)
        return (yield from sys_stat("/upper/u/base")), (yield from sys_stat("/lower/l/base"))

    up, low = run_task(sim, work())
    assert up["size"] == 10000 and low["size"] == 10000 and up["dev"] != low["dev"]


def test_unlink_of_a_lower_file_leaves_a_whiteout():
    sim, upper, lower, ovl = machine()

    def work():
        yield from sys_unlink("/merged/base")
        wh = yield from sys_stat("/upper/u/base")
        try:
            yield from sys_stat("/merged/base")
        except KernelError as e:
            return wh, e.errno, (yield from sys_stat("/lower/l/base"))

    wh, err, low = run_task(sim, work())
    assert S_ISCHR(wh["mode"]) and err == "ENOENT" and low["nlink"] == 1
    # a new file of the same name replaces the whiteout and hides the lower one
    run_task(sim, create("/merged/base", 100))
    assert run_task(sim, sys_stat("/merged/base"))["size"] == 100


def test_unlink_through_the_overlay_evicts_the_real_inode_in_the_unlinker():
    sim, upper, lower, ovl = machine()
    run_task(sim, create("/merged/f", 4096))
    run_task(sim, sys_unlink("/merged/f"), "rm")
    assert [c[1] for c in upper.s_fs_info.cleanups] == ["rm"]
    assert sim.vfs.leaked() == []


def w1_setup(sim):
    """A file created through the overlay, then unlinked directly on the upper filesystem: the
    cached overlay dentry is now the last holder of an unlinked real inode."""
    def work():
        yield from create("/merged/victim", 8192)
        yield from sys_unlink("/upper/u/victim")
    run_task(sim, work(), "runc")


@pytest.mark.parametrize("design", ["sync", "native"])
def test_w1_overlay_dcache_reclaim_runs_the_real_eviction_in_kswapd(design):
    sim, upper, lower, ovl = machine(design)
    w1_setup(sim)
    assert upper.s_fs_info.cleanups == []  # pinned by the overlay inode
    run_task(sim, shrink_slab(sim.pgdat, GFP_KERNEL, 0), "kswapd0", KSWAPD)
    (ino, comm, flags, stack), = upper.s_fs_info.cleanups
    assert comm == "kswapd0" and flags & PF_MEMALLOC
    chain = ["shrink_slab", "do_shrink_slab", "super_cache_scan", "prune_dcache_sb",
             "shrink_dentry_list", "__dentry_kill", "dentry_unlink_inode", "iput", "iput_final",
             "evict_or_defer", "evict", "destroy_inode", "ovl_destroy_inode", "dput",
             "__dentry_kill", "dentry_unlink_inode", "iput", "iput_final", "evict_or_defer",
             "evict", "evict_inode"]
    it = iter(stack)
    assert all(any(f == g for g in it) for f in chain), stack
    assert sim.vfs.stats.evicted_in_reclaim >= 1 and sim.vfs.leaked() == []


@pytest.mark.parametrize("design", ["inodegc", "passive-ref"])
def test_w1_path_under_deferred_designs_runs_the_cleanup_in_a_worker(design):
    sim, upper, lower, ovl = machine(design)
    w1_setup(sim)
    run_task(sim, shrink_slab(sim.pgdat, GFP_KERNEL, 0), "kswapd0", KSWAPD)
    (ino, comm, flags, stack), = upper.s_fs_info.cleanups
    assert flags & PF_WQ_WORKER and not flags & PF_MEMALLOC
    assert sim.vfs.stats.evicted_in_reclaim == 0 and sim.vfs.stats.deferred >= 1
    assert sim.vfs.leaked() == []


def test_overlay_shrinker_is_registered_and_its_layers_cannot_be_unmounted_under_it():
    sim, upper, lower, ovl = machine()
    assert ovl.s_shrink.name == "sb-overlay"
    with pytest.raises(KernelError, match="EBUSY"):
        run_task(sim, sys_umount("/upper"))

    def teardown():
        yield from create("/merged/x", 5000)
        yield from sys_umount("/merged")
        yield from sys_unlink("/upper/u/x")
        yield from sys_umount("/upper")
        yield from sys_umount("/lower")

    run_task(sim, teardown())
    assert sim.vfs.super_blocks == [] and sim.vfs.check_invariants() == []
    assert sim.vfs.leaked() == [] and sim.vfs.stats.evicted == sim.vfs.stats.allocated


@pytest.mark.parametrize("design", ["sync", "inodegc", "passive-ref"])
def test_unmounting_the_overlay_releases_pinned_unlinked_real_inodes(design):
    sim, upper, lower, ovl = machine(design)
    w1_setup(sim)
    run_task(sim, sys_umount("/merged"))
    run_task(sim, sys_umount("/upper"))
    assert len(upper.s_fs_info.cleanups) == 1 and sim.vfs.leaked() == []
    assert sim.vfs.check_invariants() == []


@pytest.mark.parametrize("opts,msg", [
    ({"lowerdir": "/nowhere"}, "lowerdir /nowhere"),
    ({"lowerdir": "/lower/l", "upperdir": "/upper/u"}, "go together"),
    ({"upperdir": "/upper/u", "workdir": "/upper/w"}, "missing 'lowerdir'"),
])
def test_bad_overlay_mounts_are_rejected_with_a_clear_message(opts, msg):
    sim, upper, lower, ovl = machine()
    with pytest.raises(KernelError, match=msg):
        run_task(sim, sys_mount("overlay", None, "/m2", opts))
    assert sim.vfs.check_invariants() == []


@pytest.mark.parametrize("design,in_kswapd", [("sync", True), ("passive-ref", False)])
def test_w1_emerges_under_memory_pressure_from_the_real_kswapd(design, in_kswapd):
    """Nothing calls a shrinker here: an anonymous-memory hog pushes free memory below the low
    watermark, kswapd wakes, shrinks slab, and the overlay's sb shrinker prunes overlay dentries
    that are the last holders of unlinked upper inodes."""
    from reclaimlab.mm.anon import do_anonymous_page, get_task_mm

    sim, upper, lower, ovl = machine(design, memory_mb=48)

    def churn():
        for i in range(300):
            yield from create(f"/merged/v{i}", 4096)
            yield from sys_unlink(f"/upper/u/v{i}")

    run_task(sim, churn(), "runc")
    assert upper.s_fs_info.cleanups == []

    def hog():  # a little more than what is free, in steps
        mm = get_task_mm(sim.tasks[max(sim.tasks)])
        for _ in range(sim.pgdat.zone.free_pages // 500 + 1):
            yield from do_anonymous_page(mm, 500)
            yield 1_000_000

    run_task(sim, hog(), "hog", until=sim.now + 2 * 10**9)
    cleanups = upper.s_fs_info.cleanups
    assert cleanups, "kswapd never reached the overlay dentries"
    if in_kswapd:
        assert all(c[1] == "kswapd0" and c[2] & PF_MEMALLOC for c in cleanups)
    else:
        assert all(not c[2] & PF_MEMALLOC for c in cleanups)
        assert sim.vfs.stats.evicted_in_reclaim == 0
