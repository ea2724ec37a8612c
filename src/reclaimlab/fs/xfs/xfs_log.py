"""An XFS-like log: transactions with log reservations, the CIL, checkpoints, the AIL and xfsaild
(``fs/xfs/xfs_trans.c``, ``xfs_log.c``, ``xfs_log_cil.c``, ``xfs_trans_ail.c``).

- ``xfs_trans_alloc`` allocates the transaction (``GFP_KERNEL|__GFP_NOFAIL``), takes freeze
  protection (``sb_internal``), enters a NOFS scope and reserves log space
  (``xfs_log_reserve`` → ``xlog_grant_head_check``): when the log lacks space it pushes the AIL
  (``xlog_grant_push_ail``) and sleeps until xfsaild has written enough back.
- ``xfs_trans_commit`` moves the logged items into the CIL (they are *pinned*: not writable yet);
  the CIL is checkpointed (``xlog_cil_push_work``: one log write) when it exceeds an eighth of the
  log, on a log force (sync, blocking reclaim), or by the periodic log worker (30 s).
- A checkpoint moves its items to the AIL (unpinned, dirty); xfsaild — a ``PF_MEMALLOC`` kthread —
  writes them back (inode cluster buffers, AG headers) and the log tail moves, returning space.

Simplified: reservations are in blocks (unit = count, no permanent/rolling reservations except
``xfs_trans_roll`` restarting the reservation), an item's log footprint is one block, the log
tail moves per item (no LSN ordering inside a checkpoint).
"""

from __future__ import annotations

from itertools import islice
from typing import Any

from reclaimlab.block import REQ_OP_WRITE, submit_bio_wait
from reclaimlab.mm.gfp import GFP_KERNEL, __GFP_NOFAIL
from reclaimlab.mm.slab import kmem_cache_alloc, kmem_cache_create, kmem_cache_free
from reclaimlab.sim import (
    NSEC_PER_MSEC, NSEC_PER_SEC, PF_MEMALLOC, DelayedWork, Run, WaitQueue, Work,
    alloc_workqueue, current, lock_map_acquire, lock_map_release, memalloc_nofs_restore,
    memalloc_nofs_save, queue_delayed_work, queue_work, wait_event, wake_up,
)
from reclaimlab.vfs.super import sb_end_intwrite, sb_start_intwrite

XFS_TRANS_SIZE = 232                   # sizeof(struct xfs_trans)
XLOG_CIL_SPACE_LIMIT_DIV = 8           # background CIL push at 1/8 of the log
XFS_LOG_WORKER_PERIOD_NS = 30 * NSEC_PER_SEC   # xfs_log_worker (xfssyncd_centisecs = 30 s)
XFSAILD_IDLE_TIMEOUT_NS = 50 * NSEC_PER_MSEC
XFS_AIL_PUSH_BATCH = 100               # items per xfsaild pass before it sleeps (xfsaild_push)

# Reservation sizes in log blocks (order of magnitude of xfs_trans_resv.c for 4 KiB blocks).
M_RES = {"tr_create": 12, "tr_remove": 12, "tr_itruncate": 16, "tr_ifree": 10, "tr_write": 8,
         "tr_ichange": 3, "tr_rename": 20}

# CPU cost of modelled operations, in ns.
XFS_TRANS_ALLOC_NS = 800
XFS_TRANS_COMMIT_NS = 1_200
XFS_CIL_PUSH_NS_PER_ITEM = 300
XFS_AIL_NS_PER_ITEM = 200


class xfs_trans:
    """``struct xfs_trans``: reservation, logged items, the allocation scope to restore."""

    __slots__ = ("t_mountp", "t_log_res", "t_items", "obj", "t_pflags", "t_freeze")

    def __init__(self, mp: Any, res: int, obj: Any) -> None:
        self.t_mountp = mp
        self.t_log_res = res
        self.t_items: dict[Any, None] = {}
        self.obj = obj
        self.t_pflags = 0
        self.t_freeze = False


