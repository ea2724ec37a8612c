"""Page reclaim (``mm/vmscan.c``): kswapd, direct reclaim, LRU scanning, reclaim throttling.

kswapd is a kthread (``PF_MEMALLOC|PF_KSWAPD``) woken below the low watermark; ``balance_pgdat``
reclaims with ``GFP_KERNEL`` at priority 12 → 1 until the zone is above high for the requested
order, holding the ``fs_reclaim`` lockdep map; a run that reclaims nothing counts a
``kswapd_failure``, and after ``MAX_RECLAIM_RETRIES`` the node is left to direct reclaim.
Direct reclaim (``try_to_free_pages``) is first throttled on ``pfmemalloc_wait``, then scans at
priority 12 → 0 until ``SWAP_CLUSTER_MAX`` pages are reclaimed. ``shrink_node`` scans the LRU
lists and then calls the shrinkers (``shrink_slab``).

LRU policy: clean inactive file folios are freed; dirty ones are never written by reclaim (the
2025 behaviour: ``PG_reclaim`` is set, the folio is activated, the flushers are woken and write
it; when its writeback ends it rotates to the inactive tail); folios under writeback are kept.
Anonymous folios are scanned only when swap has room; they are swapped out (the frame is freed,
no swap IO is modelled) unless referenced, which earns a second chance on the active list.

Simplified: no memcg, no MGLRU, no proportional scan adjustment (scanning stops when the target
is met), no ``may_writepage``/``pageout``, kswapd's short premature sleep is not modelled.
"""

from __future__ import annotations

import math

from reclaimlab.sim import (
    JIFFY_NS, NSEC_PER_SEC, PF_KSWAPD, PF_KTHREAD, PF_MEMALLOC, Run, cond_resched, current,
    lock_map_acquire, lock_map_release, wait_event, wake_up,
)

from . import page_alloc
from .gfp import GFP_KERNEL, __GFP_FS, current_gfp_context
from .mm_types import (
    LRU_ACTIVE_ANON, LRU_ACTIVE_FILE, LRU_INACTIVE_ANON, LRU_INACTIVE_FILE, PG_active, PG_anon,
    PG_dirty, PG_reclaim, PG_referenced, PG_writeback,
)
from .shrinker import shrink_slab
from .swap import lru_tail, lruvec_add_folio, lruvec_del_folio

DEF_PRIORITY = 12
SWAP_CLUSTER_MAX = 32

