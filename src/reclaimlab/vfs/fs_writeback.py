"""Inode writeback (``fs/fs-writeback.c``, mainline ~6.12): dirty inodes, flusher work, sync.

Each superblock has one ``bdi_writeback`` (``sb.s_wb``): the dirty-inode list ``b_dirty`` in
dirtying order and a delayed work item ``wb_workfn`` on the unbound ``writeback`` workqueue (the
flusher threads). The work runs periodically (``dirty_writeback_interval``, 5 s) while inodes are
dirty, writing those dirtied more than ``dirty_expire_interval`` (30 s) ago (kupdate), and at once
when ``wakeup_flusher_threads`` is called (mm's reclaim found dirty folios: write everything).

``__writeback_single_inode``: ``I_SYNC`` set by the caller; ``->writepages`` for dirty pages (and
``filemap_fdatawait`` for data integrity), ``->write_inode`` for dirty metadata;
``inode_sync_complete`` clears ``I_SYNC``, wakes ``inode_wait_for_writeback`` (``evict`` waits
there) and puts a now clean unused inode on the LRU (``inode_add_lru``).

The block device's inode is written like any dirty inode (``wb_workfn`` meets it on the
bdi's ``b_dirty`` list): its page cache (``bd_mapping``: the filesystem's metadata buffers, dirtied
by jbd2 after commit or by non-journalled filesystems) becomes dirty with ``dirtied_when`` at its
first dirty folio, and each superblock's flusher writes the dirty folios of its ``s_bdev``
through ``blkdev_writepages`` when they are expired (kupdate) or on a requested full flush.

Simplified: one writeback context per superblock rather than per backing device; no
``b_io``/``b_more_io`` split (an inode leaves ``b_dirty`` while being written and is requeued if
it was redirtied); no dirty throttling of writers (``balance_dirty_pages``).
"""

from __future__ import annotations

from typing import Any

from reclaimlab.sim import DelayedWork, mod_delayed_work, queue_delayed_work, wait_event, wake_up

from . import inode as vfs_inode
from .fs import (
    I_DIRTY_ALL, I_DIRTY_INODE, I_DIRTY_PAGES, I_DIRTY_SYNC, I_DIRTY_TIME, I_FREEING, I_NEW,
    I_SYNC, I_WILL_FREE, Inode, SuperBlock,
)

WB_SYNC_NONE = 0
WB_SYNC_ALL = 1
LONG_MAX = (1 << 63) - 1


class writeback_control:
    """``struct writeback_control``: ``sync_mode``, ``nr_to_write`` (pages), ``reason``, and
    ``older_than`` (kupdate: only inodes dirtied before this time)."""

    __slots__ = ("sync_mode", "nr_to_write", "reason", "older_than")

    def __init__(self, sync_mode: int = WB_SYNC_NONE, nr_to_write: int = LONG_MAX,
                 reason: str = "sync", older_than: int | None = None) -> None:
        self.sync_mode = sync_mode
        self.nr_to_write = nr_to_write
        self.reason = reason
        self.older_than = older_than


class bdi_writeback:
    """``struct bdi_writeback`` of one superblock."""

    __slots__ = ("sb", "b_dirty", "dwork", "start_all", "written", "registered")

    def __init__(self, sb: SuperBlock) -> None:
        self.sb = sb
        self.b_dirty: dict[Inode, None] = {}
        self.dwork = DelayedWork(wb_workfn, self)
        self.start_all = False
        self.written = 0
        self.registered = True

    def __repr__(self) -> str:
        return f"bdi_writeback {self.sb.s_id}"


def bdi_unregister(sb: SuperBlock) -> None:
    """``bdi_unregister``-like: the flusher stops looking at this superblock."""
    wb = sb.s_wb
    if wb is not None:
        wb.registered = False
        from reclaimlab.sim import cancel_delayed_work
        cancel_delayed_work(wb.dwork)


