"""XFS's inode cache (``fs/xfs/xfs_icache.c``): ``xfs_iget``, the reclaimable state after the VFS
lets go, inactivation (inline, or deferred to inodegc), and inode reclaim.

Lifecycle (kernel-semantics §5): ``->destroy_inode`` → ``xfs_inode_mark_reclaimable``: an inode
needing inactivation goes to ``xfs_inodegc_queue`` (design ``inodegc``, XFS's native one) or is
inactivated inline (``sync``/``passive-ref``: the pre-5.15 behaviour); then
``xfs_inodegc_set_reclaimable`` tags it ``XFS_ICI_RECLAIM_TAG``. It stays in the per-AG cache, where
``xfs_iget`` may find and recycle it, until ``xfs_reclaim_inode`` frees it.

Reclaim runs from the superblock shrinker (``free_cached_objects`` → ``xfs_reclaim_inodes_nr``)
and a background worker. Since 5.9 it never blocks: ILOCK trylock, skip pinned or dirty inodes
(the AIL push it kicks cleans them). With ``blocking_reclaim`` (pre-5.9, ``SYNC_WAIT``) the
shrinker takes the ILOCK, forces the log for a pinned inode and writes a dirty inode's cluster
back, waiting for the IO — the L1/L2 latency cases.
"""

from __future__ import annotations

from itertools import islice

from reclaimlab.fs.inodegc import (
    XFS_INACTIVATING, XFS_INEW, XFS_IRECLAIM, XFS_IRECLAIMABLE, XFS_NEED_INACTIVE,
    xfs_inodegc_flush, xfs_inodegc_queue,
)
from reclaimlab.fs.xfs import xfs_buf as xb
from reclaimlab.fs.xfs import xfs_super  # circular: used at call time only
from reclaimlab.fs.xfs.xfs_inode import (
    XFS_M, xfs_imap_to_bp, xfs_inactive, xfs_inode_clean, xfs_inode_needs_inactive,
)
from reclaimlab.fs.xfs.xfs_log import xfs_ail_push_all, xfs_ail_push_all_sync, xfs_log_force
from reclaimlab.fs.xfs.xfs_mount import XFS_RECLAIM_PERIOD_NS, xfs_inode, xfs_mount
from reclaimlab.mm.gfp import GFP_KERNEL, __GFP_NOFAIL
from reclaimlab.mm.slab import kmem_cache_alloc, kmem_cache_free
from reclaimlab.sim import (
    JIFFY_NS, DelayedWork, Run, current, down_write, down_write_trylock, queue_delayed_work, up_write,
    wake_up,
)
from reclaimlab.vfs import inode as vfs_inode
from reclaimlab.vfs.errors import KernelError
from reclaimlab.vfs.fs import INODE_FREED_MARK

XFS_LOOKUP_BATCH = 32

# CPU cost of modelled operations, in ns.
XFS_IGET_HIT_NS = 300
XFS_IGET_MISS_NS = 1_500               # xfs_iread: decode and verify the inode core
XFS_RECLAIM_INODE_NS = 500             # xfs_reclaim_inode: radix tree delete + free


# ------------------------------------------------------------------ lookup
def xfs_inode_alloc(mp: xfs_mount, ino: int):
    """``xfs_inode_alloc``: ``kmem_cache_alloc(xfs_inode_cache, GFP_KERNEL|__GFP_NOFAIL)``."""
    obj = yield from kmem_cache_alloc(mp.m_inode_cache, GFP_KERNEL | __GFP_NOFAIL)
    ip = xfs_inode()
    ip.i_xfs_slab = obj
    vfs_inode.inode_init_always(mp.m_super, ip)
    ip.i_ino = ino
    ip.i_agno = (ino - 1) // mp.m_inodes_per_ag
    return ip


