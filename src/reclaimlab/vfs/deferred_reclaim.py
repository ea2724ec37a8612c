"""Deferred inode reclaim (design ``deferred-reclaim``): Jan Kara, RFC "fs: Deferred inode
reclaim", 29 Apr 2026, ``20260429174850.18223-1-jack@suse.cz``.

The filesystem marks inodes whose reclaim is hard (``inode_needs_inactive``: ext4 — unlinked, or
preallocations to discard; XFS — ``xfs_inode_needs_inactive``). When a task in memory reclaim
(``PF_MEMALLOC``: ``prune_icache_sb`` from the superblock shrinker, or a final ``iput`` from
dcache reclaim) would evict such an inode, the inode — already ``I_FREEING``, still hashed, so
lookups wait for it — goes to the superblock's deferred list instead, and a workqueue runs the
unchanged ``evict()`` there. Once the list holds more than ``deferred_reclaim_list_limit``
inodes, the task adding one is throttled: it sleeps for the measured average deferred-reclaim
time of one inode times ``deferred_reclaim_throttle_factor``, so reclaim cannot outrun the work
it hands off (Dave Chinner's point that blocking in the shrinker is also its throttle,
validation.md L2). Every other eviction stays inline. The RFC's third change — the last ``iput``
no longer dirties an inode for lazytime timestamps — is ``designs.iput_dirties_lazytime``.

Simplified: ``prune_icache_sb`` from ``drop_caches`` (no ``PF_MEMALLOC``) evicts inline.
"""

from __future__ import annotations

from typing import Any

from reclaimlab.sim import JIFFY_NS, current

from . import inode as vfs_inode
from .designs import in_reclaim, inode_needs_inactive
from .evict_queue import evict_queue_add, evict_queue_of


def deferred_reclaim_evict(inode: Any):
    """``evict`` now, or put a hard inode met by reclaim on the deferred list and throttle."""
    if not (in_reclaim() and inode_needs_inactive(inode)):
        yield from vfs_inode.evict(inode)
        return
    sb = inode.i_sb
    cfg = sb.s_sim.vfs.config
    q = evict_queue_of(sb, "deferred_reclaim", cfg.deferred_reclaim_delay_jiffies * JIFFY_NS)
    vfs_inode.note_inode_deferred(inode)
    evict_queue_add(q, inode, vfs_inode.evict)
    if len(q.items) > cfg.deferred_reclaim_list_limit:
        yield from deferred_reclaim_throttle(q, cfg.deferred_reclaim_throttle_factor)


def deferred_reclaim_throttle(q: Any, factor: float):
    """Sleep for ``factor`` times the measured average deferred-reclaim time (nothing before
    the worker has measured one)."""
    ns = int(q.average_ns() * factor)
    if ns <= 0:
        return
    q.sb.s_sim.emit("tracepoint", current(), q, {"name": "deferred_reclaim_throttle",
                                                 "ns": ns, "depth": len(q.items)})
    yield ns