# enum vmscan_throttle_state
VMSCAN_THROTTLE_WRITEBACK = 0
VMSCAN_THROTTLE_ISOLATED = 1
VMSCAN_THROTTLE_NOPROGRESS = 2
VMSCAN_THROTTLE_CONGESTED = 3
THROTTLE_NAMES = ("writeback", "isolated", "noprogress", "congested")
THROTTLE_TIMEOUT_NS = (NSEC_PER_SEC // 10, NSEC_PER_SEC // 50, JIFFY_NS, JIFFY_NS)

PGDAT_WRITEBACK = 1 << 0

# CPU cost per folio taken off an inactive list and processed by shrink_folio_list (rmap walk,
# flags, __remove_mapping, free; assumption: 0.5 us) and per folio deactivated.
SHRINK_FOLIO_NS = 500
DEACTIVATE_FOLIO_NS = 100


class reclaim_state:
    """``struct reclaim_state``: pages freed outside the LRU scan (slab) during reclaim."""

    __slots__ = ("reclaimed",)

    def __init__(self) -> None:
        self.reclaimed = 0


class scan_control:
    """``struct scan_control``: one reclaim invocation's parameters and tallies."""

    def __init__(self, gfp_mask: int, order: int, nr_to_reclaim: int,
                 priority: int = DEF_PRIORITY) -> None:
        self.gfp_mask = gfp_mask
        self.order = order
        self.nr_to_reclaim = nr_to_reclaim
        self.priority = priority
        self.nr_scanned = 0
        self.nr_reclaimed = 0
        self.compaction_ready = False
        self.reclaim_state = reclaim_state()
        # sc->nr: tallies of the last shrink_node pass
        self.nr_taken = 0
        self.nr_dirty = 0
        self.nr_unqueued_dirty = 0
        self.nr_writeback = 0
        self.nr_immediate = 0

    def __repr__(self) -> str:
        return f"scan_control(order={self.order}, priority={self.priority})"


def current_is_kswapd() -> bool:
    return bool(current().flags & PF_KSWAPD)


# ------------------------------------------------------------------------ LRU scanning
def inactive_is_low(pgdat, inactive_lru: int) -> bool:
    """``inactive_is_low``: inactive × sqrt(10 × GB) < active."""
    inactive = pgdat.nr_lru[inactive_lru]
    active = pgdat.nr_lru[inactive_lru + 1]
    gb = (inactive + active) * pgdat.page_size >> 30
    ratio = math.isqrt(10 * gb) if gb else 1
    return inactive * ratio < active


def shrink_active_list(pgdat, nr_to_scan: int, sc: scan_control, lru: int):
    """``shrink_active_list``: move folios from the active tail to the inactive head, clearing
    ``PG_referenced`` (unmapped page cache is never kept active by references)."""
    mm = pgdat.mem_map
    moved = 0
    while moved < nr_to_scan:
        pfn = lru_tail(pgdat, lru)
        if pfn < 0:
            break
        lruvec_del_folio(pgdat, pfn)
        mm.flags[pfn] &= ~(PG_active | PG_referenced)
        lruvec_add_folio(pgdat, pfn)
        moved += 1
    if moved:
        yield Run(DEACTIVATE_FOLIO_NS * moved)


def shrink_inactive_list(pgdat, nr_to_scan: int, sc: scan_control, lru: int):
    """``shrink_inactive_list`` + ``shrink_folio_list`` for up to ``nr_to_scan`` tail folios.

    File: private data the owner will not release (``filemap_release_folio``) → activate;
    writeback → keep (kswapd seeing a ``PG_reclaim`` folio again while the node is
    flagged ``PGDAT_WRITEBACK`` counts it "immediate", which throttles kswapd), dirty → set
    ``PG_reclaim`` and activate, clean → ``__remove_mapping`` and free. If every folio taken was
    dirty and not queued for IO, wake the flushers. Returns pages reclaimed."""
    from . import anon, filemap
    mm = pgdat.mem_map
    flags_a, order_a, owner_a = mm.flags, mm.order, mm.owner
    kswapd = current_is_kswapd()
    taken = reclaimed = unqueued_dirty = 0
    for _ in range(nr_to_scan):
        pfn = lru_tail(pgdat, lru)
        if pfn < 0:
            break
        flags = flags_a[pfn]
        nr = 1 << order_a[pfn]
        taken += nr
        lruvec_del_folio(pgdat, pfn)
        if flags & PG_anon:
            if flags & PG_referenced or pgdat.nr_swap_pages < nr:
                flags_a[pfn] = (flags & ~PG_referenced) | PG_active
                lruvec_add_folio(pgdat, pfn)
            else:
                anon.swap_out_folio(pgdat.owners[owner_a[pfn]], pfn)
                reclaimed += nr
            continue
        if flags & PG_writeback:
            if kswapd and flags & PG_reclaim and pgdat.pgdat_flags & PGDAT_WRITEBACK:
                sc.nr_immediate += nr
            sc.nr_writeback += nr
            flags_a[pfn] = flags | PG_reclaim | PG_active
            lruvec_add_folio(pgdat, pfn)
        elif flags & PG_dirty:
            sc.nr_dirty += nr
            unqueued_dirty += nr
            flags_a[pfn] = flags | PG_reclaim | PG_active
            lruvec_add_folio(pgdat, pfn)
        else:
            mapping = pgdat.owners[owner_a[pfn]]
            if filemap.filemap_release_folio(mapping, mm.index[pfn]):
                filemap.__remove_mapping(mapping, pfn)
                reclaimed += nr
            else:
                flags_a[pfn] = flags | PG_active
                lruvec_add_folio(pgdat, pfn)
    sc.nr_taken += taken
    sc.nr_unqueued_dirty += unqueued_dirty
    sc.nr_scanned += taken
    pgdat.stats.pgscan += taken
    pgdat.stats.pgsteal += reclaimed
    if taken:
        yield Run(SHRINK_FOLIO_NS * taken)
    if unqueued_dirty and unqueued_dirty == taken:
        pgdat.wakeup_flusher_threads()
    return reclaimed


def get_scan_count(pgdat, sc: scan_control) -> list[int]:
    """``get_scan_count``: ``lru_size >> priority`` per list; anon only when swap has room."""
    nr = [0, 0, 0, 0]
    can_anon = pgdat.nr_swap_pages > 0
    for lru in range(4):
        if lru in (LRU_INACTIVE_ANON, LRU_ACTIVE_ANON) and not can_anon:
            continue
        nr[lru] = pgdat.nr_lru[lru] >> sc.priority
    return nr


def shrink_lruvec(pgdat, sc: scan_control):
    """``shrink_lruvec``: scan the lists in ``SWAP_CLUSTER_MAX`` chunks until the targets are
    scanned or enough is reclaimed; active lists are aged only when the inactive one is low."""
    nr = get_scan_count(pgdat, sc)
    reclaimed = 0
    while nr[LRU_INACTIVE_ANON] or nr[LRU_ACTIVE_FILE] or nr[LRU_INACTIVE_FILE]:
        for lru in range(4):
            if not nr[lru]:
                continue
            n = min(nr[lru], SWAP_CLUSTER_MAX)
            nr[lru] -= n
            if lru in (LRU_ACTIVE_ANON, LRU_ACTIVE_FILE):
                if inactive_is_low(pgdat, lru - 1):
                    yield from shrink_active_list(pgdat, n, sc, lru)
            else:
                reclaimed += yield from shrink_inactive_list(pgdat, n, sc, lru)
        if reclaimed >= sc.nr_to_reclaim:
            break
    if pgdat.nr_swap_pages > 0 and inactive_is_low(pgdat, LRU_INACTIVE_ANON):
        yield from shrink_active_list(pgdat, SWAP_CLUSTER_MAX, sc, LRU_ACTIVE_ANON)
    sc.nr_reclaimed += reclaimed


def shrink_node(pgdat, sc: scan_control):
    """``shrink_node``: LRU reclaim then ``shrink_slab``; pages freed by shrinkers (through
    ``reclaim_state``) count too. kswapd flags the node ``PGDAT_WRITEBACK`` when everything it
    took was under writeback and throttles on "immediate" folios. Progress resets
    ``kswapd_failures``."""
    before = sc.nr_reclaimed
    sc.nr_taken = sc.nr_dirty = sc.nr_unqueued_dirty = sc.nr_writeback = sc.nr_immediate = 0
    yield from shrink_lruvec(pgdat, sc)
    rs = sc.reclaim_state
    rs.reclaimed = 0
    yield from shrink_slab(pgdat, sc.gfp_mask, sc.priority)
    sc.nr_reclaimed += rs.reclaimed
    rs.reclaimed = 0
    if current_is_kswapd():
        if sc.nr_writeback and sc.nr_writeback == sc.nr_taken:
            pgdat.pgdat_flags |= PGDAT_WRITEBACK
        if sc.nr_immediate:
            yield from reclaim_throttle(pgdat, VMSCAN_THROTTLE_WRITEBACK)
    if sc.nr_reclaimed > before:
        pgdat.kswapd_failures = 0


def reclaim_throttle(pgdat, reason: int):
    """``reclaim_throttle``: sleep on ``reclaim_wait[reason]`` until woken or the timeout
    (writeback: HZ/10; isolated: HZ/50; no progress / congested: one jiffy). Kthreads other
    than kswapd are not throttled (they may be the ones making progress)."""
    task = current()
    if not task.flags & PF_KSWAPD and task.flags & PF_KTHREAD:
        yield from cond_resched()
        return
    if reason == VMSCAN_THROTTLE_WRITEBACK:
        pgdat.nr_writeback_throttled += 1
        if pgdat.nr_writeback_throttled == 1:
            pgdat.nr_reclaim_start = pgdat.nr_throttled_written
    seq = pgdat.reclaim_wake_seq[reason]
    yield from wait_event(pgdat.reclaim_wait[reason],
                          lambda: pgdat.reclaim_wake_seq[reason] != seq,
                          THROTTLE_TIMEOUT_NS[reason])
    if reason == VMSCAN_THROTTLE_WRITEBACK:
        pgdat.nr_writeback_throttled -= 1


def wake_reclaim_throttled(pgdat, reason: int) -> None:
    pgdat.reclaim_wake_seq[reason] += 1
    wake_up(pgdat.reclaim_wait[reason])


def __acct_reclaim_writeback(pgdat, nr_pages: int) -> None:
    """``acct_reclaim_writeback``: completed writeback wakes writeback-throttled reclaimers once
    more than ``SWAP_CLUSTER_MAX`` pages per throttled task have been written."""
    if not pgdat.nr_writeback_throttled:
        return
    pgdat.nr_throttled_written += nr_pages
    written = pgdat.nr_throttled_written - pgdat.nr_reclaim_start
    if written > SWAP_CLUSTER_MAX * pgdat.nr_writeback_throttled:
        wake_reclaim_throttled(pgdat, VMSCAN_THROTTLE_WRITEBACK)


def consider_reclaim_throttle(pgdat, sc: scan_control):
    """``consider_reclaim_throttle``: > 12% efficiency wakes NOPROGRESS-throttled tasks; a
    direct reclaimer with no progress at priority 1 throttles for a jiffy."""
    if sc.nr_reclaimed > sc.nr_scanned >> 3:
        if pgdat.reclaim_wait[VMSCAN_THROTTLE_NOPROGRESS].waiters:
            wake_reclaim_throttled(pgdat, VMSCAN_THROTTLE_NOPROGRESS)
        return
    if current_is_kswapd():
        return
    if sc.priority == 1 and not sc.nr_reclaimed:
        yield from reclaim_throttle(pgdat, VMSCAN_THROTTLE_NOPROGRESS)


# ------------------------------------------------------------------------ direct reclaim
def allow_direct_reclaim(pgdat) -> bool:
    """``allow_direct_reclaim``: free pages above half the sum of min watermarks (or the node
    is hopeless); otherwise wake kswapd."""
    if pgdat.kswapd_failures >= page_alloc.MAX_RECLAIM_RETRIES:
        return True
    z = pgdat.zone
    reserve = z.watermark[page_alloc.WMARK_MIN]
    if reserve == 0:
        return True
    ok = z.free_pages > reserve // 2
    if not ok:
        _wake_kswapd_now(pgdat)
    return ok


def throttle_direct_reclaim(pgdat, gfp: int):
    """``throttle_direct_reclaim``: kthreads are exempt; below half the min watermarks wait on
    ``pfmemalloc_wait`` for kswapd — at most 1 s without ``__GFP_FS``, else until it clears."""
    task = current()
    if task.flags & PF_KTHREAD or task.oom_killed:
        return False
    if allow_direct_reclaim(pgdat):
        return False
    if gfp & __GFP_FS:      # wait_event_killable
        yield from wait_event(pgdat.pfmemalloc_wait, lambda: allow_direct_reclaim(pgdat))
    else:                   # wait_event_interruptible_timeout(..., HZ)
        yield from wait_event(pgdat.pfmemalloc_wait, lambda: allow_direct_reclaim(pgdat),
                              NSEC_PER_SEC, "S")
    return bool(task.oom_killed)


def try_to_free_pages(pgdat, gfp: int, order: int):
    """``try_to_free_pages``: throttle, then ``do_try_to_free_pages`` with ``nr_to_reclaim =
    SWAP_CLUSTER_MAX``, reporting ``mm_vmscan_direct_reclaim_begin/end``. Returns pages
    reclaimed (1 if throttling ended with a fatal signal, as the kernel does)."""
    sc = scan_control(current_gfp_context(gfp), order, SWAP_CLUSTER_MAX)
    if (yield from throttle_direct_reclaim(pgdat, sc.gfp_mask)):
        return 1
    task = current()
    sim = pgdat.sim
    task.reclaim_state = sc.reclaim_state
    if sim.observers:
        sim.emit("mm_vmscan_direct_reclaim_begin", task, None,
                 {"order": order, "gfp": page_alloc.gfp_names(sc.gfp_mask)})
    nr = yield from do_try_to_free_pages(pgdat, sc)
    task.reclaim_state = None
    if sim.observers:
        sim.emit("mm_vmscan_direct_reclaim_end", task, None, {"nr_reclaimed": nr})
    return nr


def compaction_ready(pgdat, sc: scan_control) -> bool:
    """``compaction_ready``: enough free memory above high that compaction can succeed."""
    z = pgdat.zone
    mark = z.watermark[page_alloc.WMARK_HIGH] + (2 << sc.order)
    return page_alloc.zone_watermark_ok(z, 0, mark)


def do_try_to_free_pages(pgdat, sc: scan_control):
    """``do_try_to_free_pages``: ``shrink_zones`` at priority 12 → 0 until the target is met
    (costly orders stop as soon as compaction could succeed)."""
    while True:
        sc.nr_scanned = 0
        if sc.order > page_alloc.PAGE_ALLOC_COSTLY_ORDER and compaction_ready(pgdat, sc):
            sc.compaction_ready = True
        else:
            yield from shrink_node(pgdat, sc)
        yield from consider_reclaim_throttle(pgdat, sc)
        if sc.nr_reclaimed >= sc.nr_to_reclaim or sc.compaction_ready:
            break
        sc.priority -= 1
        if sc.priority < 0:
            break
    if sc.nr_reclaimed:
        return sc.nr_reclaimed
    return 1 if sc.compaction_ready else 0


# ------------------------------------------------------------------------ kswapd
def pgdat_balanced(pgdat, order: int) -> bool:
    """``pgdat_balanced``: the zone is above its high watermark for ``order``."""
    z = pgdat.zone
    return page_alloc.zone_watermark_ok(z, order, z.watermark[page_alloc.WMARK_HIGH])


def _wake_kswapd_now(pgdat) -> None:
    if pgdat.kswapd_wait.waiters:
        pgdat.kswapd_woken = True
        wake_up(pgdat.kswapd_wait)


def wakeup_kswapd(pgdat, gfp: int, order: int) -> None:
    """``wakeup_kswapd``: record the order; wake kswapd if it sleeps, the node is not hopeless
    (``kswapd_failures`` < 16) and not already balanced."""
    if pgdat.kswapd_order < order:
        pgdat.kswapd_order = order
    if not pgdat.kswapd_wait.waiters:
        return
    if pgdat.kswapd_failures >= page_alloc.MAX_RECLAIM_RETRIES or pgdat_balanced(pgdat, order):
        return
    _wake_kswapd_now(pgdat)


def prepare_kswapd_sleep(pgdat, order: int) -> bool:
    """``prepare_kswapd_sleep``: wake ``pfmemalloc_wait``; sleep if hopeless or balanced."""
    if pgdat.pfmemalloc_wait.waiters:
        wake_up(pgdat.pfmemalloc_wait)
    if pgdat.kswapd_failures >= page_alloc.MAX_RECLAIM_RETRIES:
        return True
    if pgdat_balanced(pgdat, order):
        pgdat.pgdat_flags &= ~PGDAT_WRITEBACK
        return True
    return False


def kswapd_try_to_sleep(pgdat, order: int):
    """``kswapd_try_to_sleep``: sleep (interruptible, idle) until ``wakeup_kswapd``, unless
    there is still work to do. Returns whether it slept."""
    if not prepare_kswapd_sleep(pgdat, order):
        return False
    sim = pgdat.sim
    task = current()
    if sim.observers:
        sim.emit("mm_vmscan_kswapd_sleep", task, None, {"nid": 0})
    pgdat.kswapd_woken = False
    yield from wait_event(pgdat.kswapd_wait, lambda: pgdat.kswapd_woken, None, "S")
    return True


def kswapd(pgdat):
    """``kswapd``: the per-node reclaim thread (``PF_MEMALLOC|PF_KSWAPD``). The wake event is
    reported when it actually slept (the kernel's tracepoint fires on every balance round)."""
    task = current()
    task.flags |= PF_MEMALLOC | PF_KSWAPD
    sim = pgdat.sim
    reclaim_order = 0
    while True:
        slept = yield from kswapd_try_to_sleep(pgdat, reclaim_order)
        alloc_order = pgdat.kswapd_order
        pgdat.kswapd_order = 0
        if slept:
            pgdat.stats.kswapd_wakes += 1
        if slept and sim.observers:
            sim.emit("mm_vmscan_kswapd_wake", task, None, {"nid": 0, "order": alloc_order})
        reclaim_order = yield from balance_pgdat(pgdat, alloc_order)


def kswapd_shrink_node(pgdat, sc: scan_control):
    """``kswapd_shrink_node``: reclaim ``max(high watermark, SWAP_CLUSTER_MAX)``; after twice
    the allocation size has been reclaimed, judge balance at order 0 (fragmentation may make
    the order unreachable by reclaim). True if enough was scanned to keep the priority."""
    z = pgdat.zone
    sc.nr_to_reclaim = max(z.watermark[page_alloc.WMARK_HIGH], SWAP_CLUSTER_MAX)
    yield from shrink_node(pgdat, sc)
    if sc.order and sc.nr_reclaimed >= 2 << sc.order:
        sc.order = 0
    return sc.nr_scanned >= sc.nr_to_reclaim


def drop_slab(pgdat):
    """``drop_slab`` (``echo 2 > drop_caches``): ``shrink_slab`` at priority 0, repeated while
    ``(freed >> shift++) > 1`` — each round must free twice as much as the last to go on, so a
    shrinker that keeps freeing a little cannot hold the writer forever."""
    shift = 0
    while True:
        freed = yield from shrink_slab(pgdat, GFP_KERNEL, 0)
        if (freed >> shift) <= 1:
            return
        shift += 1


def balance_pgdat(pgdat, order: int):
    """``balance_pgdat``: reclaim with ``GFP_KERNEL`` holding ``fs_reclaim`` (verified: it calls
    ``__fs_reclaim_acquire`` directly, since kswapd's ``PF_MEMALLOC`` would make
    ``fs_reclaim_acquire`` a no-op) from priority 12 down to 1 until balanced; the priority
    is raised only when a pass did not scan enough or reclaimed nothing. No progress at all
    counts a ``kswapd_failure``. Returns the order the node was balanced for."""
    task = current()
    sc = scan_control(GFP_KERNEL, order, SWAP_CLUSTER_MAX)
    task.reclaim_state = sc.reclaim_state
    lock_map_acquire(pgdat.fs_reclaim_map)
    while sc.priority >= 1:
        if pgdat_balanced(pgdat, sc.order):
            break
        before = sc.nr_reclaimed
        sc.nr_scanned = 0
        enough_scanned = yield from kswapd_shrink_node(pgdat, sc)
        if pgdat.pfmemalloc_wait.waiters and allow_direct_reclaim(pgdat):
            wake_up(pgdat.pfmemalloc_wait)
        if not enough_scanned or sc.nr_reclaimed == before:
            sc.priority -= 1
    else:
        if not sc.nr_reclaimed:
            pgdat.kswapd_failures += 1
    lock_map_release(pgdat.fs_reclaim_map)
    task.reclaim_state = None
    return sc.order
