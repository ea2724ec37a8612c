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
from dataclasses import dataclass, field

from reclaimlab.sim import (
    JIFFY_NS, NSEC_PER_SEC, PF_MEMALLOC, PF_WQ_WORKER, LockdepMap, Mutex, Run, RwSemaphore,
    WaitQueue, cond_resched, current, lock_map_acquire, lock_map_release,
    memalloc_noreclaim_restore, memalloc_noreclaim_save, schedule_timeout_uninterruptible,
)

from . import compaction, oom_kill, vmscan
from .buddy import MAX_PAGE_ORDER, free_area
from .gfp import (
    __GFP_DIRECT_RECLAIM, __GFP_FS, __GFP_HIGH, __GFP_KSWAPD_RECLAIM, __GFP_MEMALLOC,
    __GFP_NOFAIL, __GFP_NOLOCKDEP, __GFP_NOMEMALLOC, __GFP_NORETRY, __GFP_NOWARN,
    __GFP_RETRY_MAYFAIL, current_gfp_context, gfp_names,
)
from .mm_types import NR_LRU_LISTS, MemMap

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

# CPU cost of one trip through the fast path (rmqueue + prep_new_page, ~0.2 us).
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
    """Counters a run result reads (``sim.pgdat.stats``)."""

    allocs: int = 0
    alloc_failures: int = 0
    direct_reclaim_count: int = 0
    direct_reclaim_total_ns: int = 0
    direct_reclaim_max_ns: int = 0
    direct_reclaim_ns: list[int] = field(default_factory=list)
    kswapd_wakes: int = 0
    oom_kills: int = 0
    compact_stall: int = 0
    compact_success: int = 0
    pgscan: int = 0
    pgsteal: int = 0
    slabs_scanned: int = 0
    nofail_retries: int = 0


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
        self.node_zones = [self.zone]
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
        self.total_swap_pages = self.nr_swap_pages
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
        # owners of blocks: address_space / mm_struct / kmem_cache by id (mem_map.owner)
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
        """Buddy consistency and page conservation (free + allocated == managed)."""
        out = self.zone.free_area.check_invariants()
        used = sum(self.nr_lru)
        if used + self.zone.free_pages > self.nr_pages:
            out.append(f"LRU pages {used} + free {self.zone.free_pages} exceed "
                       f"{self.nr_pages} frames")
        if any(n < 0 for n in self.nr_lru):
            out.append(f"negative LRU size {self.nr_lru}")
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
    Before 6.12 ``rmqueue`` warned about NOFAIL above order 1 (``WARN_ON_ONCE``)."""
    z = pgdat.zone
    if not alloc_flags & ALLOC_NO_WATERMARKS:
        mark = z.watermark[alloc_flags & ALLOC_WMARK_MASK]
        if not zone_watermark_ok(z, order, mark, alloc_flags):
            return None
    if pgdat.kernel_version < (6, 12) and gfp & __GFP_NOFAIL and order > 1:
        warn_on_once(pgdat, "nofail_costly_order", gfp, order,
                     "rmqueue: __GFP_NOFAIL with order > 1")
    pfn = z.free_area.rmqueue_smallest(order)
    if pfn is not None and not pgdat.nr_free_ok():
        pass
    return pfn
