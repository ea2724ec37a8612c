"""XFS's superblock (``fs/xfs/xfs_super.c``): mount, ``super_operations``, sync, statfs, freeze,
unmount.

Mount lays out ``agcount`` allocation groups (headers, a pre-allocated inode region of up to 25%
of the space, data), places the log in AG 0, starts the log (CIL workqueue, xfsaild), the inodegc
machinery (per-CPU queues, workqueue, "xfs-inodegc" shrinker), the buffer cache's "xfs-buf"
shrinker and the background reclaim worker; creates the root directory.

``sync_fs`` forces the log (and flushes inodegc when waiting, or stops it for a freeze),
``statfs`` pushes inodegc (non-blocking since 5.19), ``put_super`` stops inodegc, pushes the AIL
empty and reclaims every inode.
"""

from __future__ import annotations

from typing import Any

from reclaimlab.fs.inodegc import (
    Inodegc, inodegc_config, xfs_inodegc_flush, xfs_inodegc_push, xfs_inodegc_start,
    xfs_inodegc_stop,
)
from reclaimlab.fs.xfs import xfs_buf as xb
from reclaimlab.fs.xfs import xfs_icache as xic
from reclaimlab.fs.xfs import xfs_inode as xi
from reclaimlab.fs.xfs.xfs_log import xfs_log_force, xlog
from reclaimlab.fs.xfs.xfs_mount import (
    XFS_IMAXPCT, XFS_INODE_RATIO, XFS_INODE_STRUCT_SIZE, XfsConfig,
    xfs_disk_inode, xfs_mount, xfs_perag,
)
from reclaimlab.mm.shrinker import unregister_shrinker
from reclaimlab.mm.slab import kmem_cache_create
from reclaimlab.sim import DelayedWork, LockdepMap, alloc_workqueue, cancel_delayed_work, wake_up
from reclaimlab.vfs import dcache, fs_writeback
from reclaimlab.vfs import inode as vfs_inode
from reclaimlab.vfs.fs import (
    I_DIRTY_PAGES, S_IFDIR, S_ISDIR, AddressSpaceOperations, FileSystemType, InodeOperations,
    SuperOperations,
)
from reclaimlab.vfs.super import alloc_super

XFS_ROOT_INO = 1


class XfsDirInodeOperations(InodeOperations):
    """``xfs_dir_inode_operations``."""

    lookup = staticmethod(xi.xfs_vn_lookup)
    create = staticmethod(xi.xfs_vn_create)
    mkdir = staticmethod(xi.xfs_vn_mkdir)
    unlink = staticmethod(xi.xfs_remove)
    rmdir = staticmethod(xi.xfs_remove)
    rename = staticmethod(xi.xfs_rename)
    setxattr = staticmethod(xi.xfs_vn_setxattr)
    getxattr = staticmethod(xi.xfs_vn_getxattr)


class XfsFileInodeOperations(InodeOperations):
    """``xfs_inode_operations``."""

    setxattr = staticmethod(xi.xfs_vn_setxattr)
    getxattr = staticmethod(xi.xfs_vn_getxattr)


class XfsAops(AddressSpaceOperations):
    """``xfs_address_space_operations`` (iomap buffered IO, delalloc)."""

    write_begin = staticmethod(xi.xfs_buffered_write_iomap_begin)
    writepages = staticmethod(xi.xfs_vm_writepages)

    @staticmethod
    def dirty_folio(folio: Any) -> None:
        fs_writeback.inode_set_dirty(folio.mapping.host, I_DIRTY_PAGES)


XFS_DIR_IOPS = XfsDirInodeOperations()
XFS_FILE_IOPS = XfsFileInodeOperations()
XFS_AOPS = XfsAops()


def xfs_set_ops(ip: Any) -> None:
    """``xfs_setup_iops``."""
    if S_ISDIR(ip.i_mode):
        ip.i_op = XFS_DIR_IOPS
    else:
        ip.i_op = XFS_FILE_IOPS
        ip.i_aops = XFS_AOPS


class XfsFsType(FileSystemType):
    """``xfs_fs_type``."""

    name = "xfs"
    native_design = "inodegc"
    requires_dev = True

    def mount(self, sim: Any, dev: Any, opts: dict):
        return (yield from xfs_fs_fill_super(sim, self, dev, opts))


