"""ext4 inodes: allocation, the inode table, eviction, truncate, the orphan list, delayed
allocation and writeback (``fs/ext4/{super,inode,ialloc,orphan}.c``, mainline ~6.12).

``ext4_evict_inode`` follows the kernel (kernel-semantics §6):

- nlink > 0: truncate the page cache, then ``ext4_clear_inode`` → ``ext4_discard_preallocations``
  → ``ext4_mb_load_buddy_gfp(GFP_NOFS|__GFP_NOFAIL)`` (the W2 path when reclaim evicts);
- nlink == 0: truncate the page cache; ``sb_start_intwrite`` unless already in a handle;
  ``ext4_journal_start``; ``ext4_mark_inode_dirty`` (→ ``__ext4_get_inode_loc`` → ``sb_getblk``,
  NOFAIL: the W1 path); ``ext4_truncate``; ``ext4_orphan_del``; ``ext4_free_inode`` (inode bitmap,
  ``ext4_clear_inode``); stop; ``sb_end_intwrite``. An error (IO on the inode table) leaves the
  inode on the on-disk orphan chain — recoverable at the next mount, not lost.

Under the ``inodegc`` design (``inode_uses_inodegc``) ``->evict_inode`` only truncates the page
cache, ``->destroy_inode`` queues the inode to the generic inodegc workers with a passive
reference, and the worker runs ``ext4_inactive``: the same blocking work, in a kworker.

Simplified: no extent-tree blocks (extents live in the inode), no quota, no inline data, no
fast commit, no dioread_nolock; ``i_disksize`` is ``i_size``.
"""

from __future__ import annotations

from typing import Any

from reclaimlab.block import REQ_OP_WRITE, Bio, submit_bio
from reclaimlab.fs import buffer
from reclaimlab.fs.ext4 import mballoc
from reclaimlab.fs.ext4 import super as ext4_super  # circular: used at call time only
from reclaimlab.fs.ext4.xattr import ext4_try_to_expand_extra_isize, ext4_xattr_delete_inode
from reclaimlab.fs.ext4.ext4 import (
    EXT4_DATA_TRANS_BLOCKS, EXT4_IGET_NS, EXT4_MARK_INODE_DIRTY, EXT4_MAX_TRANS_DATA, EXT4_SB,
    EXT4_STATE_NO_EXPAND, ext4_disk_inode, ext4_error, ext4_getblk_evict,
    ext4_handle_dirty_metadata, ext4_inode_info,
    ext4_journal_ensure_credits, ext4_journal_start_sb, ext4_journal_stop, ext4_sb_info,
)
from reclaimlab.fs.inodegc import xfs_inodegc_flush, xfs_inodegc_queue
from reclaimlab.fs.journal import journal_current_handle
from reclaimlab.mm import filemap
from reclaimlab.mm.gfp import GFP_NOFS
from reclaimlab.mm.slab import kmem_cache_alloc, kmem_cache_free
from reclaimlab.sim import Run, current
from reclaimlab.vfs import inode as vfs_inode
from reclaimlab.vfs.errors import KernelError
from reclaimlab.vfs.fs import O_ACCMODE, O_RDONLY, S_ISDIR, S_ISREG
from reclaimlab.vfs.super import sb_end_intwrite, sb_start_intwrite

# CPU cost of modelled operations, in ns.
EXT4_DA_WRITE_BEGIN_NS = 400          # ext4_da_write_begin: reservation bookkeeping per folio
EXT4_WRITEPAGES_FOLIO_NS = 700        # mpage_prepare_extent_to_map + mapping, per folio
EXT4_TRUNCATE_EXTENT_NS = 1_000       # ext4_ext_remove_space per extent
EXT4_INODE_FREE_NS = 1_000            # ext4_free_inode bookkeeping
WRITEPAGES_BATCH = 64                 # folios mapped under one handle (mpage extent size)


# ------------------------------------------------------------------ in-core inode lifetime
def ext4_alloc_inode(sb: Any):
    """``ext4_alloc_inode``: ``alloc_inode_sb(sb, ext4_inode_cachep, GFP_NOFS)``."""
    sbi = EXT4_SB(sb)
    obj = yield from kmem_cache_alloc(sbi.s_inode_cachep, GFP_NOFS)
    if obj is None:
        return None
    ei = ext4_inode_info()
    ei.i_ext4_slab = obj
    return ei