class xlog:
    """``struct xlog`` + ``struct xfs_cil`` + ``struct xfs_ail``."""

    def __init__(self, sim: Any, mp: Any, size_blocks: int) -> None:
        self.sim = sim
        self.mp = mp
        self.l_logsize = size_blocks
        self.l_reserved = 0                # outstanding transaction reservations
        self.l_used = 0                    # blocks held by items in the CIL and the AIL
        self.l_grant_wait = WaitQueue(f"{mp.name}:xlog_grant_head")
        self.l_head = 0
        self.xc_cil: dict[Any, None] = {}  # pinned items
        self.xc_push_work = Work(xlog_cil_push_work, self)
        self.xc_push_wait = WaitQueue(f"{mp.name}:xc_commit_wait")
        self.xc_push_seq = 0
        self.xc_done_seq = 0
        self.ail: dict[Any, None] = {}     # items to write back, oldest first
        self.ail_target = size_blocks      # xfsaild pushes while l_used > target
        self.ail_wait = WaitQueue(f"{mp.name}:xfsaild")
        self.ail_empty = WaitQueue(f"{mp.name}:xa_empty")
        self.cil_wq = alloc_workqueue(sim, f"xfs-cil/{mp.name}")
        self.log_worker = DelayedWork(xfs_log_worker, self)
        self.trans_cache = _trans_cache(sim)
        self.unmounting = False
        self.aild = sim.kthread_run(xfsaild, f"xfsaild/{mp.name}", self)
        self.stats = {"grant_waits": 0, "checkpoints": 0, "ail_written": 0}
        queue_delayed_work(self.cil_wq, self.log_worker, XFS_LOG_WORKER_PERIOD_NS)

    def free_space(self) -> int:
        return self.l_logsize - self.l_reserved - self.l_used

    def __repr__(self) -> str:
        return f"xlog {self.mp.name}"


def _trans_cache(sim: Any) -> Any:
    cache = sim.__dict__.get("xfs_trans_cache")
    if cache is None:
        cache = sim.xfs_trans_cache = kmem_cache_create(sim, "xfs_trans", XFS_TRANS_SIZE)
    return cache


# ------------------------------------------------------------------ transactions
def xfs_trans_alloc(mp: Any, resv: str, no_writecount: bool = False):
    """``xfs_trans_alloc``: allocate (NOFAIL), freeze protection, NOFS scope, log reservation."""
    log: xlog = mp.m_log
    yield Run(XFS_TRANS_ALLOC_NS)
    obj = yield from kmem_cache_alloc(log.trans_cache, GFP_KERNEL | __GFP_NOFAIL)
    tp = xfs_trans(mp, M_RES[resv], obj)
    if not no_writecount:
        yield from sb_start_intwrite(mp.m_super)
        tp.t_freeze = True
    tp.t_pflags = memalloc_nofs_save()
    current().journal_info = tp
    yield from xfs_log_reserve(log, tp.t_log_res)
    return tp


def xfs_log_reserve(log: xlog, need: int):
    """``xfs_log_reserve`` → ``xlog_grant_head_check``: wait for log space, pushing the AIL."""
    lock_map_acquire(log.mp.m_log_map)
    lock_map_release(log.mp.m_log_map)
    if log.free_space() < need:
        log.stats["grant_waits"] += 1
        log.sim.emit("tracepoint", current(), log, {"name": "xfs_log_grant_sleep", "need": need,
                                                    "free": log.free_space()})
        xlog_grant_push_ail(log, need)
        yield from wait_event(log.l_grant_wait, lambda: log.free_space() >= need)
    log.l_reserved += need


