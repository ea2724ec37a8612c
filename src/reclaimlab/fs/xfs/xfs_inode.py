"""XFS inode operations (``fs/xfs/xfs_inode.c``, ``xfs_iops.c``, ``xfs_inode_item.c``,
``xfs_aops.c``): inode allocation and freeing in transactions, namespace operations, buffered
write allocation with speculative preallocation, ``xfs_inactive``, and inode flushing.

Every modification runs in a transaction (``xfs_trans_alloc``: log reservation, may wait for the
AIL) holding the ILOCK; logging an inode pins it in the CIL and attaches its cluster buffer
(read with ``GFP_NOFS|__GFP_NOFAIL`` pages when not cached) until xfsaild writes it back.

``xfs_inactive`` (kernel-semantics §5 rule 6): nlink > 0 frees post-EOF preallocation
(``xfs_free_eofblocks``); nlink == 0 truncates the data (``xfs_inactive_truncate``, rolling the
transaction every two extents) and frees the inode (``xfs_inactive_ifree`` → ``xfs_ifree``: AGI).

Simplified: free space is a per-AG counter with a bump pointer (no free-space btrees); an inode's
data is a block count (2 "extents" per roll); directories have one data block; inode chunks are
laid out at mkfs time.
"""

from __future__ import annotations

from typing import Any

from reclaimlab.block import REQ_OP_WRITE, Bio, submit_bio
from reclaimlab.fs.inodegc import xfs_inodegc_flush
from reclaimlab.fs.xfs import xfs_buf as xb
from reclaimlab.fs.xfs import xfs_icache as xic  # circular: used at call time only
from reclaimlab.fs.xfs.xfs_log import (
    xfs_trans_alloc, xfs_trans_cancel, xfs_trans_commit, xfs_trans_log_item, xfs_trans_roll,
)
from reclaimlab.fs.xfs.xfs_mount import (
    XFS_AGF, XFS_AGI, xfs_disk_inode, xfs_inode, xfs_mount,
)
from reclaimlab.mm import filemap
from reclaimlab.sim import RwSemaphore, Run, current, down_write, up_write
from reclaimlab.vfs import dcache
from reclaimlab.vfs import inode as vfs_inode
from reclaimlab.vfs.errors import KernelError
from reclaimlab.vfs.fs import S_IFDIR, S_IFREG, S_ISDIR

XFS_ITRUNC_EXTENTS_PER_ROLL = 2
XFS_EXTENT_BLOCKS = 64                  # blocks per modelled data extent

# CPU cost of modelled operations, in ns.
XFS_DIROP_NS = 1_500
XFS_IFREE_NS = 1_500
XFS_BUNMAPI_NS = 1_200                  # per extent freed
XFS_WRITE_BEGIN_NS = 400
XFS_WRITEPAGES_FOLIO_NS = 600


def XFS_M(sb: Any) -> xfs_mount:
    return sb.s_fs_info


def xfs_ilock(ip: xfs_inode):
    """``xfs_ilock(XFS_ILOCK_EXCL)``."""
    if ip.i_lock is None:
        ip.i_lock = RwSemaphore("&xfs_dir_ilock_class" if S_ISDIR(ip.i_mode)
                                else "&xfs_nondir_ilock_class")
    yield from down_write(ip.i_lock)


def xfs_iunlock(ip: xfs_inode) -> None:
    up_write(ip.i_lock)


# ------------------------------------------------------------------ buffers of an inode
def xfs_ino_to_agno(mp: xfs_mount, ino: int) -> int:
    return (ino - 1) // mp.m_inodes_per_ag


def xfs_imap_cluster(mp: xfs_mount, ino: int) -> int:
    """``xfs_imap``: the disk block of ``ino``'s inode cluster buffer."""
    agno = xfs_ino_to_agno(mp, ino)
    index = (ino - 1) % mp.m_inodes_per_ag
    cluster = index // mp.m_inodes_per_cluster
    return mp.m_perag[agno].inode_start + cluster * mp.m_blocks_per_cluster


