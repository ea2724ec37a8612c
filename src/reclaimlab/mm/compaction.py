"""Direct compaction (``mm/compaction.c``), as a migrate-to-defragment model.

To make a free block of ``2**order`` pages, compaction looks at aligned candidate blocks from
where the last run stopped (``compact_cached_migrate_pfn``). A candidate qualifies when every
allocated block inside it is a movable folio (page cache or anon on the LRU, not under
writeback; async mode also skips dirty file folios) — slab pages and raw allocations pin it.
The candidate's free blocks are isolated, its folios migrated to free memory elsewhere (new
frames from the buddy; the owner's index — ``i_pages`` or the mm's slot — is updated), and
everything inside is freed so the buddy merges it into one block. After a failed sync run the
zone defers compaction at that order for the next 2, 4, ... 64 attempts (``defer_compaction``).

Priorities (``enum compact_priority``): ASYNC looks at few candidates, SYNC_LIGHT at more,
SYNC_FULL at most; the counts are our assumption (the kernel scans the zone with two scanners
and bails out on contention). Costs: a scan cost per frame examined and a copy cost per page
migrated. Not modelled: kcompactd, pageblock migratetypes, proactive compaction.
"""

from __future__ import annotations

from reclaimlab.sim import Run

from . import page_alloc
from .gfp import __GFP_IO
from .mm_types import PG_anon, PG_buddy, PG_dirty, PG_head, PG_lru, PG_slab, PG_writeback
from .swap import lru_replace

COMPACT_SKIPPED = "skipped"
COMPACT_DEFERRED = "deferred"
COMPACT_CONTINUE = "continue"
COMPACT_COMPLETE = "complete"
COMPACT_PARTIAL_SKIPPED = "partial_skipped"
COMPACT_SUCCESS = "success"

COMPACT_PRIO_SYNC_FULL = 0
COMPACT_PRIO_SYNC_LIGHT = 1
COMPACT_PRIO_ASYNC = 2
MIN_COMPACT_PRIORITY = COMPACT_PRIO_SYNC_FULL
MIN_COMPACT_COSTLY_PRIORITY = COMPACT_PRIO_SYNC_LIGHT
DEF_COMPACT_PRIORITY = COMPACT_PRIO_SYNC_LIGHT
INIT_COMPACT_PRIORITY = COMPACT_PRIO_ASYNC
MAX_COMPACT_RETRIES = 16
COMPACT_MAX_DEFER_SHIFT = 6

# Candidate blocks examined per run, by priority (SYNC_FULL, SYNC_LIGHT, ASYNC): assumption.
CANDIDATES = (1024, 256, 32)
# CPU cost per frame examined by the scanners and per page migrated (copy + rmap; assumption).
COMPACT_SCAN_NS = 20
MIGRATE_PAGE_NS = 1_500


def defer_compaction(z, order: int) -> None:
    """``defer_compaction``: skip the next ``1 << compact_defer_shift`` attempts at ≥ order."""
    z.compact_considered = 0
    z.compact_defer_shift = min(z.compact_defer_shift + 1, COMPACT_MAX_DEFER_SHIFT)
    z.compact_order_failed = min(z.compact_order_failed, order)


def compaction_deferred(z, order: int) -> bool:
    """``compaction_deferred``: True while this attempt falls inside the deferral window."""
    if order < z.compact_order_failed:
        return False
    limit = 1 << z.compact_defer_shift
    z.compact_considered += 1
    if z.compact_considered >= limit:
        z.compact_considered = limit
        return False
    return True


def compaction_defer_reset(z, order: int, alloc_success: bool) -> None:
    """``compaction_defer_reset``: a success at ``order`` ends deferral up to it."""
    if alloc_success:
        z.compact_considered = 0
        z.compact_defer_shift = 0
    if order >= z.compact_order_failed:
        z.compact_order_failed = order + 1


def gfp_compaction_allowed(gfp: int) -> bool:
    """``gfp_compaction_allowed``: compaction needs ``__GFP_IO``."""
    return bool(gfp & __GFP_IO)


def compact_gap(order: int) -> int:
    """``compact_gap``: free pages compaction needs as migration targets (2 × the request)."""
    return 2 << order


def __compaction_suitable(z, order: int, free_pages: int) -> bool:
    """``__compaction_suitable``: order-0 watermark (low for costly orders, else min) plus
    ``compact_gap`` must hold for there to be migration targets."""
    wmark = z.watermark[page_alloc.WMARK_LOW if order > page_alloc.PAGE_ALLOC_COSTLY_ORDER
                        else page_alloc.WMARK_MIN]
    return page_alloc.__zone_watermark_ok(z, 0, wmark + compact_gap(order), 0, free_pages)


def compaction_zonelist_suitable(pgdat, order: int) -> bool:
    """``compaction_zonelist_suitable``: suitable if reclaim freed all reclaimable pages."""
    z = pgdat.zone
    return __compaction_suitable(z, order, z.free_pages + pgdat.reclaimable_pages())


