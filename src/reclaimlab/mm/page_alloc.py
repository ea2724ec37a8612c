"""The page allocator of one node (``mm/page_alloc.c``): zone, watermarks, fast and slow path.

``pglist_data(sim, config)`` builds the node (one ``ZONE_NORMAL`` holding all memory), attaches
it as ``sim.pgdat`` and starts kswapd. ``alloc_pages`` follows ``__alloc_pages_noprof`` →
``get_page_from_freelist`` at the low watermark → ``__alloc_pages_slowpath`` with the kernel's
order of steps (kernel-semantics.md §1); ``free_pages`` returns a block to the buddy.

Simplified: a single zone (no DMA/DMA32, no ``lowmem_reserve``), no per-CPU page lists, no
cpuset/mempolicy, no highatomic reserve, no watermark boosting, no kcompactd. CPU costs are the
constants below (assumptions of the same magnitude as the kernel's, documented per constant).
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field

from hdrh.histogram import HdrHistogram

from reclaimlab.sim import (
    JIFFY_NS, NSEC_PER_SEC, PF_MEMALLOC, PF_WQ_WORKER, LockdepMap, Mutex, Run, RwSemaphore,
    WaitQueue, cond_resched, current, lock_map_acquire, lock_map_release,
    memalloc_noreclaim_restore, memalloc_noreclaim_save, mutex_trylock, mutex_unlock,
    schedule_timeout_uninterruptible,
)

from .buddy import MAX_PAGE_ORDER, free_area
from .gfp import (
    __GFP_DIRECT_RECLAIM, __GFP_FS, __GFP_HIGH, __GFP_KSWAPD_RECLAIM, __GFP_MEMALLOC, __GFP_MOVABLE,
    __GFP_NOFAIL, __GFP_NOLOCKDEP, __GFP_NOMEMALLOC, __GFP_NORETRY, __GFP_NOWARN,
    __GFP_RETRY_MAYFAIL, current_gfp_context, gfp_names,
)
from .mm_types import LRU_NAMES, NR_LRU_LISTS, MemMap

PAGE_ALLOC_COSTLY_ORDER = 3
MAX_RECLAIM_RETRIES = 16

WMARK_MIN, WMARK_LOW, WMARK_HIGH = 0, 1, 2

# alloc_flags (mm/internal.h)
ALLOC_WMARK_MIN = WMARK_MIN
ALLOC_WMARK_LOW = WMARK_LOW
ALLOC_WMARK_HIGH = WMARK_HIGH
ALLOC_NO_WATERMARKS = 0x04
ALLOC_WMARK_MASK = ALLOC_NO_WATERMARKS - 1
ALLOC_OOM = 0x08
ALLOC_NON_BLOCK = 0x10
ALLOC_MIN_RESERVE = 0x20
ALLOC_CPUSET = 0x40
ALLOC_HIGHATOMIC = 0x200
ALLOC_KSWAPD = 0x800
ALLOC_RESERVES = ALLOC_NON_BLOCK | ALLOC_MIN_RESERVE | ALLOC_HIGHATOMIC | ALLOC_OOM

# CPU cost of one trip through the fast path (rmqueue + prep_new_page, ~0.2 us). Charged to
# allocations that may sleep only: an atomic one may run under a spinlock, where the runtime
# allows no CPU burst, so it takes no virtual time.
ALLOC_FASTPATH_NS = 200
# CPU cost of one pass of the slow-path retry loop, excluding reclaim and compaction (zonelist
# walks, kswapd wakeups, the cond_resched that lets other tasks run; assumption: 5 us).
SLOWPATH_RETRY_NS = 5_000

# warn_alloc's ratelimit (DEFAULT_RATELIMIT_INTERVAL/BURST): 10 reports per 5 s.
WARN_ALLOC_INTERVAL_NS = 5 * NSEC_PER_SEC
WARN_ALLOC_BURST = 10


@dataclass
class MemoryConfig:
    """The machine's memory: size, page size, watermark tunables, modelled kernel version."""

    memory_bytes: int
    page_size: int = 4096
    min_free_kbytes: int | None = None   # None: calculate_min_free_kbytes()
    watermark_scale_factor: int = 10
    kernel_version: str = "6.12"
    swap_bytes: int = 0
    vfs_cache_pressure: int = 100