def xfs_imap_to_bp(mp: xfs_mount, ino: int):
    """``xfs_imap_to_bp``: the inode's cluster buffer, held and read (NOFAIL pages)."""
    bp = yield from xb.xfs_buf_read(mp.m_btp, xfs_imap_cluster(mp, ino), mp.m_blocks_per_cluster)
    if bp is None:
        raise KernelError("EIO", f"reading the inode cluster of {ino}")
    return bp


def xfs_read_agheader(mp: xfs_mount, agno: int, which: int):
    """``xfs_read_agf``/``xfs_read_agi``: the AG header buffer (held)."""
    bp = yield from xb.xfs_buf_read(mp.m_btp, mp.m_perag[agno].first + which, 1)
    if bp is None:
        raise KernelError("EIO", f"reading AG {agno} header {which}")
    return bp


def xfs_trans_log_buf(tp: Any, mp: xfs_mount, bp: Any) -> None:
    """``xfs_trans_log_buf``: the buffer joins the transaction (it keeps its hold while logged)."""
    if bp.li_state is None and bp not in tp.t_items:
        bp.b_hold += 1
    xfs_trans_log_item(tp, bp)
    xb.xfs_buf_relse(mp.m_btp, bp)


def xfs_trans_log_inode(tp: Any, ip: xfs_inode):
    """``xfs_trans_log_inode``: log the inode core; attach its cluster buffer while dirty."""
    mp = XFS_M(ip.i_sb)
    if ip.i_cluster_bp is None:
        ip.i_cluster_bp = yield from xfs_imap_to_bp(mp, ip.i_ino)
    disk = ip.i_disk
    disk.nlink = ip.i_nlink
    disk.size = ip.i_size
    xfs_trans_log_item(tp, ip)


def xfs_iflush_items(mp: xfs_mount, items: list[Any]):
    """``xfs_inode_item_push``/``xfs_buf_item_push``: write inode clusters (``xfs_iflush_cluster``)
    and buffers, each once, then drop the holds dirty inodes had on their cluster buffers."""
    bufs: dict[Any, None] = {}
    for it in items:
        if isinstance(it, xfs_inode):
            if it.i_cluster_bp is not None:
                bufs[it.i_cluster_bp] = None
        else:
            bufs[it] = None
    yield from xb.xfs_buf_write_batch(mp.m_btp, list(bufs))
    for it in items:
        if isinstance(it, xfs_inode):
            xfs_inode_clean(mp, it)
        else:
            xb.xfs_buf_relse(mp.m_btp, it)


def xfs_inode_clean(mp: xfs_mount, ip: xfs_inode) -> None:
    """The inode is on disk: release its cluster buffer (``xfs_iflush_done``)."""
    if ip.li_state is None and ip.i_cluster_bp is not None:
        xb.xfs_buf_relse(mp.m_btp, ip.i_cluster_bp)
        ip.i_cluster_bp = None


# ------------------------------------------------------------------ space
def xfs_alloc_blocks(mp: xfs_mount, tp: Any, agno: int, count: int):
    """``xfs_alloc_vextent``: take ``count`` blocks from an AG (AGF logged); the first block."""
    for i in range(mp.m_agcount):
        pag = mp.m_perag[(agno + i) % mp.m_agcount]
        if pag.pagf_freeblks >= count:
            break
    else:
        raise KernelError("ENOSPC", "no AG has room")
    bp = yield from xfs_read_agheader(mp, pag.pag_agno, XFS_AGF)
    xfs_trans_log_buf(tp, mp, bp)
    pag.pagf_freeblks -= count
    start = pag.next_block
    pag.next_block += count
    if pag.next_block >= pag.first + pag.nblocks:
        pag.next_block = pag.data_start
    return start


def xfs_free_extent(mp: xfs_mount, tp: Any, agno: int, count: int):
    """``xfs_free_extent``: blocks back to the AG (AGF logged) and to ``m_fdblocks``."""
    bp = yield from xfs_read_agheader(mp, agno, XFS_AGF)
    xfs_trans_log_buf(tp, mp, bp)
    mp.m_perag[agno].pagf_freeblks += count
    mp.m_fdblocks += count