def ext4_free_in_core_inode(inode: ext4_inode_info) -> None:
    """``ext4_free_in_core_inode`` (``->free_inode``): back to ``ext4_inode_cachep``."""
    if inode.i_prealloc_list:
        raise AssertionError(f"{inode!r} freed with preallocations {inode.i_prealloc_list}")
    kmem_cache_free(EXT4_SB(inode.i_sb).s_inode_cachep, inode.i_ext4_slab)


def ext4_inode_needs_inactive(ei: ext4_inode_info) -> bool:
    """Whether eviction left blocking work (the ``xfs_inode_needs_inactive`` test for ext4):
    an unlinked inode to delete, or preallocations to discard."""
    return ei.i_nlink == 0 or bool(ei.i_prealloc_list)


def ext4_destroy_inode(inode: ext4_inode_info):
    """``ext4_destroy_inode``; under inodegc, queue the blocking cleanup with a passive reference
    (the object stays allocated until the worker's ``iobj_put``)."""
    if vfs_inode.inode_uses_inodegc(inode) and ext4_inode_needs_inactive(inode):
        vfs_inode.iobj_get(inode)
        yield from xfs_inodegc_queue(EXT4_SB(inode.i_sb).s_inodegc, inode)


def ext4_inodegc_inactivate(inode: ext4_inode_info):
    """The inodegc worker's callback for ext4: ``ext4_inactive``, then the passive reference
    goes."""
    yield from ext4_inactive(inode)
    inode.i_gcflags = 0
    vfs_inode.iobj_put(inode)


# ------------------------------------------------------------------ the inode table
def ext4_inode_loc(sbi: ext4_sb_info, ino: int) -> tuple[int, int]:
    """(group, inode-table block) of inode ``ino``."""
    group, index = divmod(ino - 1, sbi.s_inodes_per_group)
    return group, sbi.s_groups[group].inode_table + index // sbi.s_inodes_per_block


def __ext4_get_inode_loc(sbi: ext4_sb_info, ino: int, in_mem: bool = False):
    """``__ext4_get_inode_loc``: the inode-table buffer (``sb_getblk``, NOFAIL), read unless
    ``in_mem`` and no other inode in the block is in use (then it is initialised in memory)."""
    group, block = ext4_inode_loc(sbi, ino)
    bh = yield from ext4_getblk_evict(sbi, block)
    if buffer.buffer_uptodate(bh):
        return bh
    if in_mem and _itable_block_unused(sbi, group, ino):
        buffer.set_buffer_uptodate(bh)
        return bh
    return (yield from buffer.__bread_slow(bh))


def _itable_block_unused(sbi: ext4_sb_info, group: int, ino: int) -> bool:
    ipb = sbi.s_inodes_per_block
    index = (ino - 1) % sbi.s_inodes_per_group
    start = index - index % ipb
    bitmap = sbi.s_groups[group].inodes
    return not any(bitmap[i] for i in range(start, start + ipb) if i != index)


def ext4_mark_inode_dirty(handle: Any, inode: ext4_inode_info):
    """``__ext4_mark_inode_dirty``: ``ext4_reserve_inode_write`` (inode-table buffer + write
    access), expand the extra isize if wanted (``ext4_try_to_expand_extra_isize``: takes
    ``xattr_sem`` by *trylock*), copy the inode into the buffer (``ext4_mark_iloc_dirty``)."""
    sbi = EXT4_SB(inode.i_sb)
    bh = yield from __ext4_get_inode_loc(sbi, inode.i_ino)
    if bh is None:
        raise KernelError("EIO", f"reading the inode table block of {inode!r}")
    yield from ext4_handle_dirty_metadata(handle, bh)
    disk = inode.i_disk
    if disk.extra_isize < sbi.s_want_extra_isize and not inode.i_state_flags & EXT4_STATE_NO_EXPAND:
        yield from ext4_try_to_expand_extra_isize(handle, inode)
    yield EXT4_MARK_INODE_DIRTY
    ext4_update_inode_fsync_trans(handle, inode)
    disk.nlink = inode.i_nlink
    disk.size = inode.i_size
    buffer.brelse(bh)