# ------------------------------------------------------------------ dirtying
def inode_set_dirty(inode: Inode, flags: int) -> None:
    """The list part of ``__mark_inode_dirty``: set the dirty bits; a newly dirty inode gets
    ``dirtied_when`` and goes on ``b_dirty`` (arming the periodic flusher). Plain: usable from the
    page cache's ``dirty_folio`` hook."""
    if inode.i_state & flags == flags:
        return
    was_dirty = inode.i_state & I_DIRTY_ALL
    inode.i_state |= flags
    if inode.i_state & (I_SYNC | I_FREEING | I_WILL_FREE) or was_dirty:
        return
    sb = inode.i_sb
    wb = sb.s_wb
    inode.dirtied_when = sb.s_sim.now
    empty = not wb.b_dirty
    wb.b_dirty[inode] = None
    if empty:
        wb_wakeup_delayed(wb)


def __mark_inode_dirty(inode: Inode, flags: int):
    """``__mark_inode_dirty``: ``->dirty_inode`` for metadata dirtying (ext4 starts a journal
    handle there), then ``inode_set_dirty``."""
    op = inode.i_sb.s_op
    if flags & (I_DIRTY_INODE | I_DIRTY_TIME) and op.dirty_inode:
        yield from op.dirty_inode(inode, flags & (I_DIRTY_INODE | I_DIRTY_TIME))
    inode_set_dirty(inode, flags)


def mark_inode_dirty(inode: Inode):
    """``mark_inode_dirty``."""
    yield from __mark_inode_dirty(inode, I_DIRTY_INODE | I_DIRTY_PAGES)


def mark_inode_dirty_sync(inode: Inode):
    """``mark_inode_dirty_sync``."""
    yield from __mark_inode_dirty(inode, I_DIRTY_SYNC)


def inode_io_list_del(inode: Inode) -> None:
    """``inode_io_list_del``: off the writeback lists (``evict``)."""
    wb = inode.i_sb.s_wb
    if wb is not None:
        wb.b_dirty.pop(inode, None)


# ------------------------------------------------------------------ waiting
def inode_wait_for_writeback(inode: Inode):
    """``inode_wait_for_writeback``: sleep while ``I_SYNC``."""
    if inode.i_state & I_SYNC:
        yield from wait_event(inode.i_sb.s_sim.vfs.inode_wait,
                              lambda: not inode.i_state & I_SYNC)


def inode_sync_complete(inode: Inode) -> None:
    """``inode_sync_complete``: clear ``I_SYNC``, put a clean unused inode on the LRU, wake."""
    inode.i_state &= ~I_SYNC
    vfs_inode.inode_add_lru(inode)
    wake_up(inode.i_sb.s_sim.vfs.inode_wait)


# ------------------------------------------------------------------ writing one inode
def _mapping_dirty(mapping: Any) -> bool:
    return mapping is not None and bool(mapping.dirty)


def __writeback_single_inode(inode: Inode, wbc: writeback_control):
    """``__writeback_single_inode``: data (``->writepages``), then metadata (``->write_inode``).
    The inode must be ``I_SYNC``."""
    from reclaimlab.mm.filemap import filemap_fdatawait

    mapping = inode.i_data
    if inode.i_state & I_DIRTY_PAGES:
        inode.i_state &= ~I_DIRTY_PAGES
        if mapping is not None and mapping.a_ops is not None and mapping.a_ops.writepages:
            written = yield from mapping.a_ops.writepages(mapping, wbc.nr_to_write)
            wbc.nr_to_write -= written
            inode.i_sb.s_wb.written += written
    if wbc.sync_mode == WB_SYNC_ALL and mapping is not None:
        yield from filemap_fdatawait(mapping)
    if _mapping_dirty(mapping):
        inode.i_state |= I_DIRTY_PAGES
    dirty = inode.i_state & (I_DIRTY_INODE | I_DIRTY_TIME)
    inode.i_state &= ~dirty
    op = inode.i_sb.s_op
    if dirty and op.write_inode:
        yield from op.write_inode(inode, wbc)