def should_compact_retry(pgdat, order: int, compact_result: str, compact_priority: int,
                         compaction_retries: int) -> tuple[bool, int, int]:
    """``should_compact_retry``: skipped → retry if reclaim could make it suitable; success
    (lost a race) → up to 16 retries (4 for costly orders); failure → raise the priority down
    to the minimum. Returns (retry, priority, retries)."""
    if not order:
        return False, compact_priority, compaction_retries
    if compact_result == COMPACT_SKIPPED:
        return compaction_zonelist_suitable(pgdat, order), compact_priority, compaction_retries
    if compact_result == COMPACT_SUCCESS:
        max_retries = MAX_COMPACT_RETRIES
        if order > page_alloc.PAGE_ALLOC_COSTLY_ORDER:
            max_retries //= 4
        compaction_retries += 1
        if compaction_retries <= max_retries:
            return True, compact_priority, compaction_retries
    min_priority = (MIN_COMPACT_COSTLY_PRIORITY if order > page_alloc.PAGE_ALLOC_COSTLY_ORDER
                    else MIN_COMPACT_PRIORITY)
    if compact_priority > min_priority:
        return True, compact_priority - 1, 0
    return False, compact_priority, compaction_retries


def folio_movable(pgdat, pfn: int, prio: int) -> bool:
    """``isolate_migratepages_block``'s test: an LRU folio with an owner, not under writeback;
    async compaction leaves dirty file folios alone."""
    flags = pgdat.mem_map.flags[pfn]
    if not flags & PG_lru or flags & (PG_writeback | PG_slab):
        return False
    if prio == COMPACT_PRIO_ASYNC and flags & PG_dirty and not flags & PG_anon:
        return False
    return pgdat.mem_map.owner[pfn] > 0


def scan_candidate(pgdat, start: int, order: int, prio: int) -> tuple[list[int], list[int]] | None:
    """Frames of the candidate block: (movable folio heads, free block heads), or None if an
    unmovable block pins it."""
    mm = pgdat.mem_map
    flags_a, order_a = mm.flags, mm.order
    end = start + (1 << order)
    movable, free = [], []
    pfn = start
    while pfn < end:
        flags = flags_a[pfn]
        if flags & PG_buddy:
            free.append(pfn)
        elif flags & PG_head and pfn + (1 << order_a[pfn]) <= end:
            if not folio_movable(pgdat, pfn, prio):
                return None
            movable.append(pfn)
        else:
            return None     # tail of a larger block
        pfn += 1 << order_a[pfn]
    return movable, free


def migrate_folio(pgdat, src: int, dst: int) -> None:
    """``migrate_pages`` for one folio: copy its state to ``dst``, re-point the owner and the
    LRU at it; ``src`` is left an ownerless allocated block for the caller to free."""
    from .anon import mm_struct
    mm = pgdat.mem_map
    owner_id = mm.owner[src]
    index = mm.index[src]
    mm.flags[dst] = mm.flags[src]
    mm.owner[dst] = owner_id
    mm.index[dst] = index
    lru_replace(pgdat, src, dst)
    owner = pgdat.owners[owner_id]
    if isinstance(owner, mm_struct):
        owner.pages[index] = dst
    else:
        owner.i_pages[index] = dst
    mm.flags[src] = PG_head
    mm.owner[src] = 0


def compact_block(pgdat, movable: list[int], free: list[int]) -> int:
    """Isolate the block's free pages, migrate its folios out (targets come from outside:
    everything inside stays isolated until the end), then release it all. Returns pages
    migrated; all of ``movable`` moved iff it equals their size."""
    fa = pgdat.zone.free_area
    mm = pgdat.mem_map
    for pfn in free:
        fa.isolate_free_block(pfn)
    done: list[int] = []
    for src in movable:
        dst = fa.rmqueue_smallest(mm.order[src])
        if dst is None:
            break
        migrate_folio(pgdat, src, dst)
        done.append(src)
    migrated = sum(1 << mm.order[p] for p in done)
    for pfn in free + done:
        fa.free_one_page(pfn, mm.order[pfn])
    return migrated


def try_to_compact_pages(pgdat, gfp: int, order: int, alloc_flags: int, prio: int):
    """``try_to_compact_pages`` → ``compact_zone``: returns a ``COMPACT_*`` result; success
    means a free block of ``order`` now exists."""
    z = pgdat.zone
    if not gfp_compaction_allowed(gfp):
        return COMPACT_SKIPPED
    if prio > MIN_COMPACT_PRIORITY and compaction_deferred(z, order):
        return COMPACT_DEFERRED
    if not __compaction_suitable(z, order, z.free_pages):
        return COMPACT_SKIPPED
    mark = z.watermark[alloc_flags & page_alloc.ALLOC_WMARK_MASK]
    if page_alloc.zone_watermark_ok(z, order, mark, alloc_flags):
        compaction_defer_reset(z, order, False)
        return COMPACT_SUCCESS
    size = 1 << order
    nblocks = pgdat.nr_pages >> order
    start = (z.compact_cached_migrate_pfn >> order) % nblocks
    budget = min(CANDIDATES[prio], nblocks)
    scanned = migrated = 0
    result = COMPACT_COMPLETE if budget == nblocks else COMPACT_PARTIAL_SKIPPED
    for i in range(budget):
        block = ((start + i) % nblocks) * size
        scanned += size
        found = scan_candidate(pgdat, block, order, prio)
        if found is None or not found[0]:
            continue
        movable, free = found
        want = sum(1 << pgdat.mem_map.order[p] for p in movable)
        moved = compact_block(pgdat, movable, free)
        migrated += moved
        if moved == want:
            z.compact_cached_migrate_pfn = block + size
            result = COMPACT_SUCCESS
            break
    else:
        z.compact_cached_migrate_pfn = ((start + budget) % nblocks) * size
    if result == COMPACT_SUCCESS:
        compaction_defer_reset(z, order, False)
    elif prio != COMPACT_PRIO_ASYNC:
        defer_compaction(z, order)
    yield Run(COMPACT_SCAN_NS * scanned + MIGRATE_PAGE_NS * migrated)
    return result