def xfs_bmap_del_delalloc(mp: xfs_mount, ip: xfs_inode) -> None:
    """``xfs_bmap_del_extent_delay``: drop the post-EOF delalloc reservation (no AG change)."""
    mp.m_fdblocks += ip.i_eofblocks
    ip.i_eofblocks = 0


# ------------------------------------------------------------------ inode allocation
def xfs_dialloc(tp: Any, mp: xfs_mount, parent_agno: int, mode: int):
    """``xfs_dialloc``: a free inode number near the parent (AGI logged)."""
    if not mp.m_ifree:
        yield from xfs_inodegc_flush(mp.m_inodegc)     # ENOSPC: inactivate, then retry
    for i in range(mp.m_agcount):
        agno = (parent_agno + (1 if S_ISDIR(mode) else 0) + i) % mp.m_agcount
        pag = mp.m_perag[agno]
        if pag.pagi_freecount:
            break
    else:
        raise KernelError("ENOSPC", "no free inodes")
    index = pag.inodes.find(0)
    pag.inodes[index] = 1                      # claimed before sleeping on the AGI read
    pag.pagi_freecount -= 1
    mp.m_ifree -= 1
    bp = yield from xfs_read_agheader(mp, agno, XFS_AGI)
    xfs_trans_log_buf(tp, mp, bp)
    return agno * mp.m_inodes_per_ag + index + 1


def xfs_init_new_inode(tp: Any, dp: xfs_inode, mode: int):
    """``xfs_init_new_inode``: allocate the number, instantiate it through ``xfs_iget``, log it."""
    mp = XFS_M(dp.i_sb)
    ino = yield from xfs_dialloc(tp, mp, dp.i_agno, mode)
    disk = xfs_disk_inode(mode)
    if S_ISDIR(mode):
        disk.dir = {}
        disk.nlink = 2
    mp.m_disk[ino] = disk
    ip = yield from xic.xfs_iget(mp, ino)
    yield from xfs_trans_log_inode(tp, ip)
    return ip


def xfs_ifree(tp: Any, ip: xfs_inode):
    """``xfs_ifree``: clear the inode in the inobt/finobt (AGI logged), log the freed core."""
    mp = XFS_M(ip.i_sb)
    agno = xfs_ino_to_agno(mp, ip.i_ino)
    yield Run(XFS_IFREE_NS)
    bp = yield from xfs_read_agheader(mp, agno, XFS_AGI)
    xfs_trans_log_buf(tp, mp, bp)
    pag = mp.m_perag[agno]
    pag.inodes[(ip.i_ino - 1) % mp.m_inodes_per_ag] = 0
    pag.pagi_freecount += 1
    mp.m_ifree += 1
    yield from xfs_trans_log_inode(tp, ip)
    del mp.m_disk[ip.i_ino]
    ip.i_mode = 0
    vfs_inode.note_inode_blocks_freed(ip)


# ------------------------------------------------------------------ inactivation
def xfs_inode_needs_inactive(ip: xfs_inode) -> bool:
    """``xfs_inode_needs_inactive``: mode 0 (freed) never; unlinked, or post-EOF blocks."""
    if ip.i_mode == 0:
        return False
    return ip.i_nlink == 0 or ip.i_eofblocks > 0


def xfs_inactive(ip: xfs_inode):
    """``xfs_inactive``: see the module docstring."""
    if ip.i_mode == 0:
        return
    if ip.i_nlink:
        if ip.i_eofblocks:
            yield from xfs_free_eofblocks(ip)
        return
    if ip.i_disk.nblocks or ip.i_eofblocks:
        yield from xfs_inactive_truncate(ip)
    yield from xfs_inactive_ifree(ip)


def xfs_free_eofblocks(ip: xfs_inode):
    """``xfs_free_eofblocks``: a ``tr_itruncate`` transaction freeing post-EOF preallocation."""
    mp = XFS_M(ip.i_sb)
    tp = yield from xfs_trans_alloc(mp, "tr_itruncate")
    yield from xfs_ilock(ip)
    try:
        yield Run(XFS_BUNMAPI_NS)
        xfs_bmap_del_delalloc(mp, ip)
        yield from xfs_trans_log_inode(tp, ip)
        yield from xfs_trans_commit(tp)
    except KernelError:
        yield from xfs_trans_cancel(tp)
        raise
    finally:
        xfs_iunlock(ip)


