"""Writeback, freeze protection, xattrs, statfs, drop_caches and error returns."""

import pytest
from testfs import make_machine, run_task

from reclaimlab.sim import NSEC_PER_SEC
from reclaimlab.vfs.errors import KernelError
from reclaimlab.vfs.fs import I_DIRTY_PAGES, SB_FREEZE_COMPLETE
from reclaimlab.vfs.fs_writeback import wakeup_flusher_threads
from reclaimlab.vfs.syscalls import (
    O_CREAT, O_RDONLY, O_RDWR, sys_close, sys_drop_caches, sys_freeze, sys_fsync, sys_getxattr,
    sys_mkdir, sys_mount, sys_open, sys_read, sys_rmdir, sys_setxattr, sys_stat, sys_statfs,
    sys_sync, sys_syncfs, sys_thaw, sys_umount, sys_unlink, sys_write,
)


def mounted(design="sync", **kw):
    sim = make_machine(design, **kw)
    sb = run_task(sim, sys_mount("testfs", "vda", "/mnt", {}), "mount")
    return sim, sb


def write_file(path, nbytes):
    fd = yield from sys_open(path, O_CREAT | O_RDWR)
    yield from sys_write(fd, nbytes)
    return fd


def test_dirty_data_is_written_by_the_periodic_flusher_after_the_expire_interval():
    sim, sb = mounted()
    box = {}

    def work():
        fd = yield from write_file("/mnt/f", 3 * 4096)
        inode = sb.s_root.d_children["f"].d_inode
        box["inode"] = inode
        box["dirty0"] = bool(inode.i_state & I_DIRTY_PAGES) and inode in sb.s_wb.b_dirty
        yield from sys_close(fd)
        yield 29 * NSEC_PER_SEC
        box["dirty29"] = len(inode.i_data.dirty)
        yield 7 * NSEC_PER_SEC
        box["dirty36"] = len(inode.i_data.dirty)

    run_task(sim, work())
    assert box["dirty0"] and box["dirty29"] == 3 and box["dirty36"] == 0
    assert not box["inode"].i_state & I_DIRTY_PAGES and box["inode"] not in sb.s_wb.b_dirty


def test_wakeup_flusher_threads_writes_everything_now_and_mm_has_the_hook():
    sim, sb = mounted()
    box = {}

    def work():
        fd = yield from write_file("/mnt/f", 8 * 4096)
        yield from sys_close(fd)
        sim.pgdat.wakeup_flusher_threads()
        yield 10_000_000
        box["dirty"] = len(sb.s_root.d_children["f"].d_inode.i_data.dirty)

    run_task(sim, work())
    assert box["dirty"] == 0
    wakeup_flusher_threads(sim)  # nothing dirty: a no-op


def test_fsync_and_syncfs_leave_nothing_dirty_or_under_writeback():
    sim, sb = mounted(preset="ssd")

    def work():
        fd = yield from write_file("/mnt/f", 5 * 4096)
        yield from sys_fsync(fd)
        m = sb.s_root.d_children["f"].d_inode.i_data
        assert not m.dirty and m.nr_writeback == 0
        fd2 = yield from write_file("/mnt/g", 4096)
        yield from sys_syncfs("/mnt")
        m2 = sb.s_root.d_children["g"].d_inode.i_data
        assert not m2.dirty and m2.nr_writeback == 0
        yield from sys_close(fd)
        yield from sys_close(fd2)

    run_task(sim, work())


def test_read_back_through_the_page_cache_and_eof():
    sim, sb = mounted()

    def work():
        fd = yield from write_file("/mnt/f", 10000)
        yield from sys_close(fd)
        yield from sys_drop_caches(1)  # clean folios of unused... written back? not yet: dirty
        yield from sys_sync()
        yield from sys_drop_caches(1)
        assert sb.s_root.d_children["f"].d_inode.i_data.nrpages == 0
        fd = yield from sys_open("/mnt/f", O_RDONLY)
        a = yield from sys_read(fd, 8192)
        b = yield from sys_read(fd, 8192)
        c = yield from sys_read(fd, 8192)
        yield from sys_close(fd)
        return a, b, c

    assert run_task(sim, work()) == (8192, 1808, 0)