@dataclass
class MmStats:
    """Counters a run result reads (``sim.pgdat.stats``). Direct-reclaim stalls also go into an
    HDR histogram (3 significant digits) for the p99; count, total and max are exact."""

    allocs: int = 0
    alloc_failures: int = 0
    direct_reclaim_count: int = 0
    direct_reclaim_total_ns: int = 0
    direct_reclaim_max_ns: int = 0
    direct_reclaim_hist: HdrHistogram = field(
        default_factory=lambda: HdrHistogram(1, 3600 * NSEC_PER_SEC, 3))
    kswapd_wakes: int = 0
    oom_kills: int = 0
    compact_stall: int = 0
    compact_success: int = 0
    pgscan: int = 0
    pgsteal: int = 0
    slabs_scanned: int = 0
    nofail_retries: int = 0

    def record_direct_reclaim(self, ns: int) -> None:
        self.direct_reclaim_count += 1
        self.direct_reclaim_total_ns += ns
        self.direct_reclaim_max_ns = max(self.direct_reclaim_max_ns, ns)
        self.direct_reclaim_hist.record_value(max(ns, 1))

    def direct_reclaim_summary(self) -> dict:
        """The run result's ``direct_reclaim`` object: {count, total_ns, p99_ns, max_ns}."""
        p99 = (min(self.direct_reclaim_hist.get_value_at_percentile(99.0),
                   self.direct_reclaim_max_ns) if self.direct_reclaim_count else 0)
        return {"count": self.direct_reclaim_count, "total_ns": self.direct_reclaim_total_ns,
                "p99_ns": p99, "max_ns": self.direct_reclaim_max_ns}


class zone:
    """``struct zone``: the buddy free area and the watermarks (one ZONE_NORMAL)."""

    def __init__(self, pgdat: "pglist_data", mem_map: MemMap, managed_pages: int) -> None:
        self.name = "Normal"
        self.zone_pgdat = pgdat
        self.managed_pages = managed_pages
        self.free_area = free_area(mem_map)
        self.watermark = [0, 0, 0]
        self.lowmem_reserve = 0
        self.compact_cached_migrate_pfn = 0
        self.compact_considered = 0
        self.compact_defer_shift = 0
        self.compact_order_failed = MAX_PAGE_ORDER + 1

    @property
    def free_pages(self) -> int:
        return self.free_area.nr_free

    def __repr__(self) -> str:
        return f"zone {self.name}"


def calculate_min_free_kbytes(lowmem_kbytes: int) -> int:
    """``calculate_min_free_kbytes``: ``sqrt(16 * lowmem_kB)`` clamped to [128, 262144]."""
    return min(max(math.isqrt(lowmem_kbytes * 16), 128), 262144)


