"""Anonymous memory of user tasks (``mm/memory.c: do_anonymous_page``, ``mm/mmap.c:
exit_mmap``, the swap-out half of ``mm/vmscan.c``).

A task's ``mm_struct`` holds its resident anonymous pages as an array of pfns (slot → pfn,
``-1`` once swapped out or unmapped): 4 bytes per page. Each page is an order-0 anon folio on
the anon LRU. With no swap configured the anon LRU is never scanned, so the memory is pinned
until the task frees it or is OOM-killed. With swap, reclaim "swaps out" an unreferenced
folio: its frame is freed and a swap slot is consumed (no swap IO and no swap-in modelled).
"""

from __future__ import annotations

from array import array

import numpy as np

from reclaimlab.sim import Run, current

from . import page_alloc
from .gfp import GFP_HIGHUSER_MOVABLE
from .mm_types import PG_anon, PG_referenced, PG_swapbacked, PG_uptodate
from .swap import folio_batch_add_lru, lruvec_del_folio

# clear_page of one 4 KiB page and the PTE update (assumption: 1 us).
FAULT_NS_PER_PAGE = 1_000
# Pages faulted per allocator call (fault-around-sized batches keep the event count low).
FAULT_BATCH = 64


class mm_struct:
    """``struct mm_struct``, reduced to the anonymous pages of one task."""

    def __init__(self, sim, task) -> None:
        self.pgdat = sim.pgdat
        self.task = task
        self.id = self.pgdat.register_owner(self)
        self.pages = array("i")
        self.rss = 0
        self.swapents = 0

    def __repr__(self) -> str:
        return f"mm_struct({self.task!r}, rss={self.rss})"


def get_task_mm(task) -> mm_struct:
    """The task's mm (created on first use: the model has no fork/exec)."""
    mm = getattr(task, "mm", None)
    if mm is None:
        mm = task.mm = mm_struct(task.sim, task)
    return mm


def do_anonymous_page(mm: mm_struct, nr_pages: int, gfp: int = GFP_HIGHUSER_MOVABLE):
    """Fault in ``nr_pages`` new anonymous pages (``handle_mm_fault`` →
    ``do_anonymous_page``), in batches through ``alloc_pages_bulk``. Stops early when the task
    has been OOM-killed or an allocation fails. Returns the pages faulted in."""
    task = current()
    pgdat = mm.pgdat
    flags = pgdat.mem_map.flags
    done = 0
    batch: list[int] = []
    while done < nr_pages and not task.oom_killed:
        want = min(FAULT_BATCH, nr_pages - done)
        got = yield from page_alloc.alloc_pages_bulk(gfp, want, batch)
        if task.oom_killed:
            for pfn in batch:
                page_alloc.__free_pages_ok(pgdat, pfn, 0)
            break
        page_alloc.claim_pages(pgdat, batch, mm.id, len(mm.pages))
        mm.pages.extend(batch)
        for pfn in batch:
            flags[pfn] |= PG_anon | PG_swapbacked | PG_uptodate
        folio_batch_add_lru(pgdat, batch)
        batch.clear()
        mm.rss += got
        pgdat.nr_anon += got
        done += got
        yield Run(FAULT_NS_PER_PAGE * got)
        if not got:
            break
    return done


def mm_touch(mm: mm_struct) -> None:
    """The task touched all its memory: the hardware sets the accessed bits, which reclaim
    reads as ``PG_referenced`` (``folio_referenced``)."""
    if not mm.pages:
        return
    flags = np.frombuffer(mm.pgdat.mem_map.flags, dtype=np.uint16)
    pfns = np.frombuffer(mm.pages, dtype=np.int32)
    flags[pfns[pfns >= 0]] |= PG_referenced
    del flags, pfns     # release the buffer exports: mm.pages must stay resizable


def swap_out_folio(mm: mm_struct, pfn: int) -> None:
    """Reclaim's ``add_to_swap`` + ``try_to_unmap`` + free for one anon folio already off the
    LRU."""
    pgdat = mm.pgdat
    slot = pgdat.mem_map.index[pfn]
    mm.pages[slot] = -1
    mm.rss -= 1
    mm.swapents += 1
    pgdat.nr_anon -= 1
    pgdat.nr_swap_pages -= 1
    page_alloc.__free_pages_ok(pgdat, pfn, 0)


def exit_mmap(mm: mm_struct) -> int:
    """``exit_mmap``: free every resident page and swap slot. Returns pages freed."""
    pgdat = mm.pgdat
    freed = 0
    for pfn in mm.pages:
        if pfn >= 0:
            lruvec_del_folio(pgdat, pfn)
            page_alloc.__free_pages_ok(pgdat, pfn, 0)
            freed += 1
    pgdat.nr_anon -= freed
    pgdat.nr_swap_pages += mm.swapents
    mm.pages = array("i")
    mm.rss = 0
    mm.swapents = 0
    return freed


def mm_rss(task) -> int:
    """Resident anonymous pages of a task (0 without an mm)."""
    mm = getattr(task, "mm", None)
    return mm.rss if mm is not None else 0