def _requeue_inode(inode: Inode) -> None:
    """``requeue_inode``: still (or again) dirty ⇒ back on ``b_dirty``."""
    if inode.i_state & I_DIRTY_ALL and not inode.i_state & (I_FREEING | I_WILL_FREE):
        inode.i_sb.s_wb.b_dirty[inode] = None


def writeback_single_inode(inode: Inode, wbc: writeback_control):
    """``writeback_single_inode``: write one inode, waiting out a concurrent writer for
    ``WB_SYNC_ALL`` — which also waits for writeback already in flight on a clean inode."""
    if inode.i_state & I_SYNC:
        if wbc.sync_mode != WB_SYNC_ALL:
            return
        yield from inode_wait_for_writeback(inode)
    mapping = inode.i_data
    under_writeback = mapping is not None and mapping.nr_writeback
    if not inode.i_state & I_DIRTY_ALL and (wbc.sync_mode != WB_SYNC_ALL or not under_writeback):
        return
    inode.i_state |= I_SYNC
    inode_io_list_del(inode)
    yield from __writeback_single_inode(inode, wbc)
    _requeue_inode(inode)
    inode_sync_complete(inode)


def write_inode_now(inode: Inode, sync: bool):
    """``write_inode_now``: write the inode (data and metadata), waiting if ``sync``."""
    wbc = writeback_control(WB_SYNC_ALL if sync else WB_SYNC_NONE, LONG_MAX, "write_inode_now")
    yield from writeback_single_inode(inode, wbc)


# ------------------------------------------------------------------ writing a superblock
def writeback_sb_inodes(sb: SuperBlock, wbc: writeback_control):
    """``writeback_sb_inodes``: write the dirty inodes of ``sb`` oldest first, while
    ``nr_to_write`` lasts. Returns pages written."""
    wb = sb.s_wb
    start = wb.written
    for inode in list(wb.b_dirty):
        if wbc.nr_to_write <= 0:
            break
        if inode not in wb.b_dirty:
            continue
        if wbc.older_than is not None and inode.dirtied_when > wbc.older_than:
            continue
        if inode.i_state & (I_NEW | I_FREEING | I_WILL_FREE):
            continue
        if inode.i_state & I_SYNC:
            if wbc.sync_mode != WB_SYNC_ALL:
                continue
            yield from inode_wait_for_writeback(inode)
            if not inode.i_state & I_DIRTY_ALL or inode.i_state & (I_FREEING | I_WILL_FREE):
                continue
        inode.i_state |= I_SYNC
        del wb.b_dirty[inode]
        yield from __writeback_single_inode(inode, wbc)
        _requeue_inode(inode)
        inode_sync_complete(inode)
    return wb.written - start


def writeback_inodes_sb(sb: SuperBlock):
    """``writeback_inodes_sb``: start writeback of every dirty inode (no data-integrity wait)."""
    yield from writeback_sb_inodes(sb, writeback_control(WB_SYNC_NONE, LONG_MAX, "sync"))


def sync_inodes_sb(sb: SuperBlock):
    """``sync_inodes_sb``: data-integrity writeback of every dirty inode of ``sb``, then
    ``wait_sb_inodes``."""
    yield from writeback_sb_inodes(sb, writeback_control(WB_SYNC_ALL, LONG_MAX, "sync"))
    yield from wait_sb_inodes(sb)


def wait_sb_inodes(sb: SuperBlock):
    """``wait_sb_inodes``: wait for writeback started earlier (by the flusher or a
    ``WB_SYNC_NONE`` pass) on every inode of ``sb`` (the kernel keeps ``s_inodes_wb`` for this;
    we walk the sb list)."""
    from reclaimlab.mm.filemap import filemap_fdatawait

    for inode in list(sb.s_inodes):
        mapping = inode.i_data
        if mapping is not None and mapping.nr_writeback:
            yield from filemap_fdatawait(mapping)


