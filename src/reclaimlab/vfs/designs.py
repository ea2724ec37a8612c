"""The registry of eviction designs, and the design predicates the VFS and filesystems consult.

Every value of the design switch (``sim.vfs.design``, ``--design``, ``[design] name``) is one
``EvictDesign`` here: its one-line summary, its source on the mailing lists and the mechanism the
model implements. ``reclaimlab list``, the scenario validation and ``VfsConfig`` read
``DESIGN_NAMES``; nothing else keeps a list of designs.

The designs proposed in the 2025–2026 linux-fsdevel/linux-mm threads around the seed change the
kernel at a few places, and the model consults a predicate at exactly those places:

- the eviction switch ``evict_designs.evict_or_defer`` (``iput_final``, ``dispose_list``):
  ``evict-async`` and ``split-evict`` (``vfs.evict_async``), ``deferred-reclaim``
  (``vfs.deferred_reclaim``), ``nofail-drop`` (the ``evict_nofail_drop`` scope below);
- ``inode_lru_isolate``: ``lru_isolate_skip`` (``skip-unlinked``);
- ``iput``: ``iput_dirties_lazytime`` (``deferred-reclaim``);
- the filesystem's eviction-path allocations: ``evict_gfp`` (``nofail-drop``).

``inode_needs_inactive`` is the filesystem's mark "evicting this inode is hard" (its
``s_op.needs_inactive``: ext4 — unlinked, or block preallocations to discard; XFS —
``xfs_inode_needs_inactive``), which several designs key on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reclaimlab.mm.gfp import __GFP_NOFAIL
from reclaimlab.sim import PF_MEMALLOC, current


@dataclass(frozen=True)
class EvictDesign:
    """One value of the design switch."""

    name: str
    summary: str          # one line, for ``reclaimlab list``
    source: str           # author, date, message id (or "kernel" for what Linux does today)
    mechanism: str        # what the model changes, in a few sentences


EVICT_DESIGNS: dict[str, EvictDesign] = {d.name: d for d in (
    EvictDesign(
        "native", "each filesystem as the kernel has it: ext4-like inline, XFS-like inodegc",
        "mainline ~6.12",
        "ext4-like superblocks use `sync`, XFS-like superblocks `inodegc`."),
    EvictDesign(
        "sync", "every filesystem evicts inline at the final iput, also in reclaim",
        "mainline ext4 (fs/inode.c evict)",
        "`evict()` calls the filesystem's `->evict_inode` in whichever task drops the last "
        "reference, including kswapd and direct reclaim."),
    EvictDesign(
        "inodegc", "blocking inactivation deferred to per-CPU background workers, throttled",
        "XFS, Darrick Wong / Dave Chinner, 5.15 (ab23a7768739)",
        "`->evict_inode` only truncates the page cache; `->destroy_inode` queues the inode to "
        "per-CPU inodegc workers that run `->inactive`; queuers are throttled by backlog and "
        "shrinker hits."),
    EvictDesign(
        "passive-ref", "the VFS keeps a passive reference and runs the final evict in a worker",
        "Dave Chinner on Josef Bacik's i_obj_count rework, 2025",
        "the releaser takes a passive reference and queues the whole unchanged `evict()` to a "
        "per-superblock worker; the inode stays hashed and I_FREEING; queuers are throttled "
        "above a backlog except in reclaim."),
    EvictDesign(
        "evict-async", "->evict_inode_async: finish inline if non-blocking, else punt to a worker",
        "Dave Chinner, 8 Apr 2025, Z_RZFrlPArdj9d-5@dread.disaster.area",
        "the non-blocking part of eviction (page-cache truncate, clear_inode) runs inline; an "
        "inode the filesystem marks hard (`->needs_inactive`) has the blocking rest "
        "(`->inactive`) punted to a workqueue while it stays hashed and I_FREEING, so lookups "
        "wait in `__wait_on_freeing_inode`; the worker unhashes and destroys it."),
    EvictDesign(
        "deferred-reclaim", "hard inodes met by reclaim go to a deferred list; adders throttled",
        "Jan Kara, RFC 'fs: Deferred inode reclaim', 29 Apr 2026, "
        "20260429174850.18223-1-jack@suse.cz",
        "inodes the filesystem marks hard, evicted by a task in reclaim (`prune_icache_sb`, a "
        "final iput under PF_MEMALLOC), are put I_FREEING on a per-superblock deferred list that "
        "a workqueue evicts; above a list limit an adder sleeps for the measured average "
        "deferred-reclaim time times a factor; the last iput no longer dirties lazytime "
        "timestamps."),
    EvictDesign(
        "skip-unlinked", "inode_lru_isolate skips costly inodes when the caller is in reclaim",
        "Ted Ts'o, linux-fsdevel, March 2025",
        "`inode_lru_isolate` leaves an inode the filesystem marks hard on the LRU when the "
        "caller has PF_MEMALLOC; every other path (the dentry -> iput path of overlayfs "
        "included) still evicts inline."),
    EvictDesign(
        "split-evict", "unlinked inodes: page cache freed inline, disk-space freeing deferred",
        "Chris Mason, linux-fsdevel, March 2025",
        "for nlink == 0 the page-cache truncate runs inline and the inode is unhashed; the "
        "disk-space part (journal, bitmaps, freeing the inode: `->inactive`) runs in a worker "
        "holding a passive reference; nlink > 0 eviction stays inline."),
    EvictDesign(
        "nofail-drop", "drop __GFP_NOFAIL in the eviction path under PF_MEMALLOC; errors stay",
        "ext4 patch proposal, September 2025, after syzbot fd3f70a4509fca8c265d",
        "eviction stays inline; while a task with PF_MEMALLOC evicts, the filesystem's "
        "buffer-cache and buddy allocations lose __GFP_NOFAIL; a failure takes ext4's error "
        "path (`ext4_error`: errors=remount-ro makes the fs read-only; a failed delete leaves "
        "the inode on the orphan list)."),
)}

DESIGN_NAMES: tuple[str, ...] = tuple(EVICT_DESIGNS)


# ------------------------------------------------------------------ predicates
def inode_needs_inactive(inode: Any) -> bool:
    """The filesystem's mark that evicting ``inode`` is hard (blocking, allocating, journalled):
    ``s_op.needs_inactive`` when the filesystem has one, else "unlinked"."""
    needs = inode.i_sb.s_op.needs_inactive
    return needs(inode) if needs is not None else inode.i_nlink == 0


def in_reclaim() -> bool:
    """The current task is memory reclaim (``PF_MEMALLOC``: kswapd, direct reclaim)."""
    task = current()
    return task is not None and bool(task.flags & PF_MEMALLOC)


def lru_isolate_skip(inode: Any) -> bool:
    """``skip-unlinked`` (Ted Ts'o): ``inode_lru_isolate`` skips an inode whose eviction would
    be costly while the caller is in reclaim."""
    return (inode.i_sb.s_evict_design == "skip-unlinked" and in_reclaim()
            and inode_needs_inactive(inode))


def iput_dirties_lazytime(inode: Any) -> bool:
    """Whether the last ``iput`` marks ``I_DIRTY_TIME`` timestamps dirty (kernel-semantics §3
    rule 1); ``deferred-reclaim`` (Jan Kara) leaves them to writeback."""
    return inode.i_sb.s_evict_design != "deferred-reclaim"


def evict_nofail_drop(inode: Any, evict: Any):
    """``nofail-drop``: run ``evict(inode)`` (a generator function) with the eviction-path
    ``__GFP_NOFAIL`` dropped if the task is in reclaim (see ``evict_gfp``)."""
    vfs = inode.i_sb.s_sim.vfs
    pid = current().pid
    vfs.nofail_drop_depth[pid] = vfs.nofail_drop_depth.get(pid, 0) + 1
    try:
        yield from evict(inode)
    finally:
        vfs.nofail_drop_depth[pid] -= 1
        if not vfs.nofail_drop_depth[pid]:
            del vfs.nofail_drop_depth[pid]


def evict_gfp(gfp: int) -> int:
    """The mask a filesystem uses for an allocation that is ``__GFP_NOFAIL`` in the kernel
    (buffer-cache ``__getblk``, ext4's buddy loads): unchanged, except inside a ``nofail-drop``
    eviction by a task with ``PF_MEMALLOC`` — then the allocation may fail and the caller takes
    its error path."""
    task = current()
    if task is None or not task.sim.vfs.nofail_drop_depth.get(task.pid) or \
            not task.flags & PF_MEMALLOC:
        return gfp
    return gfp & ~__GFP_NOFAIL


__all__ = ["EvictDesign", "EVICT_DESIGNS", "DESIGN_NAMES", "inode_needs_inactive", "in_reclaim",
           "lru_isolate_skip", "iput_dirties_lazytime", "evict_nofail_drop", "evict_gfp"]