def xfs_layout(mp: xfs_mount) -> None:
    """The AGs: headers, inode region (``imaxpct``), data; the log in AG 0."""
    bs = mp.m_blocksize
    inodes = mp.m_agblocks * bs // XFS_INODE_RATIO
    inodes = min(inodes, mp.m_agblocks * XFS_IMAXPCT // 100 * mp.m_inodes_per_block)
    inodes -= inodes % mp.m_inodes_per_cluster
    mp.m_inodes_per_ag = max(inodes, mp.m_inodes_per_cluster)
    inode_blocks = mp.m_inodes_per_ag // mp.m_inodes_per_block
    for agno in range(mp.m_agcount):
        pag = xfs_perag(agno, agno * mp.m_agblocks, mp.m_agblocks, inode_blocks,
                        mp.m_inodes_per_ag)
        if pag.pagf_freeblks <= 0:
            raise ValueError(f"xfs: allocation groups of {mp.m_agblocks} blocks are too small "
                             f"for their headers and inodes")
        mp.m_perag.append(pag)
        mp.m_ifree += mp.m_inodes_per_ag
    log_blocks = mp.config.log_blocks
    pag0 = mp.m_perag[0]
    if pag0.pagf_freeblks < log_blocks + 1:
        raise ValueError(f"xfs: AG 0 ({mp.m_agblocks} blocks) cannot hold a {log_blocks}-block log")
    mp.m_logstart = pag0.next_block
    pag0.next_block += log_blocks
    pag0.pagf_freeblks -= log_blocks
    mp.m_fdblocks = sum(p.pagf_freeblks for p in mp.m_perag)
    mp.m_icount = mp.m_agcount * mp.m_inodes_per_ag


def _inode_cache(sim: Any) -> Any:
    cache = sim.__dict__.get("xfs_inode_cache")
    if cache is None:
        cache = sim.xfs_inode_cache = kmem_cache_create(sim, "xfs_inode", XFS_INODE_STRUCT_SIZE)
    return cache


def xfs_fs_fill_super(sim: Any, fs_type: XfsFsType, dev: Any, opts: dict):
    """``xfs_fs_fill_super``."""
    if dev is None:
        raise ValueError("xfs: mount needs a block device")
    config = XfsConfig.from_options(opts)
    btp = xb.xfs_buftarg(sim, dev, config.block_size)
    nr_blocks = config.max_blocks or dev.nr_sectors // btp.sectors_per_block
    sb = alloc_super(sim, fs_type, dev)
    mp = xfs_mount(sim, sb.s_id, config, nr_blocks, btp.page_size)
    mp.m_super = sb
    mp.m_btp = btp
    xfs_layout(mp)
    sb.s_fs_info = mp
    sb.s_op = XFS_SOPS
    sb.s_blocksize = config.block_size
    sb.s_min_folio_order = max(0, (config.block_size // btp.page_size).bit_length() - 1)
    mp.m_inode_cache = _inode_cache(sim)
    mp.m_log_map = LockdepMap("xfs_log_grant")
    mp.m_log = xlog(sim, mp, config.log_blocks)
    mp.m_inodegc = Inodegc(sim, sb.s_id, xic.xfs_inodegc_inactivate,
                           lambda: mp.m_fdblocks * 100 < mp.m_sb_dblocks *
                           mp.m_inodegc.config.low_space_pct, inodegc_config(sim, opts))
    mp.m_reclaim_wq = alloc_workqueue(sim, f"xfs-reclaim/{sb.s_id}")
    mp.m_reclaim_work = DelayedWork(xic.xfs_reclaim_worker, mp)
    root = xfs_disk_inode(S_IFDIR | 0o755)
    root.dir = {}
    root.nlink = 2
    root.dir_block = mp.m_perag[0].next_block
    mp.m_perag[0].next_block += 1
    mp.m_perag[0].pagf_freeblks -= 1
    mp.m_fdblocks -= 1
    mp.m_perag[0].inodes[0] = 1
    mp.m_perag[0].pagi_freecount -= 1
    mp.m_ifree -= 1
    mp.m_disk[XFS_ROOT_INO] = root
    rip = yield from xic.xfs_iget(mp, XFS_ROOT_INO)
    sb.s_root = yield from dcache.d_make_root(rip)
    return sb


def xfs_fs_sync_fs(sb: Any, wait: int):
    """``xfs_fs_sync_fs``: force the log; a freeze stops inodegc, a waiting sync flushes it."""
    mp: xfs_mount = sb.s_fs_info
    if not wait:
        return
    if sb.s_writers.frozen:
        yield from xfs_inodegc_stop(mp.m_inodegc)
    else:
        yield from xfs_inodegc_flush(mp.m_inodegc)
    yield from xfs_log_force(mp)


def xfs_fs_statfs(sb: Any) -> dict:
    """``xfs_fs_statfs``: push inodegc (without waiting), report the counters."""
    mp: xfs_mount = sb.s_fs_info
    xfs_inodegc_push(mp.m_inodegc)
    return {"f_bsize": mp.m_blocksize, "f_blocks": mp.m_sb_dblocks, "f_bfree": mp.m_fdblocks,
            "f_files": mp.m_icount, "f_ffree": mp.m_ifree}


def xfs_fs_put_super(sb: Any):
    """``xfs_fs_put_super`` → ``xfs_unmountfs``: stop inodegc, force the log, push the AIL empty,
    reclaim every inode, stop the log and free the buffers."""
    mp: xfs_mount = sb.s_fs_info
    sim = sb.s_sim
    yield from xfs_inodegc_stop(mp.m_inodegc)
    if mp.m_inodegc.shrinker is not None:
        unregister_shrinker(sim, mp.m_inodegc.shrinker)
    mp.m_unmounting = True
    cancel_delayed_work(mp.m_reclaim_work)
    yield from xic.xfs_reclaim_inodes(mp)
    log = mp.m_log
    log.unmounting = True
    cancel_delayed_work(log.log_worker)
    wake_up(log.ail_wait)
    unregister_shrinker(sim, mp.m_btp.shrinker)
    xb.xfs_buftarg_drain(mp.m_btp)


def xfs_fs_evict_inode(inode: Any):
    """``xfs_fs_evict_inode``: truncate the page cache, ``clear_inode``; nothing blocks here."""
    vfs_inode.truncate_inode_pages_final(inode.i_data)
    vfs_inode.clear_inode(inode)
    yield from ()


def xfs_fs_nr_cached_objects(sb: Any) -> int:
    """``xfs_fs_nr_cached_objects``: reclaimable XFS inodes."""
    return xic.xfs_reclaim_inodes_count(sb.s_fs_info)


def xfs_fs_free_cached_objects(sb: Any, nr_to_scan: int):
    """``xfs_fs_free_cached_objects`` → ``xfs_reclaim_inodes_nr``."""
    return (yield from xic.xfs_reclaim_inodes_nr(sb.s_fs_info, nr_to_scan))


def xfs_fs_freeze(sb: Any):
    """``xfs_fs_freeze``: stop inodegc, force the log."""
    yield from xfs_inodegc_stop(sb.s_fs_info.m_inodegc)
    yield from xfs_log_force(sb.s_fs_info)


def xfs_fs_unfreeze(sb: Any):
    """``xfs_fs_unfreeze``: restart inodegc."""
    xfs_inodegc_start(sb.s_fs_info.m_inodegc)
    yield from ()


class XfsSuperOperations(SuperOperations):
    """``xfs_super_operations``: no ``alloc_inode``/``free_inode`` use by the VFS (XFS allocates
    in ``xfs_iget`` and frees in reclaim)."""

    destroy_inode = staticmethod(xic.xfs_fs_destroy_inode)
    evict_inode = staticmethod(xfs_fs_evict_inode)
    sync_fs = staticmethod(xfs_fs_sync_fs)
    statfs = staticmethod(xfs_fs_statfs)
    nr_cached_objects = staticmethod(xfs_fs_nr_cached_objects)
    free_cached_objects = staticmethod(xfs_fs_free_cached_objects)
    put_super = staticmethod(xfs_fs_put_super)
    freeze_fs = staticmethod(xfs_fs_freeze)
    unfreeze_fs = staticmethod(xfs_fs_unfreeze)
    inactive = staticmethod(xi.xfs_inactive)
    needs_inactive = staticmethod(xi.xfs_inode_needs_inactive)


XFS_SOPS = XfsSuperOperations()


def xfs_check_invariants(sb: Any) -> list[str]:
    """Simulator check: space and inode counters agree with the AGs; nothing left queued."""
    mp: xfs_mount = sb.s_fs_info
    out = []
    free_inodes = sum(p.pagi_freecount for p in mp.m_perag)
    if free_inodes != mp.m_ifree:
        out.append(f"{sb!r}: AG free inodes {free_inodes} != m_ifree {mp.m_ifree}")
    if mp.m_fdblocks > sum(p.pagf_freeblks for p in mp.m_perag):
        out.append(f"{sb!r}: m_fdblocks {mp.m_fdblocks} exceeds the AGs' free space")
    if mp.m_log.l_used < 0 or mp.m_log.l_reserved < 0:
        out.append(f"{sb!r}: negative log accounting")
    return out


__all__ = ["XfsFsType", "xfs_fs_fill_super", "xfs_check_invariants", "XFS_SOPS"]