def test_write_to_a_read_only_fd_and_bad_fds_fail():
    sim, sb = mounted()

    def work():
        fd = yield from write_file("/mnt/f", 1)
        yield from sys_close(fd)
        fd = yield from sys_open("/mnt/f", O_RDONLY)
        errs = []
        for call in (sys_write(fd, 10), sys_read(99, 1), sys_close(99)):
            try:
                yield from call
            except KernelError as e:
                errs.append(e.errno)
        yield from sys_close(fd)
        return errs

    assert run_task(sim, work()) == ["EBADF", "EBADF", "EBADF"]


def test_enospc_from_the_filesystem_reaches_the_caller():
    sim, sb = mounted()
    sb.s_fs_info.free_blocks = sb.s_fs_info.free_blocks[:2]
    with pytest.raises(KernelError, match="ENOSPC"):
        run_task(sim, write_file("/mnt/f", 5 * 4096))


def test_freeze_blocks_writers_until_thaw_and_sync_still_works():
    sim, sb = mounted()
    run_task(sim, write_file("/mnt/f", 4096))
    times = {}

    def freezer():
        yield from sys_freeze("/mnt")
        times["frozen"] = sim.now
        assert sb.s_writers.frozen == SB_FREEZE_COMPLETE
        yield 1_000_000_000
        yield from sys_thaw("/mnt")
        times["thawed"] = sim.now

    def writer():
        yield 1000
        try:
            yield from sys_freeze("/mnt")
        except KernelError as e:
            times["refreeze"] = e.errno
        yield from sys_mkdir("/mnt/d")  # blocks in sb_start_write
        times["mkdir"] = sim.now

    sim.spawn(freezer(), "fsfreeze")
    sim.spawn(writer(), "mkdir")
    sim.run()
    assert times["refreeze"] == "EBUSY"
    assert times["mkdir"] >= times["thawed"] > times["frozen"]
    with pytest.raises(KernelError, match="EINVAL"):
        run_task(sim, sys_thaw("/mnt"))


def test_xattrs_statfs_and_rmdir():
    sim, sb = mounted()

    def work():
        fd = yield from write_file("/mnt/f", 4096)
        yield from sys_close(fd)
        yield from sys_setxattr("/mnt/f", "user.a", 100)
        size = yield from sys_getxattr("/mnt/f", "user.a")
        try:
            yield from sys_getxattr("/mnt/f", "user.b")
        except KernelError as e:
            missing = e.errno
        st = yield from sys_statfs("/mnt")
        yield from sys_mkdir("/mnt/d")
        fd = yield from write_file("/mnt/d/x", 1)
        yield from sys_close(fd)
        try:
            yield from sys_rmdir("/mnt/d")
        except KernelError as e:
            notempty = e.errno
        yield from sys_unlink("/mnt/d/x")
        yield from sys_rmdir("/mnt/d")
        try:
            yield from sys_stat("/mnt/d")
        except KernelError as e:
            gone = e.errno
        return size, missing, st, notempty, gone

    size, missing, st, notempty, gone = run_task(sim, work())
    assert (size, missing, notempty, gone) == (100, "ENODATA", "ENOTEMPTY", "ENOENT")
    assert st["f_bfree"] < st["f_blocks"]
    run_task(sim, sys_umount("/mnt"))
    assert sim.vfs.leaked() == [] and sim.vfs.check_invariants() == []


def test_mount_errors():
    sim, sb = mounted()
    for args, errno in [(("nofs", "vda", "/x", {}), "ENODEV"),
                        (("testfs", "vdz", "/x", {}), "ENODEV"),
                        (("testfs", "vda", "/y", {}), "EBUSY"),
                        (("testfs", "vda", "/mnt", {}), "EBUSY"),
                        (("testfs", "vda", "relative", {}), "EINVAL")]:
        with pytest.raises(KernelError, match=errno):
            run_task(sim, sys_mount(*args))
    with pytest.raises(KernelError, match="EINVAL"):
        run_task(sim, sys_umount("/nothing"))


def test_exit_files_closes_what_a_task_left_open_so_unmount_succeeds():
    sim, sb = mounted()
    from reclaimlab.vfs.syscalls import exit_files

    def careless():
        yield from write_file("/mnt/f", 4096)
        yield from write_file("/mnt/g", 4096)
        yield from sys_unlink("/mnt/g")
        yield from exit_files()

    run_task(sim, careless())
    run_task(sim, sys_umount("/mnt"))
    assert sim.vfs.leaked() == [] and sim.vfs.check_invariants() == []