def setup_per_zone_wmarks(z: zone, min_free_kbytes: int, watermark_scale_factor: int,
                          page_size: int) -> None:
    """``__setup_per_zone_wmarks``: min from ``min_free_kbytes`` (all of it: one zone);
    ``gap = max(min/4, managed * scale / 10000)``; low = min + gap; high = low + gap."""
    pages_min = min_free_kbytes // (page_size // 1024)
    gap = max(pages_min >> 2, z.managed_pages * watermark_scale_factor // 10000)
    z.watermark = [pages_min, pages_min + gap, pages_min + 2 * gap]


class pglist_data:
    """``pg_data_t``: one NUMA node with its zone, LRU lists, kswapd and reclaim state."""

    def __init__(self, sim, config: MemoryConfig) -> None:
        if config.page_size < 4096 or config.page_size & (config.page_size - 1):
            raise ValueError(f"page_size {config.page_size} must be a power of two >= 4096")
        if not 1 <= config.watermark_scale_factor <= 3000:
            raise ValueError("watermark_scale_factor must be in 1..3000")
        self.sim = sim
        self.config = config
        self.page_size = config.page_size
        self.nr_pages = config.memory_bytes // config.page_size
        if self.nr_pages < 1 << MAX_PAGE_ORDER:
            raise ValueError(f"memory_bytes {config.memory_bytes} is below one max-order block")
        self.kernel_version = tuple(int(p) for p in config.kernel_version.split(".")[:2])
        self.mem_map = MemMap(self.nr_pages)
        self.zone = zone(self, self.mem_map, self.nr_pages)
        kb = self.nr_pages * (self.page_size // 1024)
        self.min_free_kbytes = (config.min_free_kbytes if config.min_free_kbytes is not None
                                else calculate_min_free_kbytes(kb))
        setup_per_zone_wmarks(self.zone, self.min_free_kbytes, config.watermark_scale_factor,
                              self.page_size)
        # LRU (struct lruvec): sizes in pages per list; the lists live in mem_map.
        self.nr_lru = [0] * NR_LRU_LISTS
        # node vmstat counters (pages)
        self.nr_file_pages = 0
        self.nr_dirty = 0
        self.nr_writeback = 0
        self.nr_anon = 0
        self.nr_slab_reclaimable = 0
        self.nr_slab_unreclaimable = 0
        self.nr_throttled_written = 0
        self.nr_swap_pages = config.swap_bytes // config.page_size
        # kswapd / reclaim state
        self.kswapd_wait = WaitQueue("kswapd_wait")
        self.pfmemalloc_wait = WaitQueue("pfmemalloc_wait")
        self.reclaim_wait = [WaitQueue(f"reclaim_wait[{r}]") for r in vmscan.THROTTLE_NAMES]
        self.reclaim_wake_seq = [0] * len(vmscan.THROTTLE_NAMES)
        self.nr_writeback_throttled = 0
        self.nr_reclaim_start = 0
        self.kswapd_order = 0
        self.kswapd_woken = False
        self.kswapd_failures = 0
        self.pgdat_flags = 0
        self.fs_reclaim_map = LockdepMap("fs_reclaim")
        self.oom_lock = Mutex("oom_lock")
        self.shrinker_rwsem = RwSemaphore("shrinker_rwsem")
        self.shrinker_list: list = []
        # owners of blocks: address_space / mm_struct / kmem_cache by id (mem_map.owner);
        # a raw block (plain alloc_pages) holds -pid of the task that allocated it.
        self.owners: dict[int, object] = {}
        self._next_owner_id = 1
        self.raw_pages_by_pid: dict[int, int] = {}
        self.stats = MmStats()
        self.warned: dict[tuple[str, str], None] = {}
        self._warn_alloc_times: list[int] = []
        # Set by the VFS: start background writeback (wakeup_flusher_threads(WB_REASON_VMSCAN)).
        self.wakeup_flusher_threads = lambda: None
        sim.pgdat = self
        self.kswapd = sim.kthread_run(vmscan.kswapd, "kswapd0", self)

    def register_owner(self, obj: object) -> int:
        """Give an address_space / mm_struct / kmem_cache the id stored in ``mem_map.owner``."""
        oid = self._next_owner_id
        self._next_owner_id += 1
        self.owners[oid] = obj
        return oid

    def unregister_owner(self, oid: int) -> None:
        self.owners.pop(oid, None)

    def reclaimable_pages(self) -> int:
        """``zone_reclaimable_pages``: file LRU pages, plus anon ones when swap has room."""
        n = self.nr_lru[2] + self.nr_lru[3]
        if self.nr_swap_pages > 0:
            n += self.nr_lru[0] + self.nr_lru[1]
        return n

    def check_invariants(self) -> list[str]:
        """Buddy consistency (every frame in exactly one block, free lists exact, merges
        complete), LRU lists that match their counters, page cache accounting."""
        out = self.zone.free_area.check_invariants()
        mm = self.mem_map
        for lru, name in enumerate(LRU_NAMES):
            head = mm.lru_head(lru)
            pages, pfn, steps = 0, mm.lru_next[head], 0
            while pfn != head and steps <= self.nr_pages:
                pages += 1 << mm.order[pfn]
                pfn, steps = mm.lru_next[pfn], steps + 1
            if pages != self.nr_lru[lru]:
                out.append(f"{name} list holds {pages} pages, counter says {self.nr_lru[lru]}")
        cached = sum(o.nrpages + (len(o.orphans) << o.min_order)
                     for o in self.owners.values() if hasattr(o, "i_pages"))
        if cached != self.nr_file_pages:
            out.append(f"mappings hold {cached} pages, NR_FILE_PAGES is {self.nr_file_pages}")
        return out

    def __repr__(self) -> str:
        return "pgdat node0"


# ------------------------------------------------------------------------ watermarks
def __zone_watermark_ok(z: zone, order: int, mark: int, alloc_flags: int,
                        free_pages: int) -> bool:
    """``__zone_watermark_ok``: free pages (less the block's tail) must exceed ``mark`` reduced
    by the caller's reserve entitlement; for order > 0 a free block of that order must exist."""
    min_ = mark
    free_pages -= (1 << order) - 1
    if alloc_flags & ALLOC_RESERVES:
        if alloc_flags & ALLOC_MIN_RESERVE:
            min_ -= min_ // 2
            if alloc_flags & ALLOC_NON_BLOCK:
                min_ -= min_ // 4
        if alloc_flags & ALLOC_OOM:
            min_ -= min_ // 2
    if free_pages <= min_ + z.lowmem_reserve:
        return False
    if not order:
        return True
    return z.free_area.has_block(order)


def zone_watermark_ok(z: zone, order: int, mark: int, alloc_flags: int = 0) -> bool:
    """``zone_watermark_ok``."""
    return __zone_watermark_ok(z, order, mark, alloc_flags, z.free_area.nr_free)


def get_page_from_freelist(pgdat: pglist_data, gfp: int, order: int,
                           alloc_flags: int) -> int | None:
    """``get_page_from_freelist``: watermark check (unless ``ALLOC_NO_WATERMARKS``) + ``rmqueue``.
    Before 6.12 ``rmqueue`` warned about NOFAIL above order 1 on every dequeue, fast path
    included (verified in the kernel source: ``WARN_ON_ONCE((gfp_flags & __GFP_NOFAIL) &&
    (order > 1))`` at the top of ``rmqueue``)."""
    z = pgdat.zone
    if not alloc_flags & ALLOC_NO_WATERMARKS:
        mark = z.watermark[alloc_flags & ALLOC_WMARK_MASK]
        if not zone_watermark_ok(z, order, mark, alloc_flags):
            return None
    if pgdat.kernel_version < (6, 12) and gfp & __GFP_NOFAIL and order > 1:
        warn_on_once(pgdat, "nofail_costly_order", gfp, order,
                     "rmqueue: __GFP_NOFAIL with order > 1")
    return z.free_area.rmqueue_smallest(order)


# ------------------------------------------------------------------------ warnings
_MM_DIR = os.path.dirname(os.path.abspath(__file__))


def alloc_call_site() -> str:
    """The allocating call site: the innermost modelled function outside ``mm/`` on the running
    task's stack (``__getblk_slow``, ``ext4_mb_load_buddy_gfp`` ...)."""
    f = sys._getframe(1)
    while f is not None:
        if os.path.dirname(os.path.abspath(f.f_code.co_filename)) != _MM_DIR:
            return f.f_code.co_name
        f = f.f_back
    return "?"


def warn_on_once(pgdat: pglist_data, kind: str, gfp: int, order: int, message: str) -> None:
    """``WARN_ON_ONCE`` in the allocator, once per boot per (warning, call site).

    The kernel's WARN_ON_ONCE is once per WARN site; we key it by the allocating caller (the
    innermost function outside mm/) too, so that distinct paths reaching the same check each
    show up once."""
    task = current()
    key = (kind, alloc_call_site())
    if key in pgdat.warned:
        return
    pgdat.warned[key] = None
    pgdat.sim.emit("alloc_warn", task, None, {"kind": kind, "message": message,
                                              "gfp": gfp_names(gfp), "order": order})


def warn_alloc(pgdat: pglist_data, gfp: int, order: int) -> None:
    """``warn_alloc``: "page allocation failure", ratelimited, silenced by ``__GFP_NOWARN``."""
    if gfp & __GFP_NOWARN:
        return
    now = pgdat.sim.now
    times = [t for t in pgdat._warn_alloc_times if now - t < WARN_ALLOC_INTERVAL_NS]
    if len(times) >= WARN_ALLOC_BURST:
        pgdat._warn_alloc_times = times
        return
    times.append(now)
    pgdat._warn_alloc_times = times
    pgdat.sim.emit("alloc_warn", current(), None, {
        "kind": "page_allocation_failure",
        "message": f"page allocation failure: order:{order}, mode:({gfp_names(gfp)})",
        "gfp": gfp_names(gfp), "order": order})


# ------------------------------------------------------------------------ fs_reclaim lockdep
def __need_reclaim(gfp: int) -> bool:
    """``__need_reclaim``: the allocation may enter direct reclaim."""
    if not gfp & __GFP_DIRECT_RECLAIM:
        return False
    if current().flags & PF_MEMALLOC:
        return False
    return not gfp & __GFP_NOLOCKDEP


def fs_reclaim_acquire(gfp: int) -> bool:
    """``fs_reclaim_acquire``: take the ``fs_reclaim`` lockdep map if this allocation could
    recurse into filesystem reclaim. Returns whether it was taken (pass to the release)."""
    gfp = current_gfp_context(gfp)
    if __need_reclaim(gfp) and gfp & __GFP_FS:
        lock_map_acquire(current().sim.pgdat.fs_reclaim_map)
        return True
    return False


def fs_reclaim_release(taken: bool) -> None:
    """``fs_reclaim_release``."""
    if taken:
        lock_map_release(current().sim.pgdat.fs_reclaim_map)


def might_alloc(gfp: int) -> None:
    """``might_alloc``: record the dependency "held locks → fs_reclaim" for lockdep."""
    fs_reclaim_release(fs_reclaim_acquire(gfp))


# ------------------------------------------------------------------------ the allocator
def alloc_pages(gfp: int, order: int = 0):
    """``alloc_pages`` → ``__alloc_pages_noprof``: scoped gfp, fast path at the low watermark,
    else the slow path. Returns the head pfn or None. Emits ``alloc`` with its latency."""
    task = current()
    sim = task.sim
    pgdat = sim.pgdat
    start = sim.now
    gfp = current_gfp_context(gfp)
    might_alloc(gfp)
    if gfp & __GFP_DIRECT_RECLAIM:
        yield Run(ALLOC_FASTPATH_NS)
    pfn = get_page_from_freelist(pgdat, gfp, order, ALLOC_WMARK_LOW)
    if pfn is None:
        pfn = yield from __alloc_pages_slowpath(gfp, order)
    account_alloc(pgdat, task, pfn, order, gfp, start)
    return pfn


def account_alloc(pgdat: pglist_data, task, pfn: int | None, order: int, gfp: int,
                  start: int) -> None:
    """Statistics and the ``alloc`` event; a raw block is charged to the allocating task."""
    stats = pgdat.stats
    stats.allocs += 1
    if pfn is None:
        stats.alloc_failures += 1
    else:
        pid = task.pid
        pgdat.mem_map.owner[pfn] = -pid
        raw = pgdat.raw_pages_by_pid
        raw[pid] = raw.get(pid, 0) + (1 << order)
    hook = pgdat.sim._on_alloc
    if hook is not None:
        hook("alloc", task, pfn, {"ns": pgdat.sim.now - start, "order": order,
                                  "gfp": gfp_names(gfp)})


def claim_block(pgdat: pglist_data, pfn: int, order: int, owner_id: int, index: int) -> None:
    """Hand a freshly allocated block to an owner (page cache, mm, slab): the raw charge to the
    allocating task moves to the owner's ``mem_map.owner`` id."""
    mm = pgdat.mem_map
    old = mm.owner[pfn]
    if old < 0:
        _uncharge_raw(pgdat, -old, 1 << order)
    mm.owner[pfn] = owner_id
    mm.index[pfn] = index


def claim_pages(pgdat: pglist_data, pfns: list[int], owner_id: int, first_index: int) -> None:
    """``claim_block`` for each order-0 page of ``pfns``, at indices ``first_index``, … : the
    same end state, with the raw charges moved once per allocating task."""
    mm = pgdat.mem_map
    owner, index = mm.owner, mm.index
    raw: dict[int, int] = {}
    for i, pfn in enumerate(pfns, first_index):
        old = owner[pfn]
        if old < 0:
            raw[-old] = raw.get(-old, 0) + 1
        owner[pfn] = owner_id
        index[pfn] = i
    for pid, pages in raw.items():
        _uncharge_raw(pgdat, pid, pages)


def _uncharge_raw(pgdat: pglist_data, pid: int, pages: int) -> None:
    left = pgdat.raw_pages_by_pid.get(pid, 0) - pages
    if left > 0:
        pgdat.raw_pages_by_pid[pid] = left
    else:
        pgdat.raw_pages_by_pid.pop(pid, None)


def alloc_pages_bulk(gfp: int, nr_pages: int, out: list[int]):
    """``alloc_pages_bulk_array``: up to ``nr_pages`` order-0 pages appended to ``out``, taken
    while the low watermark holds at one fast-path cost; if not even one page can be taken that
    way, a single ``alloc_pages`` (slow path included) is made, as the kernel's fallback does.
    Returns the number of pages added (0 only if that single allocation failed)."""
    task = current()
    sim = task.sim
    pgdat = sim.pgdat
    z = pgdat.zone
    start = sim.now
    gfp = current_gfp_context(gfp)
    might_alloc(gfp)
    if gfp & __GFP_DIRECT_RECLAIM:
        yield Run(ALLOC_FASTPATH_NS)
    # zone_watermark_ok(z, 0, low) before each page: with no reserves and order 0 it holds
    # while more than low + lowmem_reserve pages are free, and each page taken is one less.
    area = z.free_area
    got = max(0, min(nr_pages, area.nr_free - z.watermark[WMARK_LOW] - z.lowmem_reserve))
    for _ in range(got):
        pfn = area.rmqueue_smallest(0)
        account_alloc(pgdat, task, pfn, 0, gfp, start)
        out.append(pfn)
    if got == 0:
        pfn = yield from alloc_pages(gfp, 0)
        if pfn is not None:
            out.append(pfn)
            got = 1
    return got


def free_pages(pfn: int, order: int = 0, pgdat: pglist_data | None = None) -> None:
    """``__free_pages``: return a block to the buddy. Outside a task (a timer or IO completion
    callback) pass ``pgdat``. Pages freed by a task in reclaim (slab pages freed by shrinkers)
    count as reclaimed by it (``mm_account_reclaimed_pages`` via ``reclaim_state``)."""
    task = current()
    in_task = task is not None and task.gen is not None and task.gen.gi_running
    if pgdat is None:
        if not in_task:
            raise RuntimeError("free_pages outside a simulated task needs pgdat=")
        pgdat = task.sim.pgdat
    __free_pages_ok(pgdat, pfn, order)
    rs = getattr(task, "reclaim_state", None) if in_task else None
    if rs is not None:
        rs.reclaimed += 1 << order


def __free_pages_ok(pgdat: pglist_data, pfn: int, order: int) -> None:
    """Free a block, uncharging its raw owner task if it has one."""
    owner = pgdat.mem_map.owner[pfn]
    if owner < 0:
        _uncharge_raw(pgdat, -owner, 1 << order)
    pgdat.zone.free_area.free_one_page(pfn, order)


# ------------------------------------------------------------------------ the slow path
def gfp_to_alloc_flags(gfp: int, order: int) -> int:
    """``gfp_to_alloc_flags``: min watermark; __GFP_HIGH → MIN_RESERVE; no direct reclaim →
    NON_BLOCK (unless NOMEMALLOC)."""
    alloc_flags = ALLOC_WMARK_MIN | ALLOC_CPUSET
    if gfp & __GFP_HIGH:
        alloc_flags |= ALLOC_MIN_RESERVE
    if gfp & __GFP_KSWAPD_RECLAIM:
        alloc_flags |= ALLOC_KSWAPD
    if not gfp & __GFP_DIRECT_RECLAIM:
        if not gfp & __GFP_NOMEMALLOC:
            alloc_flags |= ALLOC_NON_BLOCK
            if order > 0:
                alloc_flags |= ALLOC_HIGHATOMIC
    return alloc_flags


def __gfp_pfmemalloc_flags(gfp: int) -> int:
    """``__gfp_pfmemalloc_flags``: reserves for ``__GFP_MEMALLOC``/``PF_MEMALLOC`` (all of them)
    and for OOM victims (``ALLOC_OOM``); none with ``__GFP_NOMEMALLOC``."""
    if gfp & __GFP_NOMEMALLOC:
        return 0
    if gfp & __GFP_MEMALLOC:
        return ALLOC_NO_WATERMARKS
    task = current()
    if task.flags & PF_MEMALLOC:
        return ALLOC_NO_WATERMARKS
    if task.oom_killed:
        return ALLOC_OOM
    return 0


def nofail_entry_checks(pgdat: pglist_data, gfp: int, order: int) -> None:
    """The three ``WARN_ON_ONCE`` at slow-path entry for ``__GFP_NOFAIL`` (6.12+, commit
    903edea6c53f): order > 1, no direct reclaim, ``PF_MEMALLOC``. They fire even when the
    allocation then succeeds."""
    if order > 1:
        warn_on_once(pgdat, "nofail_costly_order", gfp, order,
                     f"__GFP_NOFAIL allocation of order {order} > 1")
    if not gfp & __GFP_DIRECT_RECLAIM:
        warn_on_once(pgdat, "nofail_no_reclaim", gfp, order,
                     "__GFP_NOFAIL without __GFP_DIRECT_RECLAIM")
    if current().flags & PF_MEMALLOC:
        warn_on_once(pgdat, "nofail_in_reclaim", gfp, order,
                     "__GFP_NOFAIL allocation with PF_MEMALLOC set (from reclaim context)")


def __alloc_pages_slowpath(gfp: int, order: int):
    """``__alloc_pages_slowpath`` (6.12), steps in the kernel's order:
    wake kswapd, retry at min; costly/high-order: async compaction first; ``retry:`` reserves
    (``__gfp_pfmemalloc_flags``); no direct reclaim or ``PF_MEMALLOC`` → nopage; direct reclaim;
    direct compaction; NORETRY / costly-without-RETRY_MAYFAIL → nopage; ``should_reclaim_retry``;
    ``should_compact_retry``; ``__alloc_pages_may_oom``; ``nopage``: NOFAIL loops unbounded at
    ``ALLOC_MIN_RESERVE``, others ``warn_alloc`` and fail."""
    task = current()
    pgdat = task.sim.pgdat
    nofail = bool(gfp & __GFP_NOFAIL)
    can_direct_reclaim = bool(gfp & __GFP_DIRECT_RECLAIM)
    costly_order = order > PAGE_ALLOC_COSTLY_ORDER
    new_warnings = pgdat.kernel_version >= (6, 12)
    if nofail and new_warnings:
        nofail_entry_checks(pgdat, gfp, order)
    no_progress_loops = 0
    compaction_retries = 0
    compact_priority = compaction.DEF_COMPACT_PRIORITY
    compact_result = compaction.COMPACT_SKIPPED
    alloc_flags = gfp_to_alloc_flags(gfp, order)
    if alloc_flags & ALLOC_KSWAPD:
        vmscan.wakeup_kswapd(pgdat, gfp, order)
    pfn = get_page_from_freelist(pgdat, gfp, order, alloc_flags)
    if pfn is not None:
        return pfn
    # Costly orders, and unmovable high orders, try (async) compaction before reclaim.
    if (can_direct_reclaim and compaction.gfp_compaction_allowed(gfp)
            and (costly_order or (order > 0 and not gfp & __GFP_MOVABLE))
            and not __gfp_pfmemalloc_flags(gfp)):
        pfn, compact_result = yield from __alloc_pages_direct_compact(
            gfp, order, alloc_flags, compaction.INIT_COMPACT_PRIORITY)
        if pfn is not None:
            return pfn
        if costly_order and gfp & __GFP_NORETRY:
            if compact_result in (compaction.COMPACT_SKIPPED, compaction.COMPACT_DEFERRED):
                return (yield from _nopage(pgdat, gfp, order, can_direct_reclaim))
            compact_priority = compaction.INIT_COMPACT_PRIORITY
    while True:
        # retry:
        if can_direct_reclaim:
            yield Run(SLOWPATH_RETRY_NS)
        if alloc_flags & ALLOC_KSWAPD:
            vmscan.wakeup_kswapd(pgdat, gfp, order)
        reserve_flags = __gfp_pfmemalloc_flags(gfp)
        if reserve_flags:
            alloc_flags = reserve_flags | (alloc_flags & ALLOC_KSWAPD)
        pfn = get_page_from_freelist(pgdat, gfp, order, alloc_flags)
        if pfn is not None:
            return pfn
        if not can_direct_reclaim or task.flags & PF_MEMALLOC:
            pfn = yield from _nopage(pgdat, gfp, order, can_direct_reclaim)
            if pfn is not None or not nofail or not can_direct_reclaim:
                return pfn
            continue
        pfn, progress = yield from __alloc_pages_direct_reclaim(gfp, order, alloc_flags)
        if pfn is not None:
            return pfn
        pfn, compact_result = yield from __alloc_pages_direct_compact(
            gfp, order, alloc_flags, compact_priority)
        if pfn is not None:
            return pfn
        if gfp & __GFP_NORETRY or (costly_order and not gfp & __GFP_RETRY_MAYFAIL):
            pfn = yield from _nopage(pgdat, gfp, order, can_direct_reclaim)
            if pfn is not None or not nofail:
                return pfn
            continue
        retry, no_progress_loops = yield from should_reclaim_retry(
            pgdat, gfp, order, alloc_flags, progress > 0, no_progress_loops)
        if retry:
            continue
        if progress > 0 and compaction.gfp_compaction_allowed(gfp) and order > 0:
            retry, compact_priority, compaction_retries = compaction.should_compact_retry(
                pgdat, order, compact_result, compact_priority, compaction_retries)
            if retry:
                continue
        pfn, progress = yield from __alloc_pages_may_oom(pgdat, gfp, order)
        if pfn is not None:
            return pfn
        if task.oom_killed and (alloc_flags & ALLOC_OOM or gfp & __GFP_NOMEMALLOC):
            pfn = yield from _nopage(pgdat, gfp, order, can_direct_reclaim)
            if pfn is not None or not nofail:
                return pfn
            continue
        if progress:
            no_progress_loops = 0
            continue
        pfn = yield from _nopage(pgdat, gfp, order, can_direct_reclaim)
        if pfn is not None or not nofail:
            return pfn


def _nopage(pgdat: pglist_data, gfp: int, order: int, can_direct_reclaim: bool):
    """The ``nopage:`` label. NOFAIL with direct reclaim: one try at ``ALLOC_MIN_RESERVE``
    (deliberately not all reserves), ``cond_resched``, and the caller goes back to ``retry``
    (returns None); without direct reclaim NOFAIL fails (6.12+). Before 6.12 the NOFAIL checks
    lived here: ``!can_direct_reclaim`` warned and failed; ``PF_MEMALLOC`` and costly order
    warned. Other allocations: ``warn_alloc`` and fail."""
    if gfp & __GFP_NOFAIL:
        if pgdat.kernel_version < (6, 12):
            if not can_direct_reclaim:
                warn_on_once(pgdat, "nofail_no_reclaim", gfp, order,
                             "__GFP_NOFAIL without __GFP_DIRECT_RECLAIM")
            else:
                if current().flags & PF_MEMALLOC:
                    warn_on_once(pgdat, "nofail_in_reclaim", gfp, order,
                                 "__GFP_NOFAIL allocation with PF_MEMALLOC set")
                if order > PAGE_ALLOC_COSTLY_ORDER:
                    warn_on_once(pgdat, "nofail_costly_order", gfp, order,
                                 f"__GFP_NOFAIL allocation of costly order {order}")
        if can_direct_reclaim:
            pgdat.stats.nofail_retries += 1
            pfn = get_page_from_freelist(pgdat, gfp, order, ALLOC_MIN_RESERVE)
            if pfn is None:
                yield from cond_resched()
            return pfn
    warn_alloc(pgdat, gfp, order)
    return None


def __alloc_pages_direct_reclaim(gfp: int, order: int, alloc_flags: int):
    """``__alloc_pages_direct_reclaim`` → ``__perform_reclaim``: ``fs_reclaim_acquire``,
    ``PF_MEMALLOC`` (``memalloc_noreclaim_save``), ``try_to_free_pages``; then the freelist.
    Returns (pfn, progress). The whole reclaim is timed for the stall statistics."""
    task = current()
    sim = task.sim
    pgdat = sim.pgdat
    start = sim.now
    yield from cond_resched()
    taken = fs_reclaim_acquire(gfp)
    noreclaim = memalloc_noreclaim_save()
    progress = yield from vmscan.try_to_free_pages(pgdat, gfp, order)
    memalloc_noreclaim_restore(noreclaim)
    fs_reclaim_release(taken)
    pgdat.stats.record_direct_reclaim(sim.now - start)
    if not progress:
        return None, 0
    return get_page_from_freelist(pgdat, gfp, order, alloc_flags), progress


def __alloc_pages_direct_compact(gfp: int, order: int, alloc_flags: int, prio: int):
    """``__alloc_pages_direct_compact``: compaction under ``PF_MEMALLOC``, then the freelist.
    Returns (pfn, compact_result)."""
    if not order:
        return None, compaction.COMPACT_SKIPPED
    pgdat = current().sim.pgdat
    noreclaim = memalloc_noreclaim_save()
    result = yield from compaction.try_to_compact_pages(pgdat, gfp, order, alloc_flags, prio)
    memalloc_noreclaim_restore(noreclaim)
    if result in (compaction.COMPACT_SKIPPED, compaction.COMPACT_DEFERRED):
        return None, result
    pgdat.stats.compact_stall += 1
    pfn = get_page_from_freelist(pgdat, gfp, order, alloc_flags)
    if pfn is not None:
        pgdat.stats.compact_success += 1
        compaction.compaction_defer_reset(pgdat.zone, order, True)
    return pfn, result


def should_reclaim_retry(pgdat: pglist_data, gfp: int, order: int, alloc_flags: int,
                         did_some_progress: bool, no_progress_loops: int):
    """``should_reclaim_retry``: progress at order ≤ 3 resets the loop count; more than
    ``MAX_RECLAIM_RETRIES`` loops without progress stop; else retry if the zone would pass the
    min watermark counting reclaimable pages as free. Workqueue workers sleep a jiffy, others
    ``cond_resched``. Returns (retry, no_progress_loops)."""
    if did_some_progress and order <= PAGE_ALLOC_COSTLY_ORDER:
        no_progress_loops = 0
    else:
        no_progress_loops += 1
    if no_progress_loops > MAX_RECLAIM_RETRIES:
        return False, no_progress_loops
    z = pgdat.zone
    available = pgdat.reclaimable_pages() + z.free_pages
    if not __zone_watermark_ok(z, order, z.watermark[WMARK_MIN], alloc_flags, available):
        return False, no_progress_loops
    if current().flags & PF_WQ_WORKER:
        yield from schedule_timeout_uninterruptible(JIFFY_NS)
    else:
        yield from cond_resched()
    return True, no_progress_loops


def __alloc_pages_may_oom(pgdat: pglist_data, gfp: int, order: int):
    """``__alloc_pages_may_oom``: under ``oom_lock`` (trylock; contention counts as progress
    after a jiffy's sleep), try the high watermark, then ``out_of_memory`` unless exempt
    (costly order, ``__GFP_RETRY_MAYFAIL``). A NOFAIL allocation for which the OOM killer made no
    progress warns and takes from all reserves. Returns (pfn, progress)."""
    if not mutex_trylock(pgdat.oom_lock):
        yield from schedule_timeout_uninterruptible(JIFFY_NS)
        return None, 1
    pfn, progress = None, 0
    pfn = get_page_from_freelist(pgdat, gfp & ~__GFP_DIRECT_RECLAIM, order,
                                 ALLOC_WMARK_HIGH | ALLOC_CPUSET)
    if pfn is None and order <= PAGE_ALLOC_COSTLY_ORDER and not gfp & __GFP_RETRY_MAYFAIL:
        killed = oom_kill.out_of_memory(pgdat, gfp, order)
        if not killed and gfp & __GFP_NOFAIL:
            warn_on_once(pgdat, "nofail_oom", gfp, order,
                         "__GFP_NOFAIL allocation and the OOM killer made no progress")
        if killed or gfp & __GFP_NOFAIL:
            progress = 1
            if gfp & __GFP_NOFAIL:
                pfn = get_page_from_freelist(pgdat, gfp, order, ALLOC_NO_WATERMARKS)
    mutex_unlock(pgdat.oom_lock)
    return pfn, progress


# Reclaim, compaction and the OOM killer call back into this module: imported last.
from . import compaction, oom_kill, vmscan  # noqa: E402