def ext4_update_inode_fsync_trans(handle: Any, inode: ext4_inode_info) -> None:
    """``ext4_update_inode_fsync_trans`` (from ``ext4_do_update_inode``): remember the
    transaction that logged the inode, the one an ``fsync`` must see committed. Simplified: one
    tid for fsync and fdatasync (no ``i_datasync_tid``)."""
    inode.i_sync_tid = handle.h_transaction.t_tid


def ext4_iget(sb: Any, ino: int):
    """``ext4_iget``: the cached inode or one read from the inode table; ``ENOENT`` for a free
    or deleted inode, ``EIO`` when the read fails."""
    sbi = EXT4_SB(sb)
    inode = yield from vfs_inode.iget_locked(sb, ino)
    if inode is None:
        raise KernelError("ENOMEM", f"ext4_iget({ino})")
    if not inode.i_state & vfs_inode.I_NEW:
        return inode
    disk = sbi.s_disk.get(ino)
    bh = yield from __ext4_get_inode_loc(sbi, ino)
    if bh is None or disk is None or disk.nlink == 0:
        buffer.brelse(bh)
        yield from vfs_inode.iget_failed(inode)
        raise KernelError("EIO" if bh is None else "ENOENT", f"ext4_iget({ino})")
    yield Run(EXT4_IGET_NS)
    buffer.brelse(bh)
    ext4_set_inode_from_disk(sbi, inode, disk)
    vfs_inode.unlock_new_inode(inode)
    return inode