def xlog_grant_push_ail(log: xlog, need: int) -> None:
    """``xlog_grant_push_ail``: push the AIL until a quarter of the log (or ``need``) is free."""
    want_free = max(need, log.l_logsize // 4)
    xfs_ail_push(log, max(0, log.l_logsize - log.l_reserved - want_free))


def xfs_trans_log_item(tp: xfs_trans, item: Any) -> None:
    """``xfs_trans_log_inode`` / ``xfs_trans_log_buf``: the item joins the transaction."""
    tp.t_items[item] = None


def xfs_trans_commit(tp: xfs_trans):
    """``xfs_trans_commit`` → ``xlog_cil_commit``: items pinned into the CIL, the unused
    reservation returned, a background push queued when the CIL is large."""
    log: xlog = tp.t_mountp.m_log
    yield Run(XFS_TRANS_COMMIT_NS)
    xlog_cil_insert_items(log, tp)
    yield from _trans_free(tp)
    if len(log.xc_cil) > log.l_logsize // XLOG_CIL_SPACE_LIMIT_DIV:
        queue_work(log.cil_wq, log.xc_push_work)


def xlog_cil_insert_items(log: xlog, tp: xfs_trans) -> None:
    """``xlog_cil_insert_items``: pin the transaction's items in the CIL. A new item takes a block
    of log space; one relogged from the AIL moves back to the CIL (it stays dirty)."""
    for it in tp.t_items:
        if it.li_state is None:
            log.l_used += 1
        elif it.li_state == "ail":
            del log.ail[it]
        log.xc_cil[it] = None
        it.li_state = "pinned"
    tp.t_items = {}


def xfs_trans_cancel(tp: xfs_trans):
    """``xfs_trans_cancel``: give the reservation back without logging."""
    yield from _trans_free(tp)


def _trans_free(tp: xfs_trans):
    mp = tp.t_mountp
    log: xlog = mp.m_log
    log.l_reserved -= tp.t_log_res
    wake_up(log.l_grant_wait)
    current().journal_info = None
    memalloc_nofs_restore(tp.t_pflags)
    if tp.t_freeze:
        sb_end_intwrite(mp.m_super)
    kmem_cache_free(log.trans_cache, tp.obj)
    yield from ()


def xfs_trans_roll(tp: xfs_trans):
    """``xfs_trans_roll``: commit the items and continue with a fresh reservation."""
    log: xlog = tp.t_mountp.m_log
    yield Run(XFS_TRANS_COMMIT_NS)
    xlog_cil_insert_items(log, tp)
    log.l_reserved -= tp.t_log_res
    wake_up(log.l_grant_wait)
    yield from xfs_log_reserve(log, tp.t_log_res)


# ------------------------------------------------------------------ CIL and log forces
def xlog_cil_push_work(work: Work):
    """``xlog_cil_push_work``: write the CIL as one checkpoint; its items move to the AIL."""
    log: xlog = work.data
    items = list(log.xc_cil)
    log.xc_cil = {}
    seq = log.xc_push_seq = log.xc_push_seq + 1
    if items:
        yield Run(XFS_CIL_PUSH_NS_PER_ITEM * len(items))
        yield from xlog_write(log, len(items) + 1)
        for it in items:
            if it.li_state == "pinned":
                it.li_state = "ail"
                log.ail[it] = None
        log.stats["checkpoints"] += 1
    log.xc_done_seq = max(log.xc_done_seq, seq)
    wake_up(log.xc_push_wait)


def xlog_write(log: xlog, nblocks: int):
    """Write ``nblocks`` at the log head (iclog IO)."""
    mp = log.mp
    spb = mp.m_btp.sectors_per_block
    start = mp.m_logstart + log.l_head
    n = min(nblocks, log.l_logsize - log.l_head)
    yield from submit_bio_wait(mp.m_btp.bdev, REQ_OP_WRITE, start * spb, n * spb)
    log.l_head = (log.l_head + n) % log.l_logsize


def xfs_log_force(mp: Any):
    """``xfs_log_force(XFS_LOG_SYNC)``: checkpoint the CIL now and wait for it."""
    log: xlog = mp.m_log
    queue_work(log.cil_wq, log.xc_push_work)
    target = log.xc_push_seq + 1
    yield from wait_event(log.xc_push_wait, lambda: log.xc_done_seq >= target)


def xfs_log_worker(work: DelayedWork):
    """``xfs_log_worker``: every 30 s force the log and push the whole AIL."""
    log: xlog = work.data
    if log.unmounting:
        return
    yield from xfs_log_force(log.mp)
    xfs_ail_push(log, 0)
    queue_delayed_work(log.cil_wq, log.log_worker, XFS_LOG_WORKER_PERIOD_NS)


# ------------------------------------------------------------------ the AIL
def xfs_ail_push(log: xlog, target: int) -> None:
    """``xfs_ail_push``: ask xfsaild to write back until at most ``target`` blocks are in use."""
    log.ail_target = min(log.ail_target, target)
    wake_up(log.ail_wait)


def xfs_ail_push_all(log: xlog) -> None:
    """``xfs_ail_push_all``."""
    xfs_ail_push(log, 0)


def xfs_ail_push_all_sync(log: xlog):
    """``xfs_ail_push_all_sync``: push everything and wait for the AIL to empty."""
    xfs_ail_push_all(log)
    yield from wait_event(log.ail_empty, lambda: not log.ail)


def xfsaild(log: xlog):
    """``xfsaild``: a ``PF_MEMALLOC`` kthread writing AIL items back in order; each item written
    frees its log space and wakes reservation waiters."""
    task = current()
    task.flags |= PF_MEMALLOC
    while True:
        if log.ail and log.l_used > log.ail_target:
            batch = list(islice(log.ail, XFS_AIL_PUSH_BATCH))
            for it in batch:
                del log.ail[it]
                it.li_state = None
            yield Run(XFS_AIL_NS_PER_ITEM * len(batch))
            yield from log.mp.xfs_iop_push(batch)
            log.l_used -= len(batch)
            log.stats["ail_written"] += len(batch)
            wake_up(log.l_grant_wait)
            if not log.ail:
                wake_up(log.ail_empty)
            continue
        log.ail_target = log.l_logsize
        if log.unmounting and not log.ail:
            wake_up(log.ail_empty)
            return
        yield from wait_event(log.ail_wait, lambda: log.unmounting or
                              (bool(log.ail) and log.l_used > log.ail_target), state="S")