def xfs_inactive_truncate(ip: xfs_inode):
    """``xfs_inactive_truncate`` → ``xfs_itruncate_extents``: unmap every extent, rolling the
    transaction every two extents."""
    mp = XFS_M(ip.i_sb)
    tp = yield from xfs_trans_alloc(mp, "tr_itruncate")
    yield from xfs_ilock(ip)
    try:
        disk = ip.i_disk
        xfs_bmap_del_delalloc(mp, ip)
        nblocks = disk.nblocks
        done = 0
        while nblocks:
            n = min(nblocks, XFS_EXTENT_BLOCKS)
            yield Run(XFS_BUNMAPI_NS)
            yield from xfs_free_extent(mp, tp, ip.i_agno, n)
            nblocks -= n
            done += 1
            if done % XFS_ITRUNC_EXTENTS_PER_ROLL == 0 and nblocks:
                yield from xfs_trans_log_inode(tp, ip)
                yield from xfs_trans_roll(tp)
        disk.nblocks = 0
        ip.i_size = 0
        yield from xfs_trans_log_inode(tp, ip)
        yield from xfs_trans_commit(tp)
    except KernelError:
        yield from xfs_trans_cancel(tp)
        raise
    finally:
        xfs_iunlock(ip)


def xfs_inactive_ifree(ip: xfs_inode):
    """``xfs_inactive_ifree``: a ``tr_ifree`` transaction running ``xfs_ifree``."""
    mp = XFS_M(ip.i_sb)
    tp = yield from xfs_trans_alloc(mp, "tr_ifree")
    yield from xfs_ilock(ip)
    try:
        yield from xfs_ifree(tp, ip)
        yield from xfs_trans_commit(tp)
    except KernelError:
        yield from xfs_trans_cancel(tp)
        raise
    finally:
        xfs_iunlock(ip)


# ------------------------------------------------------------------ namespace
def xfs_dir_block(mp: xfs_mount, dp: xfs_inode):
    """The directory's data block, read (``xfs_dir3_data_read``)."""
    bp = yield from xb.xfs_buf_read(mp.m_btp, dp.i_disk.dir_block, 1)
    if bp is None:
        raise KernelError("EIO", f"reading directory {dp!r}")
    return bp


def xfs_vn_lookup(dp: xfs_inode, dentry: Any):
    """``xfs_vn_lookup`` → ``xfs_lookup``: search the directory, ``xfs_iget`` the inode."""
    mp = XFS_M(dp.i_sb)
    yield Run(XFS_DIROP_NS)
    bp = yield from xfs_dir_block(mp, dp)
    xb.xfs_buf_relse(mp.m_btp, bp)
    ino = dp.i_disk.dir.get(dentry.d_name)
    ip = None
    if ino is not None:
        ip = yield from xic.xfs_iget(mp, ino)
    dcache.d_add(dentry, ip)


def _xfs_dir_modify(tp: Any, mp: xfs_mount, dp: xfs_inode):
    yield Run(XFS_DIROP_NS)
    bp = yield from xfs_dir_block(mp, dp)
    xfs_trans_log_buf(tp, mp, bp)
    yield from xfs_trans_log_inode(tp, dp)


def xfs_create(dp: xfs_inode, dentry: Any, mode: int):
    """``xfs_create``/``xfs_mkdir``: ``tr_create``, new inode, directory entry."""
    mp = XFS_M(dp.i_sb)
    tp = yield from xfs_trans_alloc(mp, "tr_create")
    yield from xfs_ilock(dp)
    try:
        ip = yield from xfs_init_new_inode(tp, dp, mode)
        if S_ISDIR(mode):
            ip.i_disk.dir_block = yield from xfs_alloc_blocks(mp, tp, ip.i_agno, 1)
            mp.m_fdblocks -= 1
            bp = yield from xb.xfs_buf_get(mp.m_btp, ip.i_disk.dir_block, 1)
            bp.b_uptodate = True
            xfs_trans_log_buf(tp, mp, bp)
            vfs_inode.inc_nlink(dp)
        yield from _xfs_dir_modify(tp, mp, dp)
        dp.i_disk.dir[dentry.d_name] = ip.i_ino
        yield from xfs_trans_commit(tp)
    except KernelError:
        yield from xfs_trans_cancel(tp)
        raise
    finally:
        xfs_iunlock(dp)
    dcache.d_instantiate(dentry, ip)