# ------------------------------------------------------------------ the block device inode
def _bdev_mapping(sb: SuperBlock) -> Any:
    """``sb->s_bdev->bd_mapping``: the page cache of the superblock's block device, if any."""
    bdev = sb.s_bdev
    return getattr(bdev, "bd_mapping", None) if bdev is not None else None


def _bdev_dirty(sb: SuperBlock) -> bool:
    mapping = _bdev_mapping(sb)
    return mapping is not None and bool(mapping.dirty)


def bdev_mark_dirty(sim: Any, mapping: Any) -> None:
    """``__mark_inode_dirty(bdev inode, I_DIRTY_PAGES)`` from ``block_dirty_folio``: the first
    dirty folio of a block device's page cache stamps ``dirtied_when`` and arms the flusher of
    every superblock on that device (``wb_wakeup_delayed``). Plain: called from the page
    cache's ``dirty_folio`` hook."""
    if mapping.dirtied_when is not None:
        return
    mapping.dirtied_when = sim.now
    vfs = getattr(sim, "vfs", None)
    for sb in vfs.super_blocks if vfs is not None else ():
        if sb.s_bdev is mapping.host and sb.s_wb is not None:
            wb_wakeup_delayed(sb.s_wb)


def writeback_bdev_inode(sb: SuperBlock, wbc: writeback_control):
    """``__writeback_single_inode`` on the block device's inode: ``blkdev_writepages`` writes
    every dirty metadata folio of ``sb.s_bdev`` if the inode is expired (``older_than``) or the
    flush is a full one. A mapping redirtied while its IO was in flight is stamped anew
    (``redirty_tail``). Returns pages written."""
    mapping = _bdev_mapping(sb)
    if mapping is None or not mapping.dirty or mapping.a_ops is None:
        return 0
    if wbc.older_than is not None and mapping.dirtied_when > wbc.older_than:
        return 0
    written = yield from mapping.a_ops.writepages(mapping, len(mapping.dirty))
    mapping.dirtied_when = sb.s_sim.now if mapping.dirty else None
    sb.s_wb.written += written
    return written


# ------------------------------------------------------------------ the flusher
def wb_wakeup_delayed(wb: bdi_writeback) -> None:
    """``wb_wakeup_delayed``: arm the periodic flush."""
    sim = wb.sb.s_sim
    if wb.registered:
        queue_delayed_work(sim.vfs.bdi_wq, wb.dwork, sim.vfs.config.dirty_writeback_interval_ns)


def wakeup_flusher_threads(sim: Any, reason: str = "vmscan") -> None:
    """``wakeup_flusher_threads``: write back everything now, on every superblock (mm calls this
    through ``sim.pgdat.wakeup_flusher_threads`` when reclaim meets dirty folios)."""
    for sb in sim.vfs.super_blocks:
        wb = sb.s_wb
        if wb.registered and (wb.b_dirty or _bdev_dirty(sb)):
            wb.start_all = True
            mod_delayed_work(sim.vfs.bdi_wq, wb.dwork, 0)


def wb_workfn(work: DelayedWork):
    """``wb_workfn`` → ``wb_do_writeback``: a requested full flush, then the kupdate pass, each
    over the dirty inodes and the block device's inode; re-arm while any stays dirty."""
    wb: bdi_writeback = work.data
    if not wb.registered:
        return
    sb = wb.sb
    sim = sb.s_sim
    while wb.start_all:
        wb.start_all = False
        full = writeback_control(WB_SYNC_NONE, LONG_MAX, "vmscan")
        yield from writeback_sb_inodes(sb, full)
        yield from writeback_bdev_inode(sb, full)
    older = sim.now - sim.vfs.config.dirty_expire_interval_ns
    kupdate = writeback_control(WB_SYNC_NONE, LONG_MAX, "periodic", older_than=older)
    yield from writeback_sb_inodes(sb, kupdate)
    yield from writeback_bdev_inode(sb, kupdate)
    if wb.b_dirty or _bdev_dirty(sb):
        wb_wakeup_delayed(wb)
