"""The XFS-like filesystem: inodegc in the inode lifecycle, reclaim, the log."""

from __future__ import annotations

import pytest

from reclaimlab.fs.xfs import XfsConfig, xfs_check_invariants
from reclaimlab.fs.xfs.xfs_icache import xfs_reclaim_inodes_count, xfs_reclaim_inodes_nr
from reclaimlab.sim import PF_MEMALLOC, current
from reclaimlab.vfs import dcache, syscalls as sc
from reclaimlab.vfs import inode as vfs_inode
from reclaimlab.vfs.fs import O_CREAT, O_RDWR

from tests.fs.machine import Machine


def create_files(n: int, nbytes: int = 8192, prefix: str = "/f"):
    for i in range(n):
        fd = yield from sc.sys_open(f"{prefix}{i}", O_CREAT | O_RDWR)
        if nbytes:
            yield from sc.sys_write(fd, nbytes)
        yield from sc.sys_close(fd)


def evict_unused(sb):
    """Write everything back, then prune every unused dentry and inode of ``sb`` (what the sb
    shrinker does under pressure)."""
    yield from sc.sys_syncfs("/")
    yield from dcache.prune_dcache_sb(sb, 1 << 20)
    yield from vfs_inode.prune_icache_sb(sb, 1 << 20)


def test_rm_under_native_design_defers_inactivation_and_unmount_drains_everything():
    m = Machine(design="native")
    sb = m.mount("xfs", journal_mb=16)
    mp = sb.s_fs_info
    m.run(create_files(300))

    def rm():
        for i in range(300):
            yield from sc.sys_unlink(f"/f{i}")
        return mp.m_inodegc.nr_queued() + len(m.tracepoints("xfs_inodegc_worker"))

    assert m.run(rm()) > 0
    assert m.sim.vfs.stats.deferred >= 300
    m.run(sc.sys_umount("/"))
    assert mp.m_inodegc.nr_queued() == 0
    assert m.sim.vfs.leaked() == [] and m.sim.vfs.check_invariants() == []
    assert all(not pag.pag_ici_root for pag in mp.m_perag)
    assert mp.m_ifree == mp.m_icount - 1 and xfs_check_invariants(sb) == []


def test_sync_design_inactivates_inline_in_the_final_iput():
    m = Machine(design="sync")
    m.mount("xfs", journal_mb=16)
    m.run(create_files(3))
    m.run(sc.sys_unlink("/f0"), comm="rm")
    cleanups = [e for e in m.events if e[0] == "inode_cleanup"]
    assert cleanups and cleanups[-1][1].comm == "rm" and not cleanups[-1][3]["deferred"]
    assert m.sim.vfs.stats.deferred == 0 and m.sim.vfs.leaked() == []


def test_iget_of_an_inode_awaiting_inactivation_flushes_inodegc():
    m = Machine(design="native")
    sb = m.mount("xfs", journal_mb=16, inodegc_delay_jiffies=10_000)
    m.run(create_files(1, 40960))                # post-EOF preallocation: needs inactivation
    m.run(evict_unused(sb))
    assert sb.s_fs_info.m_inodegc.nr_queued() == 1
    st = m.run(sc.sys_stat("/f0"))
    assert st and m.tracepoints("xfs_inodegc_flush")
    assert sb.s_fs_info.m_inodegc.nr_queued() == 0


def test_statfs_pushes_inodegc():
    m = Machine(design="native")
    sb = m.mount("xfs", journal_mb=16, inodegc_delay_jiffies=10_000)
    m.run(create_files(2, 40960))
    m.run(evict_unused(sb))
    m.run(sc.sys_statfs("/"))
    assert m.tracepoints("xfs_inodegc_push")
    m.sim.run(until=m.sim.now + 50_000_000)
    assert sb.s_fs_info.m_inodegc.nr_queued() == 0


def reclaim_after_churn(blocking: bool):
    """Dirty reclaimable inodes (inactivated, logged, not yet written back); one reclaim call."""
    m = Machine(design="native")
    sb = m.mount("xfs", journal_mb=16, blocking_reclaim=blocking)
    mp = sb.s_fs_info
    m.run(create_files(64, 40960))
    m.run(evict_unused(sb))
    m.run(sc.sys_syncfs("/"))                   # inodegc flushed: all reclaimable, still dirty

    def reclaim():
        start = current().sim.now
        freed = yield from xfs_reclaim_inodes_nr(mp, 128)
        return freed, current().sim.now - start

    assert xfs_reclaim_inodes_count(mp) >= 64
    return m.run(reclaim(), comm="reclaimer")


def test_reclaim_skips_dirty_inodes_without_blocking_since_5_9():
    freed, took = reclaim_after_churn(blocking=False)
    assert freed == 0 and took < 200_000


def test_blocking_reclaim_writes_dirty_clusters_and_waits():
    freed, took = reclaim_after_churn(blocking=True)
    assert freed >= 64 and took > 100_000


def test_the_log_makes_transactions_wait_for_the_ail_when_full():
    m = Machine(design="native")
    sb = m.mount("xfs", journal_mb=2)               # 512 blocks: one new inode logged per create
    m.run(create_files(700, 0))
    log = sb.s_fs_info.m_log
    assert log.stats["grant_waits"] > 0 and log.stats["ail_written"] > 0
    assert m.tracepoints("xfs_log_grant_sleep")
    assert log.aild.flags & PF_MEMALLOC


def test_iget_recycles_a_reclaimable_inode():
    m = Machine(design="native")
    sb = m.mount("xfs", journal_mb=16)
    m.run(create_files(1, 0))
    m.run(evict_unused(sb))
    mp = sb.s_fs_info
    ip = next(iter(mp.m_perag[0].pag_ici_reclaim), None)
    assert ip is not None
    m.run(sc.sys_stat("/f0"))
    assert ip not in mp.m_perag[0].pag_ici_reclaim and ip in sb.s_inodes


@pytest.mark.parametrize("opts, message", [
    ({"block_size": 3000}, "power of two"),
    ({"journal_mb": 1, "block_size": 65536}, "512-block minimum"),
    ({"agcount": 0}, "agcount"),
    ({"bogus": True}, "unknown mount option"),
])
def test_bad_xfs_configuration_is_rejected(opts, message):
    with pytest.raises(ValueError, match=message):
        XfsConfig.from_options(opts)
