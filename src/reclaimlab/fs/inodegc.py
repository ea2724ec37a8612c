"""Background inode inactivation: XFS's inodegc machinery, usable by any filesystem.

Models ``fs/xfs/xfs_icache.c`` (mainline ~6.12): per-CPU lock-free queues (``struct
xfs_inodegc``), a delayed work item per CPU on a per-mount workqueue, the queue-side throttle
(``xfs_inodegc_want_flush_work``: the queuer runs ``flush_delayed_work`` when the shrinker hit this
CPU's queue or the backlog passed ``XFS_INODEGC_MAX_BACKLOG``), the "xfs-inodegc" shrinker that only
kicks the workers (``seeks=0``, count 4096, batch 2049), and the push/flush/stop/start entry points
called from statfs, sync, freeze, ENOSPC and unmount. Kernel-semantics §5.

What the filesystem supplies is the blocking work itself: ``inactivate(ip)`` (a generator,
``xfs_inodegc_inactivate``: ``xfs_inactive`` then ``xfs_inodegc_set_reclaimable``) and
``low_space() -> bool`` (free space below 5%, one of ``xfs_inodegc_want_queue_work``'s reasons).
The XFS-like fs uses it natively; under the ``inodegc`` design the ext4-like fs queues its
``->destroy_inode`` inodes here too.

``ip`` is the filesystem's inode (a VFS ``Inode`` subclass); the lifecycle bits live in
``ip.i_gcflags`` (XFS's ``ip->i_flags``; a separate name so that it cannot clash with the VFS
inode's ``i_flags``). Queueing reports ``inode_deferred`` and the worker ``inode_cleanup`` through
the VFS's ``note_inode_deferred``/``note_inode_cleanup``.

Simplified: the llist is a Python list used as a stack (``llist_del_all`` hands the worker the
newest inode first, as in the kernel); ``smp_mb`` ordering is moot in a single-threaded simulator;
realtime-volume and dquot reasons of ``want_queue_work`` are not modelled (no rt device, no quota).

Configuration: every constant and mechanism toggle is a field of ``InodegcConfig`` with the
kernel's default, set per mount by ``inodegc_<field>`` keys (the scenario's design section or the
mount options; ``inodegc_config``). The throttle exemption covers a queuer in a transaction
(``journal_info``) or a NOFS scope — which of the two a given release checks is [U], both are.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Iterator

from reclaimlab.mm.shrinker import SHRINK_STOP, Shrinker, register_shrinker
from reclaimlab.sim import (
    JIFFY_NS, PF_KSWAPD, PF_MEMALLOC_NOFS, DelayedWork, Run, alloc_workqueue, current,
    flush_delayed_work, flush_workqueue, memalloc_nofs_restore, memalloc_nofs_save,
    mod_delayed_work_on,
)
from reclaimlab.vfs.inode import note_inode_cleanup, note_inode_deferred

# xfs_inode i_flags, lifecycle part (fs/xfs/xfs_inode.h).
XFS_IRECLAIM = 1 << 0
XFS_IRECLAIMABLE = 1 << 2
XFS_INEW = 1 << 3
XFS_NEED_INACTIVE = 1 << 10
XFS_INACTIVATING = 1 << 13
XFS_ALL_IRECLAIM_FLAGS = XFS_IRECLAIMABLE | XFS_IRECLAIM | XFS_NEED_INACTIVE | XFS_INACTIVATING

DEF_PRIORITY = 12
XFS_INODEGC_SHRINKER_COUNT = 1 << DEF_PRIORITY
XFS_INODEGC_SHRINKER_BATCH = XFS_INODEGC_SHRINKER_COUNT // 2 + 1
XFS_INODEGC_MAX_BACKLOG = 4 * 64
LONG_MAX = (1 << 63) - 1

# CPU cost of one xfs_inodegc_queue (llist_add + counters + mod_delayed_work_on), in ns.
INODEGC_QUEUE_NS = 150
# CPU cost of one xfs_inodegc_shrinker_scan walk over the cpumask, in ns.
INODEGC_SCAN_NS = 200


@dataclass
class InodegcConfig:
    """Every constant and mechanism toggle of inodegc, defaulting to the kernel's value."""

    delay_jiffies: int = 1             # 7cf2b0f9611b: 1 jiffy unless want_queue_work
    queue_depth: int = 32              # inodes per cluster buffer: items above this queue now
    max_backlog: int = XFS_INODEGC_MAX_BACKLOG
    low_space_pct: int = 5             # XFS_LOWSP_5_PCNT
    shrinker: bool = True              # register the "xfs-inodegc" shrinker at all
    shrinker_count: int = XFS_INODEGC_SHRINKER_COUNT
    shrinker_batch: int = XFS_INODEGC_SHRINKER_BATCH
    shrinker_throttle: bool = True     # shrinker_hits > 0 makes queuers flush (40b1de007aca)
    backlog_throttle: bool = True      # items > max_backlog makes queuers flush
    nofs_exempt: bool = True           # a queuer inside a transaction / NOFS scope never flushes
    kswapd_exempt: bool = False        # the kernel has no kswapd exemption: kswapd may block here
    worker_nofs: bool = True           # 4da112513c01 (6.2); false: the 5.15-6.1 worker

    def __post_init__(self) -> None:
        for name in ("queue_depth", "max_backlog", "shrinker_count", "shrinker_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"inodegc {name} must be >= 1, got {getattr(self, name)}")
        if self.delay_jiffies < 0:
            raise ValueError(f"inodegc delay_jiffies must be >= 0, got {self.delay_jiffies}")
        if not 0 <= self.low_space_pct <= 100:
            raise ValueError(f"inodegc low_space_pct must be within 0..100, "
                             f"got {self.low_space_pct}")


def inodegc_config(sim: Any, opts: dict) -> InodegcConfig:
    """The inodegc knobs of a mount: ``inodegc_<field>`` keys of the VFS configuration (the
    scenario's design section), overridden by mount options and tunables of the same name."""
    merged = {**getattr(sim.vfs.config, "__dict__", {}), **opts, **opts.get("tunables", {})}
    return InodegcConfig(**{name: merged[f"inodegc_{name}"]
                            for name in InodegcConfig.__dataclass_fields__
                            if f"inodegc_{name}" in merged})


class xfs_inodegc:
    """``struct xfs_inodegc``: one CPU's queue of inodes awaiting inactivation."""

    __slots__ = ("mp", "cpu", "list", "items", "shrinker_hits", "work")

    def __init__(self, mp: "Inodegc", cpu: int) -> None:
        self.mp = mp
        self.cpu = cpu
        self.list: list[Any] = []
        self.items = 0
        self.shrinker_hits = 0
        self.work = DelayedWork(xfs_inodegc_worker, self)


class Inodegc:
    """The inodegc part of ``struct xfs_mount``: per-CPU queues, workqueue, cpumask, shrinker."""

    def __init__(self, sim: Any, name: str, inactivate: Callable[[Any], Iterator],
                 low_space: Callable[[], bool], config: InodegcConfig | None = None) -> None:
        self.sim = sim
        self.name = name
        self.config = config or InodegcConfig()
        self.inactivate = inactivate
        self.low_space = low_space
        self.m_inodegc_wq = alloc_workqueue(sim, f"xfs-inodegc/{name}")
        self.m_inodegc = [xfs_inodegc(self, cpu) for cpu in range(sim.ncpus)]
        self.m_inodegc_cpumask = [False] * sim.ncpus
        self.enabled = True             # XFS_OPSTATE_INODEGC_ENABLED
        self.shrinker: Shrinker | None = None
        if self.config.shrinker:
            self.shrinker = Shrinker(f"xfs-inodegc:{name}",
                                     partial(xfs_inodegc_shrinker_count, self),
                                     partial(xfs_inodegc_shrinker_scan, self), seeks=0,
                                     batch=self.config.shrinker_batch)
            register_shrinker(sim, self.shrinker)

    def nr_queued(self) -> int:
        """Inodes queued on every CPU and not yet taken by a worker."""
        return sum(len(gc.list) for gc in self.m_inodegc)

    def _emit_depth(self) -> None:
        self.sim.emit("queue_depth", current(), self,
                      {"name": "inodegc", "depth": self.nr_queued()})


def xfs_inodegc_want_queue_work(mp: Inodegc, items: int) -> bool:
    """``xfs_inodegc_want_queue_work``: run the worker now rather than after the delay."""
    return items > mp.config.queue_depth or mp.low_space()


def xfs_inodegc_want_flush_work(mp: Inodegc, items: int, shrinker_hits: int) -> bool:
    """``xfs_inodegc_want_flush_work``: make the queuer wait for this CPU's worker.

    A task inside a transaction (``journal_info``) or a NOFS scope is exempt: inactivation may need
    what it holds. kswapd is *not* exempt in the kernel; ``kswapd_exempt`` models the alternative.
    """
    cfg = mp.config
    task = current()
    if cfg.nofs_exempt and (task.journal_info is not None or task.flags & PF_MEMALLOC_NOFS):
        return False
    if cfg.kswapd_exempt and task.flags & PF_KSWAPD:
        return False
    if cfg.shrinker_throttle and shrinker_hits > 0:
        return True
    return cfg.backlog_throttle and items > cfg.max_backlog


def xfs_inodegc_queue(mp: Inodegc, ip: Any):
    """``xfs_inodegc_queue``: set NEED_INACTIVE, push on this CPU's list, arm its worker,
    throttle."""
    task = current()
    yield Run(INODEGC_QUEUE_NS)
    ip.i_gcflags |= XFS_NEED_INACTIVE
    cpu = task.cpu
    gc = mp.m_inodegc[cpu]
    gc.list.append(ip)
    gc.items += 1
    items, shrinker_hits = gc.items, gc.shrinker_hits
    mp.m_inodegc_cpumask[cpu] = True
    sim = mp.sim
    note_inode_deferred(ip)
    mp._emit_depth()
    if not mp.enabled:
        return
    delay = 0 if xfs_inodegc_want_queue_work(mp, items) else mp.config.delay_jiffies * JIFFY_NS
    mod_delayed_work_on(cpu, mp.m_inodegc_wq, gc.work, delay)
    if xfs_inodegc_want_flush_work(mp, items, shrinker_hits):
        sim.emit("tracepoint", task, mp, {"name": "xfs_inodegc_throttle", "items": items,
                                          "shrinker_hits": shrinker_hits})
        yield from flush_delayed_work(gc.work)


def xfs_inodegc_worker(work: DelayedWork):
    """``xfs_inodegc_worker``: take this CPU's whole list and inactivate it in a NOFS scope.

    The scope is 4da112513c01's fix (6.2, Wu Guanghao): before it, ``xfs_trans_alloc``'s
    ``GFP_KERNEL`` allocation could enter reclaim from the worker, reach this filesystem's
    inodes through the superblock shrinker and flush the worker's own work from
    ``xfs_inodegc_queue`` (``worker_nofs = False`` models those kernels)."""
    gc: xfs_inodegc = work.data
    mp = gc.mp
    mp.m_inodegc_cpumask[gc.cpu] = False
    gc.items = 0
    node, gc.list = gc.list, []
    if not node:
        return
    task = current()
    nofs_flag = memalloc_nofs_save() if mp.config.worker_nofs else None
    mp.sim.emit("tracepoint", task, mp, {"name": "xfs_inodegc_worker",
                                         "shrinker_hits": gc.shrinker_hits, "items": len(node)})
    gc.shrinker_hits = 0
    mp._emit_depth()
    for ip in reversed(node):
        ip.i_gcflags |= XFS_INACTIVATING
        note_inode_cleanup(ip, True)
        yield from mp.inactivate(ip)
    if nofs_flag is not None:
        memalloc_nofs_restore(nofs_flag)


def xfs_inodegc_queue_all(mp: Inodegc) -> bool:
    """``xfs_inodegc_queue_all``: kick every CPU worker with a non-empty list; True if any."""
    ret = False
    for cpu, gc in enumerate(mp.m_inodegc):
        if mp.m_inodegc_cpumask[cpu] and gc.list:
            mod_delayed_work_on(cpu, mp.m_inodegc_wq, gc.work, 0)
            ret = True
    return ret


def xfs_inodegc_push(mp: Inodegc) -> None:
    """``xfs_inodegc_push``: start inactivation now, without waiting (statfs since 5.19)."""
    if mp.enabled:
        mp.sim.emit("tracepoint", current(), mp, {"name": "xfs_inodegc_push"})
        xfs_inodegc_queue_all(mp)


def xfs_inodegc_flush(mp: Inodegc):
    """``xfs_inodegc_flush``: push and wait for every queued inactivation (sync, ENOSPC, iget)."""
    xfs_inodegc_push(mp)
    mp.sim.emit("tracepoint", current(), mp, {"name": "xfs_inodegc_flush"})
    yield from flush_workqueue(mp.m_inodegc_wq)


def xfs_inodegc_stop(mp: Inodegc):
    """``xfs_inodegc_stop``: disable queueing-to-workers and drain every list (freeze, unmount)."""
    if not mp.enabled:
        return
    mp.enabled = False
    xfs_inodegc_queue_all(mp)
    while True:
        yield from flush_workqueue(mp.m_inodegc_wq)
        if not xfs_inodegc_queue_all(mp):
            break
    mp.sim.emit("tracepoint", current(), mp, {"name": "xfs_inodegc_stop"})


def xfs_inodegc_start(mp: Inodegc) -> None:
    """``xfs_inodegc_start``: re-enable and run whatever was queued while disabled (thaw)."""
    if mp.enabled:
        return
    mp.enabled = True
    xfs_inodegc_queue_all(mp)
    mp.sim.emit("tracepoint", current(), mp, {"name": "xfs_inodegc_start"})


def xfs_inodegc_shrinker_count(mp: Inodegc, sc: Any) -> int:
    """``xfs_inodegc_shrinker_count``: a fixed 4096 while any CPU list is non-empty."""
    if not mp.enabled:
        return 0
    for cpu, gc in enumerate(mp.m_inodegc):
        if mp.m_inodegc_cpumask[cpu] and gc.list:
            return mp.config.shrinker_count
    return 0


def xfs_inodegc_shrinker_scan(mp: Inodegc, sc: Any):
    """``xfs_inodegc_shrinker_scan``: bump ``shrinker_hits`` and kick non-empty workers now.

    Frees nothing itself; returns ``SHRINK_STOP``, or ``LONG_MAX`` when nothing was queued so the
    caller does not dig deeper into the icache on our account.
    """
    yield Run(INODEGC_SCAN_NS)
    if not mp.enabled:
        return SHRINK_STOP
    mp.sim.emit("tracepoint", current(), mp, {"name": "xfs_inodegc_shrinker_scan",
                                              "nr_to_scan": sc.nr_to_scan})
    no_items = True
    for cpu, gc in enumerate(mp.m_inodegc):
        if mp.m_inodegc_cpumask[cpu] and gc.list:
            gc.shrinker_hits += 1
            mod_delayed_work_on(cpu, mp.m_inodegc_wq, gc.work, 0)
            no_items = False
    return LONG_MAX if no_items else SHRINK_STOP