def xfs_iget(mp: xfs_mount, ino: int):
    """``xfs_iget``: the cached inode (recycling a reclaimable one, flushing inodegc for one that
    still needs inactivation) or a new one read from its cluster buffer. ``ENOENT`` for an
    unlinked inode awaiting inactivation or a free inode."""
    pag = mp.m_perag[(ino - 1) // mp.m_inodes_per_ag]
    while True:
        ip = pag.pag_ici_root.get(ino)
        if ip is None:
            return (yield from xfs_iget_cache_miss(mp, ino))
        yield Run(XFS_IGET_HIT_NS)
        flags = ip.i_gcflags
        if flags & (XFS_INEW | XFS_IRECLAIM | XFS_INACTIVATING):
            yield JIFFY_NS                              # "skip and retry after 1 tick"
            continue
        if flags & XFS_NEED_INACTIVE:
            if ip.i_nlink == 0:
                raise KernelError("ENOENT", f"xfs_iget({ino}): inode being inactivated")
            yield from xfs_inodegc_flush(mp.m_inodegc)
            continue
        if flags & XFS_IRECLAIMABLE:
            if ino not in mp.m_disk:
                raise KernelError("ENOENT", f"xfs_iget({ino}): free inode")
            xfs_iget_recycle(mp, ip)
            return ip
        if vfs_inode.igrab(ip) is None:                 # VFS is evicting it
            yield JIFFY_NS
            continue
        return ip


def xfs_iget_recycle(mp: xfs_mount, ip: xfs_inode) -> None:
    """``xfs_iget_recycle``: bring a reclaimable inode back to the VFS (reinitialising the VFS
    inode; a freed one reallocated by ``xfs_dialloc`` takes its new core)."""
    pag = mp.m_perag[ip.i_agno]
    pag.pag_ici_reclaim.pop(ip, None)
    ip.i_gcflags &= ~XFS_IRECLAIMABLE
    vfs_inode.inode_init_always(mp.m_super, ip)
    ip.i_disk = mp.m_disk[ip.i_ino]        # a freed inode may have been allocated again
    _xfs_setup_inode(mp, ip)


def xfs_iget_cache_miss(mp: xfs_mount, ino: int):
    """``xfs_iget_cache_miss``: allocate (NOFAIL), read the cluster buffer, insert in the cache."""
    disk = mp.m_disk.get(ino)
    if disk is None:
        raise KernelError("ENOENT", f"xfs_iget({ino}): free inode")
    ip = yield from xfs_inode_alloc(mp, ino)
    ip.i_gcflags = XFS_INEW
    bp = yield from xfs_imap_to_bp(mp, ino)
    yield Run(XFS_IGET_MISS_NS)
    xb.xfs_buf_relse(mp.m_btp, bp)
    pag = mp.m_perag[ip.i_agno]
    if ino in pag.pag_ici_root:                         # raced: use the cached one
        kmem_cache_free(mp.m_inode_cache, ip.i_xfs_slab)
        return (yield from xfs_iget(mp, ino))
    ip.i_disk = disk
    pag.pag_ici_root[ino] = ip
    _xfs_setup_inode(mp, ip)
    ip.i_gcflags &= ~XFS_INEW
    return ip


def _xfs_setup_inode(mp: xfs_mount, ip: xfs_inode) -> None:
    """``xfs_setup_inode`` + ``xfs_finish_inode_setup``: VFS fields, ops, fake hash, sb list."""
    disk = ip.i_disk
    ip.i_mode = disk.mode
    ip.i_nlink = disk.nlink
    ip.i_size = disk.size
    ip.i_blocks = disk.nblocks * (mp.m_blocksize // 512)
    xfs_super.xfs_set_ops(ip)
    vfs_inode.insert_inode_hash(ip)                     # inode_fake_hash
    vfs_inode.inode_sb_list_add(ip)


# ------------------------------------------------------------------ after the VFS lets go
def xfs_fs_destroy_inode(ip: xfs_inode):
    """``xfs_fs_destroy_inode`` → ``xfs_inode_mark_reclaimable``."""
    mp = XFS_M(ip.i_sb)
    if xfs_inode_needs_inactive(ip):
        if vfs_inode.inode_uses_inodegc(ip):
            yield from xfs_inodegc_queue(mp.m_inodegc, ip)
            return
        ip.i_gcflags |= XFS_NEED_INACTIVE | XFS_INACTIVATING
        yield from xfs_inactive_logged(ip)
    xfs_inodegc_set_reclaimable(mp, ip)


def xfs_inodegc_inactivate(ip: xfs_inode):
    """``xfs_inodegc_inactivate``: the inodegc worker's callback."""
    yield from xfs_inactive_logged(ip)
    xfs_inodegc_set_reclaimable(XFS_M(ip.i_sb), ip)


def xfs_inactive_logged(ip: xfs_inode):
    """``xfs_inactive`` whose error is reported and otherwise ignored, as the kernel does: an
    unlinked inode left on the AGI unlinked list is recovered at the next mount."""
    try:
        yield from xfs_inactive(ip)
    except KernelError as err:
        ip.i_sb.s_sim.emit("tracepoint", current(), ip,
                           {"name": "xfs_inactive_error", "ino": ip.i_ino, "errno": err.errno})


def xfs_inodegc_set_reclaimable(mp: xfs_mount, ip: xfs_inode) -> None:
    """``xfs_inodegc_set_reclaimable``: clear the inactivation flags, tag for reclaim; a freed
    inode (mode 0) is reclaimable at once."""
    ip.i_gcflags = (ip.i_gcflags & ~(XFS_NEED_INACTIVE | XFS_INACTIVATING)) | XFS_IRECLAIMABLE
    mp.m_perag[ip.i_agno].pag_ici_reclaim[ip] = None
    if mp.m_reclaim_work is not None and not mp.m_unmounting:
        queue_delayed_work(mp.m_reclaim_wq, mp.m_reclaim_work, XFS_RECLAIM_PERIOD_NS)


# ------------------------------------------------------------------ reclaim
def xfs_reclaim_inode(mp: xfs_mount, ip: xfs_inode, blocking: bool):
    """``xfs_reclaim_inode``: free a reclaimable inode; True if it was freed.

    Non-blocking (5.9+): skip if the ILOCK is contended or the inode is pinned in the CIL or dirty
    in the AIL. Blocking (pre-5.9 ``SYNC_WAIT``): wait for the ILOCK, force the log, write the
    cluster and wait.

    The reclaimer owns the inode from the grab on (``xfs_reclaim_igrab``: ``XFS_IRECLAIM`` set
    under ``i_flags_lock`` before anything may sleep), so a concurrent reclaimer (kswapd and
    direct reclaimers walk the same tree) skips it; a failed attempt drops the flag again.
    """
    if ip.i_gcflags & XFS_IRECLAIM or not ip.i_gcflags & XFS_IRECLAIMABLE:
        return False
    ip.i_gcflags |= XFS_IRECLAIM
    if ip.i_lock is not None:
        if blocking:
            yield from down_write(ip.i_lock)
        elif not down_write_trylock(ip.i_lock):
            ip.i_gcflags &= ~XFS_IRECLAIM
            return False
    try:
        if ip.li_state is not None and blocking:
            yield from xfs_iflush_and_wait(mp, ip)
        if not ip.i_gcflags & XFS_IRECLAIMABLE or ip.li_state is not None:
            ip.i_gcflags &= ~XFS_IRECLAIM
            return False
    finally:
        if ip.i_lock is not None:
            up_write(ip.i_lock)
    yield Run(XFS_RECLAIM_INODE_NS)
    xfs_inode_free(mp, ip)
    return True


def xfs_iflush_and_wait(mp: xfs_mount, ip: xfs_inode):
    """Pre-5.9 ``xfs_reclaim_inode`` with ``SYNC_WAIT``: unpin (log force), then write the inode
    cluster (``xfs_iflush``) and wait for the IO."""
    log = mp.m_log
    if ip.li_state == "pinned":
        yield from xfs_log_force(mp)
    if ip.li_state == "ail":
        del log.ail[ip]
        ip.li_state = None
        log.l_used -= 1
        if ip.i_cluster_bp is not None:
            yield from xb.xfs_buf_write_batch(mp.m_btp, [ip.i_cluster_bp])
        xfs_inode_clean(mp, ip)
        wake_up(log.l_grant_wait)


def xfs_inode_free(mp: xfs_mount, ip: xfs_inode) -> None:
    """``xfs_reclaim_inode`` tail + ``__xfs_inode_free``: out of the cache, back to the slab."""
    pag = mp.m_perag[ip.i_agno]
    pag.pag_ici_reclaim.pop(ip, None)
    del pag.pag_ici_root[ip.i_ino]
    xfs_inode_clean(mp, ip)
    kmem_cache_free(mp.m_inode_cache, ip.i_xfs_slab)
    ip.i_xfs_slab = None
    ip.i_state |= INODE_FREED_MARK           # any later use is reported by the VFS
    vfs_inode.note_inode_freed(ip)


def xfs_reclaim_inodes_count(mp: xfs_mount) -> int:
    """``xfs_reclaim_inodes_count``: reclaimable inodes (``nr_cached_objects``)."""
    return sum(len(pag.pag_ici_reclaim) for pag in mp.m_perag)


def xfs_reclaim_inodes_nr(mp: xfs_mount, nr_to_scan: int):
    """``xfs_reclaim_inodes_nr``: kick the background worker and the AIL, then walk up to
    ``nr_to_scan`` reclaimable inodes in batches of 32 (``XFS_ICWALK_FLAG_SCAN_LIMIT``)."""
    blocking = mp.config.blocking_reclaim
    if not blocking:
        queue_delayed_work(mp.m_reclaim_wq, mp.m_reclaim_work, XFS_RECLAIM_PERIOD_NS)
        xfs_ail_push_all(mp.m_log)
    freed = 0
    budget = nr_to_scan
    for pag in mp.m_perag:
        while budget > 0 and pag.pag_ici_reclaim:
            batch = list(islice(pag.pag_ici_reclaim, min(XFS_LOOKUP_BATCH, budget)))
            budget -= len(batch)
            for ip in batch:
                if (yield from xfs_reclaim_inode(mp, ip, blocking)):
                    freed += 1
                elif ip in pag.pag_ici_reclaim:             # rotate the skipped inode
                    del pag.pag_ici_reclaim[ip]
                    pag.pag_ici_reclaim[ip] = None
            if len(batch) < XFS_LOOKUP_BATCH:
                break
    return freed


def xfs_reclaim_worker(work: DelayedWork):
    """``xfs_reclaim_worker``: a non-blocking walk over all reclaimable inodes, every ~5 s while
    any remain."""
    mp: xfs_mount = work.data
    for pag in mp.m_perag:
        for ip in list(pag.pag_ici_reclaim):
            yield from xfs_reclaim_inode(mp, ip, False)
    if xfs_reclaim_inodes_count(mp) and not mp.m_unmounting:
        queue_delayed_work(mp.m_reclaim_wq, mp.m_reclaim_work, XFS_RECLAIM_PERIOD_NS)


def xfs_reclaim_inodes(mp: xfs_mount):
    """``xfs_reclaim_inodes`` at unmount: push the AIL empty, then free every inode."""
    yield from xfs_log_force(mp)
    yield from xfs_ail_push_all_sync(mp.m_log)
    for pag in mp.m_perag:
        for ip in list(pag.pag_ici_reclaim):
            yield from xfs_reclaim_inode(mp, ip, True)