def ext4_set_inode_from_disk(sbi: ext4_sb_info, inode: ext4_inode_info,
                             disk: ext4_disk_inode) -> None:
    """Fill the in-core inode from its on-disk copy and attach the operation tables."""
    inode.i_disk = disk
    inode.i_mode = disk.mode
    inode.i_nlink = disk.nlink
    inode.i_size = disk.size
    inode.i_blocks = sum(e[2] for e in disk.extents) * (sbi.s_blocksize // 512)
    inode.i_block_group = (inode.i_ino - 1) // sbi.s_inodes_per_group
    ext4_super.ext4_set_ops(inode)


# ------------------------------------------------------------------ inode allocation
def ext4_read_inode_bitmap(sbi: ext4_sb_info, group: int):
    """``ext4_read_inode_bitmap``: the group's inode bitmap buffer (NOFAIL getblk, read)."""
    bh = yield from ext4_getblk_evict(sbi, sbi.s_groups[group].inode_bitmap)
    if not buffer.buffer_uptodate(bh):
        bh = yield from buffer.__bread_slow(bh)
    return bh


def find_inode_group(sbi: ext4_sb_info, parent: ext4_inode_info, mode: int) -> int | None:
    """``find_group_orlov`` (directories spread round-robin) / ``find_group_other`` (files near
    their parent)."""
    n = sbi.s_groups_count
    if S_ISDIR(mode):
        start = sbi.s_next_dir_group
        sbi.s_next_dir_group = (start + 1) % n
    else:
        start = parent.i_block_group
    for i in range(n):
        g = (start + i) % n
        if sbi.s_groups[g].free_inodes:
            return g
    return None


def ext4_new_inode(handle: Any, dir: ext4_inode_info, mode: int):
    """``__ext4_new_inode``: pick a group, set a bit in its inode bitmap under the handle, hash
    the new inode (``insert_inode_locked``) and write it to the inode table. ``ENOSPC`` when no
    inode is free."""
    sb = dir.i_sb
    sbi = EXT4_SB(sb)
    inode = yield from vfs_inode.new_inode(sb)
    if inode is None:
        raise KernelError("ENOMEM", "ext4_new_inode")
    while True:
        group = find_inode_group(sbi, dir, mode)
        if group is None and sbi.s_inodegc is not None:
            yield from xfs_inodegc_flush(sbi.s_inodegc)  # ENOSPC: finish deferred frees
            group = find_inode_group(sbi, dir, mode)
        if group is None:
            yield from vfs_inode.iput(inode)
            raise KernelError("ENOSPC", "no free inodes")
        bh = yield from ext4_read_inode_bitmap(sbi, group)
        grp = sbi.s_groups[group]
        bit = grp.inodes.find(0)
        if bit >= 0:
            break
        buffer.brelse(bh)                                # raced with another allocator
    grp.inodes[bit] = 1
    grp.free_inodes -= 1
    sbi.s_freeinodes -= 1
    if S_ISDIR(mode):
        grp.used_dirs += 1
    yield from ext4_handle_dirty_metadata(handle, bh)
    yield from mballoc.ext4_dirty_group_meta(handle, sbi, group, bh)
    buffer.brelse(bh)
    ino = group * sbi.s_inodes_per_group + bit + 1
    disk = ext4_disk_inode(mode, sbi.s_want_extra_isize)
    if S_ISDIR(mode):
        disk.dir = {}
        disk.nlink = 2
    sbi.s_disk[ino] = disk
    inode.i_ino = ino
    ext4_set_inode_from_disk(sbi, inode, disk)
    yield from vfs_inode.insert_inode_locked(inode)
    bh = yield from __ext4_get_inode_loc(sbi, ino, in_mem=True)
    buffer.brelse(bh)
    yield from ext4_mark_inode_dirty(handle, inode)
    return inode


def ext4_free_inode(handle: Any, inode: ext4_inode_info, vfs_clear: bool = True):
    """``ext4_free_inode``: ``ext4_clear_inode`` first, then clear the inode-bitmap bit under the
    handle; the inode number and its blocks are free again."""
    sbi = EXT4_SB(inode.i_sb)
    yield from ext4_clear_inode(inode, vfs_clear)
    group = (inode.i_ino - 1) // sbi.s_inodes_per_group
    try:
        bh = yield from ext4_read_inode_bitmap(sbi, group)
    except KernelError as err:                      # error_return: ext4_std_error
        ext4_error(inode.i_sb, inode.i_ino, f"ext4_free_inode: couldn't free inode "
                   f"({err.errno})")
        return
    yield from ext4_handle_dirty_metadata(handle, bh)
    yield from mballoc.ext4_dirty_group_meta(handle, sbi, group, bh)
    buffer.brelse(bh)
    yield Run(EXT4_INODE_FREE_NS)
    grp = sbi.s_groups[group]
    grp.inodes[(inode.i_ino - 1) % sbi.s_inodes_per_group] = 0
    grp.free_inodes += 1
    sbi.s_freeinodes += 1
    if S_ISDIR(inode.i_mode):
        grp.used_dirs -= 1
    del sbi.s_disk[inode.i_ino]
    vfs_inode.note_inode_blocks_freed(inode)


def ext4_clear_inode(inode: ext4_inode_info, vfs_clear: bool = True):
    """``ext4_clear_inode``: ``clear_inode`` and ``ext4_discard_preallocations`` (NOFAIL buddy
    loads). Under inodegc the VFS part already ran in ``->evict_inode``."""
    if vfs_clear:
        vfs_inode.clear_inode(inode)
    if S_ISREG(inode.i_mode):
        yield from mballoc.ext4_discard_preallocations(EXT4_SB(inode.i_sb), inode)
    _drop_reservations(inode)


def _drop_reservations(inode: ext4_inode_info) -> None:
    """Release delalloc reservations of folios that were never written (page cache truncated)."""
    if inode.i_reserved:
        EXT4_SB(inode.i_sb).s_dirtyclusters -= len(inode.i_reserved)
        inode.i_reserved = None


# ------------------------------------------------------------------ orphan list
def ext4_orphan_add(handle: Any, inode: ext4_inode_info):
    """``ext4_orphan_add``: link the inode into the superblock's orphan chain (the superblock
    buffer and the inode are journalled), so a crash leaves it to be freed at the next mount."""
    sbi = EXT4_SB(inode.i_sb)
    if inode.i_ino in sbi.s_orphan:
        return
    bh = yield from buffer.sb_bread(sbi.s_bdev, 0)
    yield from ext4_handle_dirty_metadata(handle, bh)
    buffer.brelse(bh)
    sbi.s_orphan[inode.i_ino] = None
    inode.i_disk.orphan = True
    yield from ext4_mark_inode_dirty(handle, inode)


def ext4_orphan_del(handle: Any | None, inode: ext4_inode_info):
    """``ext4_orphan_del``: unlink from the orphan chain. With no handle (an error path) only the
    in-memory list is updated: the on-disk chain keeps the inode for recovery."""
    sbi = EXT4_SB(inode.i_sb)
    sbi.s_orphan.pop(inode.i_ino, None)
    if handle is None or inode.i_disk is None:
        return
    bh = yield from buffer.sb_bread(sbi.s_bdev, 0)
    yield from ext4_handle_dirty_metadata(handle, bh)
    buffer.brelse(bh)
    inode.i_disk.orphan = False


# ------------------------------------------------------------------ truncate
def ext4_blocks_for_truncate(inode: ext4_inode_info) -> int:
    """``ext4_blocks_for_truncate``: credits a truncate may need."""
    needed = inode.i_blocks // (EXT4_SB(inode.i_sb).s_blocksize // 512)
    return EXT4_DATA_TRANS_BLOCKS + min(max(needed, 2), EXT4_MAX_TRANS_DATA)


def ext4_truncate(handle: Any, inode: ext4_inode_info):
    """``ext4_truncate`` → ``ext4_ext_truncate``: free every extent, a handle restart when the
    credits run out; directory blocks are metadata (revoked)."""
    sbi = EXT4_SB(inode.i_sb)
    disk = inode.i_disk
    metadata = S_ISDIR(inode.i_mode)
    while disk.extents:
        lblk, pblk, length = disk.extents[-1]
        yield from ext4_journal_ensure_credits(handle, 4 + (length if metadata else 0))
        yield Run(EXT4_TRUNCATE_EXTENT_NS)
        yield from mballoc.ext4_free_blocks(handle, sbi, pblk, length, metadata=metadata)
        disk.extents.pop()
        inode.i_blocks -= length * (sbi.s_blocksize // 512)
    inode.i_size = 0
    yield from ext4_mark_inode_dirty(handle, inode)


# ------------------------------------------------------------------ eviction
def ext4_evict_inode(inode: ext4_inode_info):
    """``ext4_evict_inode`` (see the module docstring)."""
    if vfs_inode.inode_uses_inodegc(inode):
        vfs_inode.truncate_inode_pages_final(inode.i_data)
        vfs_inode.clear_inode(inode)
        return
    if inode.i_nlink:
        vfs_inode.truncate_inode_pages_final(inode.i_data)
        yield from ext4_clear_inode(inode)
        return
    vfs_inode.truncate_inode_pages_final(inode.i_data)
    yield from ext4_delete_inode(inode, vfs_clear=True)


def ext4_inactive(inode: ext4_inode_info):
    """``->inactive`` for the inodegc design: the blocking half of ``ext4_evict_inode``."""
    if inode.i_nlink:
        yield from ext4_clear_inode(inode, vfs_clear=False)
    else:
        yield from ext4_delete_inode(inode, vfs_clear=False)


def ext4_delete_inode(inode: ext4_inode_info, vfs_clear: bool):
    """The nlink == 0 body of ``ext4_evict_inode``: freeze protection, a handle, mark dirty,
    truncate, orphan removal, free the inode; errors leave it on the on-disk orphan chain."""
    sb = inode.i_sb
    freeze_protected = journal_current_handle() is None
    if freeze_protected:
        yield from sb_start_intwrite(sb)
    credits = ext4_blocks_for_truncate(inode) + 6 - 3
    try:
        handle = yield from ext4_journal_start_sb(sb, credits)
    except KernelError as err:                      # ext4_std_error, then no_delete
        ext4_error(sb, inode.i_ino, f"ext4_evict_inode: couldn't delete inode ({err.errno})")
        yield from ext4_orphan_del(None, inode)
        if freeze_protected:
            sb_end_intwrite(sb)
        yield from ext4_clear_inode(inode, vfs_clear)
        return
    try:
        yield from ext4_mark_inode_dirty(handle, inode)
        if inode.i_disk.extents:
            yield from ext4_truncate(handle, inode)
        yield from ext4_xattr_delete_inode(handle, inode)
    except KernelError as err:
        sb.s_sim.emit("tracepoint", current(), inode,
                      {"name": "ext4_evict_inode_error", "ino": inode.i_ino, "errno": err.errno})
        ext4_error(sb, inode.i_ino, f"ext4_evict_inode: couldn't delete inode ({err.errno})")
        yield from ext4_journal_stop(handle)
        yield from ext4_orphan_del(None, inode)
        if freeze_protected:
            sb_end_intwrite(sb)
        yield from ext4_clear_inode(inode, vfs_clear)
        return
    yield from ext4_orphan_del(handle, inode)
    inode.i_disk.dtime = sb.s_sim.now
    yield from ext4_mark_inode_dirty(handle, inode)
    yield from ext4_free_inode(handle, inode, vfs_clear)
    yield from ext4_journal_stop(handle)
    if freeze_protected:
        sb_end_intwrite(sb)


# ------------------------------------------------------------------ delayed allocation
def folio_first_lblk(sbi: ext4_sb_info, index: int) -> int:
    return index * sbi.page_size // sbi.s_blocksize


def ext4_map_lookup(disk: ext4_disk_inode, lblk: int) -> int | None:
    """``ext4_map_blocks`` lookup half: the physical block of ``lblk``, or None (a hole)."""
    for start, pblk, length in disk.extents:
        if start <= lblk < start + length:
            return pblk + lblk - start
    return None


def ext4_da_write_begin(file: Any, mapping: Any, index: int):
    """``ext4_da_write_begin`` → ``ext4_da_reserve_space``: reserve the blocks behind a folio
    about to be dirtied; ``ENOSPC`` if free space minus reservations runs out."""
    inode = mapping.host
    sbi = EXT4_SB(inode.i_sb)
    yield Run(EXT4_DA_WRITE_BEGIN_NS)
    per_folio = max(1, (sbi.page_size << mapping.min_order) // sbi.s_blocksize)
    first = folio_first_lblk(sbi, mapping.folio_index(index))
    for lblk in range(first, first + per_folio):
        reserved = inode.i_reserved
        if reserved and lblk in reserved or ext4_map_lookup(inode.i_disk, lblk) is not None:
            continue
        if sbi.s_freeclusters - sbi.s_dirtyclusters <= 0 and sbi.s_inodegc is not None:
            yield from xfs_inodegc_flush(sbi.s_inodegc)   # ENOSPC: finish deferred frees
        if sbi.s_freeclusters - sbi.s_dirtyclusters <= 0:
            raise KernelError("ENOSPC", f"{inode!r}: no space for delayed allocation")
        if inode.i_reserved is None:
            inode.i_reserved = {}
        inode.i_reserved[lblk] = None
        sbi.s_dirtyclusters += 1


def ext4_writepages(mapping: Any, nr: int):
    """``ext4_writepages`` (``ext4_do_writepages``): for batches of dirty folios, start a handle,
    allocate their delayed blocks (``ext4_map_blocks`` → ``ext4_mb_new_blocks``, preallocation),
    mark the inode dirty, stop, and submit the data IO. An allocation error (ENOMEM from a
    buddy load, EIO) ends the pass with the unmapped folio dirty again, as
    ``mpage_release_unused_pages(invalidate=false)``. Returns the folios written."""
    inode = mapping.host
    sb = inode.i_sb
    sbi = EXT4_SB(sb)
    per_folio = _blocks_per_folio(sbi, mapping)
    folios = filemap.filemap_dirty_folios(mapping, nr)
    written = 0
    for i in range(0, len(folios), WRITEPAGES_BATCH):
        for f in folios[i:i + WRITEPAGES_BATCH]:       # mpage_prepare_extent_to_map
            if f.writeback:
                yield from filemap.folio_wait_writeback(f)
        try:
            handle = yield from ext4_journal_start_sb(sb, EXT4_DATA_TRANS_BLOCKS)
        except KernelError:                             # read-only: the folios stay dirty
            break
        runs: list[tuple[int, int, list[Any]]] = []     # (first block, blocks, folios)
        pending = None
        error = None
        try:
            for f in folios[i:i + WRITEPAGES_BATCH]:
                # Clean and under writeback at once (the kernel holds the folio lock meanwhile):
                # neither reclaim nor invalidation may take it while its blocks are mapped.
                if f.writeback or not filemap.folio_clear_dirty_for_io(f):
                    continue
                filemap.folio_start_writeback(f)
                pending = f
                yield Run(EXT4_WRITEPAGES_FOLIO_NS)
                pblk = yield from ext4_map_folio(handle, sbi, inode, f)
                pending = None
                if runs and runs[-1][0] + runs[-1][1] == pblk:
                    runs[-1] = (runs[-1][0], runs[-1][1] + per_folio, runs[-1][2] + [f])
                else:
                    runs.append((pblk, per_folio, [f]))
            yield from ext4_mark_inode_dirty(handle, inode)
        except KernelError as err:
            error = err
            if pending is not None:
                filemap.folio_end_writeback(pending)
                filemap.folio_mark_dirty(pending)
        finally:
            yield from ext4_journal_stop(handle)
        for start, nblocks, fs in runs:
            yield from ext4_io_submit(sbi, start, nblocks, fs)
            written += len(fs)
        if error is not None:
            sb.s_sim.emit("tracepoint", current(), inode, {"name": "ext4_writepages_result",
                                                           "ino": inode.i_ino,
                                                           "errno": error.errno})
            break
    return written


def _blocks_per_folio(sbi: ext4_sb_info, mapping: Any) -> int:
    return max(1, (sbi.page_size << mapping.min_order) // sbi.s_blocksize)


def ext4_map_folio(handle: Any, sbi: ext4_sb_info, inode: ext4_inode_info, f: Any):
    """Map (allocating delayed blocks) every block behind folio ``f``; returns the first one."""
    first_lblk = folio_first_lblk(sbi, f.index)
    first_pblk = None
    for lblk in range(first_lblk, first_lblk + _blocks_per_folio(sbi, f.mapping)):
        pblk = ext4_map_lookup(inode.i_disk, lblk)
        if pblk is None:
            yield from ext4_journal_ensure_credits(handle, 4)
            pblk = yield from mballoc.ext4_mb_new_blocks(handle, sbi, inode, lblk,
                                                         inode.i_block_group)
            if pblk is None:
                raise KernelError("ENOSPC", f"{inode!r}: writeback allocation failed")
            ext4_ext_insert(inode, lblk, pblk)
            if inode.i_reserved and inode.i_reserved.pop(lblk, 0) is None:
                sbi.s_dirtyclusters -= 1
        if first_pblk is None:
            first_pblk = pblk
    return first_pblk


def ext4_ext_insert(inode: ext4_inode_info, lblk: int, pblk: int) -> None:
    """``ext4_ext_insert_extent`` for one block: merge with the last extent when contiguous."""
    ext = inode.i_disk.extents
    if ext and ext[-1][0] + ext[-1][2] == lblk and ext[-1][1] + ext[-1][2] == pblk:
        ext[-1][2] += 1
    else:
        ext.append([lblk, pblk, 1])
        ext.sort()
    inode.i_blocks += EXT4_SB(inode.i_sb).s_blocksize // 512


def ext4_io_submit(sbi: ext4_sb_info, start: int, nblocks: int, folios: list[Any]):
    """``ext4_io_submit``: one write bio for a contiguous run; completion ends writeback."""
    def end_io(bio: Bio) -> None:
        for f in folios:
            if bio.bi_status:
                filemap.folio_mark_dirty(f)
            filemap.folio_end_writeback(f)

    spb = sbi.s_bdev.sectors_per_block
    yield from submit_bio(Bio(sbi.s_bdev.bdev, REQ_OP_WRITE, start * spb, nblocks * spb,
                              end_io=end_io))


def ext4_release_file(inode: ext4_inode_info, file: Any):
    """``ext4_release_file``: the last writer's close discards the inode's preallocations,
    unless delayed blocks are still reserved (writeback will allocate them from the PA)."""
    writer = file.f_flags & O_ACCMODE != O_RDONLY
    if writer and inode.i_writecount == 1 and S_ISREG(inode.i_mode) and not inode.i_reserved:
        yield from mballoc.ext4_discard_preallocations(EXT4_SB(inode.i_sb), inode)