def xfs_vn_create(dp: xfs_inode, dentry: Any, mode: int):
    yield from xfs_create(dp, dentry, S_IFREG | (mode & 0o7777))


def xfs_vn_mkdir(dp: xfs_inode, dentry: Any, mode: int):
    yield from xfs_create(dp, dentry, S_IFDIR | (mode & 0o7777))


def xfs_remove(dp: xfs_inode, dentry: Any):
    """``xfs_remove``: ``tr_remove``, drop the entry and a link; the last link puts the inode on
    the AGI unlinked list (``xfs_iunlink``)."""
    mp = XFS_M(dp.i_sb)
    ip: xfs_inode = dentry.d_inode
    if S_ISDIR(ip.i_mode) and ip.i_disk.dir:
        raise KernelError("ENOTEMPTY", dentry.d_name)
    tp = yield from xfs_trans_alloc(mp, "tr_remove")
    yield from xfs_ilock(dp)
    try:
        yield from _xfs_dir_modify(tp, mp, dp)
        del dp.i_disk.dir[dentry.d_name]
        if S_ISDIR(ip.i_mode):
            vfs_inode.clear_nlink(ip)
            vfs_inode.drop_nlink(dp)
        else:
            vfs_inode.drop_nlink(ip)
        if ip.i_nlink == 0:
            bp = yield from xfs_read_agheader(mp, xfs_ino_to_agno(mp, ip.i_ino), XFS_AGI)
            xfs_trans_log_buf(tp, mp, bp)
        yield from xfs_trans_log_inode(tp, ip)
        yield from xfs_trans_commit(tp)
    except KernelError:
        yield from xfs_trans_cancel(tp)
        raise
    finally:
        xfs_iunlock(dp)


def xfs_rename(odp: xfs_inode, odentry: Any, ndp: xfs_inode, ndentry: Any):
    """``xfs_rename``: ``tr_rename``; an existing target file loses a link."""
    mp = XFS_M(odp.i_sb)
    ip = odentry.d_inode
    target = ndentry.d_inode
    if target is not None and S_ISDIR(target.i_mode) and target.i_disk.dir:
        raise KernelError("ENOTEMPTY", ndentry.d_name)
    tp = yield from xfs_trans_alloc(mp, "tr_rename")
    try:
        yield from _xfs_dir_modify(tp, mp, odp)
        del odp.i_disk.dir[odentry.d_name]
        if ndp is not odp:
            yield from _xfs_dir_modify(tp, mp, ndp)
        if target is not None:
            if S_ISDIR(target.i_mode):
                vfs_inode.clear_nlink(target)
                vfs_inode.drop_nlink(ndp)
            else:
                vfs_inode.drop_nlink(target)
            yield from xfs_trans_log_inode(tp, target)
        ndp.i_disk.dir[ndentry.d_name] = ip.i_ino
        if S_ISDIR(ip.i_mode) and ndp is not odp:
            vfs_inode.drop_nlink(odp)
            vfs_inode.inc_nlink(ndp)
        yield from xfs_trans_commit(tp)
    except KernelError:
        yield from xfs_trans_cancel(tp)
        raise


def xfs_vn_setxattr(dentry: Any, name: str, size: int):
    """``xfs_attr_set``: a ``tr_ichange`` transaction logging the inode (shortform attrs)."""
    ip = dentry.d_inode
    mp = XFS_M(ip.i_sb)
    tp = yield from xfs_trans_alloc(mp, "tr_ichange")
    yield from xfs_ilock(ip)
    try:
        if ip.i_disk.xattrs is None:
            ip.i_disk.xattrs = {}
        ip.i_disk.xattrs[name] = size
        yield from xfs_trans_log_inode(tp, ip)
        yield from xfs_trans_commit(tp)
    except KernelError:
        yield from xfs_trans_cancel(tp)
        raise
    finally:
        xfs_iunlock(ip)


