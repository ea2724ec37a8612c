"""The eviction design switch (simulator machinery around ``evict``).

``resolve_design(vfs_design, fs_type)`` fixes, per superblock at mount time, which design applies:
``native`` → the filesystem type's ``native_design``, every other design (``vfs.designs``) as
named. The VFS consults it in exactly one place, ``evict_or_defer``, called by
``iput_final`` and ``dispose_list`` (so it covers the final iput from dcache reclaim and the inode
shrinker alike); filesystems consult it through ``inode_uses_inodegc``.

``passive-ref`` (Dave Chinner's "passive reference" on Josef Bacik's ``i_obj_count`` rework,
kernel-semantics §4): the releasing task takes a passive reference, leaves the inode
``I_FREEING`` and queues it to its superblock's worker, which runs the unchanged ``evict()`` —
the filesystem's ``->evict_inode`` may block there. The inode stays hashed until that ``evict``
unhashes it, so a lookup of the same inode number sleeps in ``__wait_on_freeing_inode`` instead of
instantiating a second copy (Dave's ``->evict_inode_async`` rule, §3 rule 5). The queuer is
throttled while more than ``passive_ref_max_backlog`` inodes are queued, except in reclaim
(``PF_MEMALLOC``, configurable), inside a filesystem transaction (``journal_info`` or a
``PF_MEMALLOC_NOFS`` scope, as XFS's exemption) and in the worker itself. ``sync_filesystem``
and unmount flush the queue.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from reclaimlab.sim import (
    PF_MEMALLOC, PF_MEMALLOC_NOFS, WaitQueue, Work, current, queue_work, wait_event, wake_up,
)

from . import deferred_reclaim, designs, evict_async
from . import inode as vfs_inode
from .fs import FileSystemType, Inode, SuperBlock


def resolve_design(vfs_design: str, fs_type: FileSystemType) -> str:
    """The design a superblock of ``fs_type`` uses under the global switch ``vfs_design``."""
    if vfs_design == "native":
        return fs_type.native_design
    return vfs_design


class PassiveRefWait(WaitQueue):
    """The throttle/flush wait queue; its "holder" is the worker draining the queue, so the
    deadlock detector sees who a throttled task waits for."""

    __slots__ = ("queue",)

    def __init__(self, queue: "PassiveRefQueue") -> None:
        super().__init__(f"{queue.sb.s_id}:passive_ref")
        self.queue = queue

    def holders(self) -> list:
        worker = self.queue.worker
        return [worker] if worker is not None else []


class PassiveRefQueue:
    """Per-superblock deferred-eviction queue: FIFO of ``I_FREEING`` inodes, one work item."""

    __slots__ = ("sb", "inodes", "work", "wait", "worker")

    def __init__(self, sb: SuperBlock) -> None:
        self.sb = sb
        self.inodes: deque[Inode] = deque()
        self.work = Work(passive_ref_evict_worker, self)
        self.wait = PassiveRefWait(self)
        self.worker: Any = None

    def __repr__(self) -> str:
        return f"passive_ref queue {self.sb.s_id}"


def evict_or_defer(inode: Inode):
    """The switch: ``evict`` now (sync, inodegc, skip-unlinked), queue it with a passive
    reference (passive-ref), or hand it to the design's own eviction (``vfs.designs``)."""
    design = inode.i_sb.s_evict_design
    if design == "passive-ref":
        yield from passive_ref_evict_queue(inode)
    elif design == "evict-async":
        yield from evict_async.evict_inode_async(inode)
    elif design == "split-evict":
        yield from evict_async.split_evict(inode)
    elif design == "deferred-reclaim":
        yield from deferred_reclaim.deferred_reclaim_evict(inode)
    elif design == "nofail-drop":
        yield from designs.evict_nofail_drop(inode, vfs_inode.evict)
    else:
        yield from vfs_inode.evict(inode)


def _emit_depth(q: PassiveRefQueue) -> None:
    sim = q.sb.s_sim
    sim.emit("queue_depth", current(), q, {"name": "passive_ref", "sb": q.sb.s_id,
                                            "depth": len(q.inodes)})


def passive_ref_evict_queue(inode: Inode):
    """Queue ``inode``'s eviction to its superblock's worker, holding a passive reference; then
    throttle the queuer while the backlog is above ``passive_ref_max_backlog``."""
    sb = inode.i_sb
    q: PassiveRefQueue = sb.s_evict
    vfs_inode.iobj_get(inode)
    q.inodes.append(inode)
    vfs_inode.note_inode_deferred(inode)
    _emit_depth(q)
    queue_work(sb.s_sim.vfs.evict_wq, q.work)
    cfg = sb.s_sim.vfs.config
    if cfg.passive_ref_throttle and len(q.inodes) > cfg.passive_ref_max_backlog \
            and not _throttle_exempt(q, cfg):
        limit = cfg.passive_ref_max_backlog
        yield from wait_event(q.wait, lambda: len(q.inodes) <= limit)


def _throttle_exempt(q: PassiveRefQueue, cfg: Any) -> bool:
    task = current()
    if task is q.worker or task.journal_info is not None or task.flags & PF_MEMALLOC_NOFS:
        return True
    return bool(task.flags & PF_MEMALLOC) and cfg.passive_ref_exempt_reclaim


def passive_ref_evict_worker(work: Work):
    """The per-superblock worker: ``evict`` each queued inode (the filesystem's blocking cleanup
    runs here, without ``PF_MEMALLOC``), then drop the passive reference."""
    q: PassiveRefQueue = work.data
    if q.worker is not None:
        return  # another worker is draining this queue and will see our inodes
    q.worker = current()
    while q.inodes:
        inode = q.inodes.popleft()
        _emit_depth(q)
        wake_up(q.wait)
        yield from vfs_inode.evict(inode)
        vfs_inode.iobj_put(inode)
    q.worker = None
    wake_up(q.wait)


def evict_deferred_flush(sb: SuperBlock):
    """Wait until every inode queued on ``sb`` has been evicted (sync, unmount), by the
    passive-ref worker or another design's deferred-eviction queue (``vfs.evict_queue``)."""
    from .evict_queue import evict_queue_flush

    q: PassiveRefQueue | None = sb.s_evict
    if q is not None:
        yield from wait_event(q.wait, lambda: not q.inodes and q.worker is None)
    yield from evict_queue_flush(sb)
