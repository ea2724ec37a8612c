"""Eviction split at ``->evict_inode``'s non-blocking part: Dave Chinner's ``->evict_inode_async``
(design ``evict-async``) and Chris Mason's split eviction (design ``split-evict``).

Both proposals cut ``evict()`` where the filesystem stops being able to finish without blocking.
The model builds the cut from the parts a filesystem already supplies for inodegc: the
non-blocking part is what ``->evict_inode`` does under inodegc — ``truncate_inode_pages_final``
and ``clear_inode``, which free the page cache (the memory reclaim wants) — and the blocking
rest is ``s_op.inactive`` (ext4: the journal/truncate/bitmap work of ``ext4_evict_inode``; XFS:
``xfs_inactive``). A filesystem without ``->inactive`` (overlayfs) evicts inline.

- ``evict_inode_async`` (Dave Chinner, 8 Apr 2025, ``Z_RZFrlPArdj9d-5@dread.disaster.area``):
  an inode the filesystem marks hard (``inode_needs_inactive``) has its ``->inactive`` punted to
  a workqueue while it stays hashed and ``I_FREEING`` — a lookup of the same inode number sleeps
  in ``__wait_on_freeing_inode`` (kernel-semantics §3 rule 5) — and the worker unhashes and
  destroys it. Any other inode finishes inline (its ``->inactive`` does not block).
- ``split_evict`` (Chris Mason, March 2025): for nlink == 0 only, the page-cache part runs
  inline and the inode is unhashed at once; the disk-space part (``->inactive``: journal,
  bitmaps, freeing the on-disk inode) runs in a worker holding a passive reference
  (``i_obj_count``), which then destroys the inode. nlink > 0 eviction stays inline (``evict``).

Neither proposal has a throttle; the worker's delay is ``evict_async_delay_jiffies`` /
``split_evict_delay_jiffies`` (``VfsConfig``).
"""

from __future__ import annotations

from typing import Any

from reclaimlab.sim import JIFFY_NS, current, wake_up

from . import inode as vfs_inode
from .designs import inode_needs_inactive
from .errors import KernelError
from .evict_queue import evict_queue_add, evict_queue_of


def evict_inode_async(inode: Any):
    """``evict`` with ``->evict_inode_async`` (see the module docstring)."""
    sb = inode.i_sb
    if sb.s_op.inactive is None:
        yield from vfs_inode.evict(inode)
        return
    yield from vfs_inode.evict_begin(inode)
    vfs_inode.truncate_inode_pages_final(inode.i_data)
    vfs_inode.clear_inode(inode)
    if not inode_needs_inactive(inode):
        yield from sb.s_op.inactive(inode)      # nothing left that blocks: finish inline
        yield from vfs_inode.evict_end(inode)
        return
    vfs_inode.note_inode_deferred(inode)
    q = evict_queue_of(sb, "evict_async", sb.s_sim.vfs.config.evict_async_delay_jiffies * JIFFY_NS)
    evict_queue_add(q, inode, evict_async_finish)


def evict_async_finish(inode: Any):
    """The worker: the blocking rest, then unhash (waking ``__wait_on_freeing_inode``) and
    ``destroy_inode``."""
    yield from _inactive(inode)
    yield from vfs_inode.evict_end(inode)


def split_evict(inode: Any):
    """``evict`` under ``split-evict`` (see the module docstring)."""
    sb = inode.i_sb
    if sb.s_op.inactive is None or inode.i_nlink:
        yield from vfs_inode.evict(inode)
        return
    yield from vfs_inode.evict_begin(inode)
    vfs_inode.truncate_inode_pages_final(inode.i_data)
    vfs_inode.clear_inode(inode)
    vfs_inode.remove_inode_hash(inode)
    wake_up(sb.s_sim.vfs.inode_wait)
    vfs_inode.iobj_get(inode)
    vfs_inode.note_inode_deferred(inode)
    q = evict_queue_of(sb, "split_evict", sb.s_sim.vfs.config.split_evict_delay_jiffies * JIFFY_NS)
    evict_queue_add(q, inode, split_evict_finish)


def split_evict_finish(inode: Any):
    """The worker: free the disk space, ``destroy_inode``, drop the passive reference."""
    yield from _inactive(inode)
    yield from vfs_inode.destroy_inode(inode)
    vfs_inode.iobj_put(inode)


def _inactive(inode: Any):
    """``->inactive`` in the worker, reported as the inode's cleanup. An error is logged and
    otherwise ignored, as inodegc does (the inode stays on the filesystem's orphan list)."""
    vfs_inode.note_inode_cleanup(inode, True)
    try:
        yield from inode.i_sb.s_op.inactive(inode)
    except KernelError as err:
        inode.i_sb.s_sim.emit("tracepoint", current(), inode,
                              {"name": "evict_inactive_error", "ino": inode.i_ino,
                               "errno": err.errno})