def xfs_vn_getxattr(dentry: Any, name: str):
    """``xfs_attr_get``."""
    xattrs = dentry.d_inode.i_disk.xattrs or {}
    yield Run(XFS_DIROP_NS)
    if name not in xattrs:
        raise KernelError("ENODATA", name)
    return xattrs[name]


# ------------------------------------------------------------------ buffered writes
def xfs_buffered_write_iomap_begin(file: Any, mapping: Any, index: int):
    """``xfs_buffered_write_iomap_begin`` → ``xfs_bmapi_reserve_delalloc``: reserve the folio's
    blocks; growing the file reserves speculative preallocation past EOF
    (``xfs_iomap_prealloc_size``). ``ENOSPC`` when ``m_fdblocks`` runs out."""
    ip: xfs_inode = mapping.host
    mp = XFS_M(ip.i_sb)
    yield Run(XFS_WRITE_BEGIN_NS)
    folio_blocks = max(1, (mp.page_size << mapping.min_order) // mp.m_blocksize)
    end_block = (mapping.folio_index(index) * mp.page_size) // mp.m_blocksize + folio_blocks
    have = ip.i_disk.nblocks + ip.i_delayed
    need = max(0, end_block - have)
    if not need:
        return
    from_prealloc = min(need, ip.i_eofblocks)
    ip.i_eofblocks -= from_prealloc
    need -= from_prealloc
    prealloc = mp.config.speculative_prealloc_blocks if not ip.i_eofblocks else 0
    if mp.m_fdblocks < need + prealloc:
        prealloc = 0
        yield from xfs_inodegc_flush(mp.m_inodegc)     # ENOSPC: finish pending frees, retry
        if mp.m_fdblocks < need:
            ip.i_eofblocks += from_prealloc
            raise KernelError("ENOSPC", f"{ip!r}: no space for delayed allocation")
    mp.m_fdblocks -= need + prealloc
    ip.i_delayed += need + from_prealloc
    ip.i_eofblocks += prealloc


def xfs_vm_writepages(mapping: Any, nr: int):
    """``xfs_vm_writepages`` → ``xfs_bmapi_convert_delalloc``: a ``tr_write`` transaction turns
    the delayed blocks within EOF into real extents (post-EOF preallocation stays delalloc);
    data IO is submitted async."""
    ip: xfs_inode = mapping.host
    mp = XFS_M(ip.i_sb)
    folios = filemap.filemap_dirty_folios(mapping, nr)
    if not folios:
        return 0
    written = []
    if ip.i_delayed:
        tp = yield from xfs_trans_alloc(mp, "tr_write")
        yield from xfs_ilock(ip)
        try:
            start = yield from xfs_alloc_blocks(mp, tp, ip.i_agno, ip.i_delayed)
            ip.i_disk.nblocks += ip.i_delayed
            ip.i_delayed = 0
            yield from xfs_trans_log_inode(tp, ip)
            yield from xfs_trans_commit(tp)
        except KernelError as err:              # the folios stay dirty for a later pass
            yield from xfs_trans_cancel(tp)
            ip.i_sb.s_sim.emit("tracepoint", current(), ip,
                               {"name": "xfs_writepages_error", "errno": err.errno})
            return 0
        finally:
            xfs_iunlock(ip)
    else:
        start = mp.m_perag[ip.i_agno].data_start
    for f in folios:
        if f.writeback:
            yield from filemap.folio_wait_writeback(f)
        if not f.writeback and filemap.folio_clear_dirty_for_io(f):
            filemap.folio_start_writeback(f)
            written.append(f)
            yield Run(XFS_WRITEPAGES_FOLIO_NS)

    def end_io(bio: Bio) -> None:
        for f in written:
            filemap.folio_end_writeback(f)

    if written:
        spb = mp.m_btp.sectors_per_block
        nblocks = max(1, len(written) * ((mp.page_size << mapping.min_order) // mp.m_blocksize))
        yield from submit_bio(Bio(mp.m_btp.bdev, REQ_OP_WRITE, start * spb, nblocks * spb,
                                  end_io=end_io))
    return len(written)
