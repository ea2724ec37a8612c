"""The buddy allocator of one zone (``mm/page_alloc.c``: ``__rmqueue_smallest``, ``expand``,
``__free_one_page``).

Free lists per order 0..``MAX_PAGE_ORDER`` hold the head pfns of free blocks; a block of order
``o`` is ``2**o`` frames aligned to its size. Allocation takes the smallest sufficient block and
splits it, returning the upper halves to the lower free lists (``expand``); freeing merges with
the buddy (``pfn ^ (1 << order)``) while it is a free block of the same order. High-order
failure thus comes from real fragmentation.

Simplified: one migratetype (no pageblock migratetypes, no per-CPU page lists, no highatomic
reserve); a free list is an insertion-ordered dict used as a LIFO stack, so the most recently
freed (cache-hot) block is reused first, as the kernel does, and runs are deterministic.
"""

from __future__ import annotations

import numpy as np

from .mm_types import PG_buddy, PG_head, MemMap

MAX_PAGE_ORDER = 10
NR_PAGE_ORDERS = MAX_PAGE_ORDER + 1


class free_area:
    """A zone's ``free_area[]``: per-order free lists over a ``MemMap``."""

    __slots__ = ("mem_map", "free_lists", "nr_free", "nr_pages")

    def __init__(self, mem_map: MemMap) -> None:
        self.mem_map = mem_map
        self.nr_pages = mem_map.nr_pages
        self.free_lists: list[dict[int, None]] = [{} for _ in range(NR_PAGE_ORDERS)]
        self.nr_free = 0
        pfn = 0
        # memblock_free_all: hand every frame to the buddy in the largest aligned blocks.
        while pfn < self.nr_pages:
            order = MAX_PAGE_ORDER
            while order and (pfn & ((1 << order) - 1) or pfn + (1 << order) > self.nr_pages):
                order -= 1
            self._add_free(pfn, order)
            pfn += 1 << order

    def _add_free(self, pfn: int, order: int) -> None:
        mm = self.mem_map
        mm.flags[pfn] = PG_buddy
        mm.order[pfn] = order
        self.free_lists[order][pfn] = None
        self.nr_free += 1 << order

    def _del_free(self, pfn: int, order: int) -> None:
        del self.free_lists[order][pfn]
        self.mem_map.flags[pfn] = 0
        self.nr_free -= 1 << order

    def has_block(self, order: int) -> bool:
        """A free block of at least ``order`` exists (the order>0 part of the watermark test)."""
        lists = self.free_lists
        for o in range(order, NR_PAGE_ORDERS):
            if lists[o]:
                return True
        return False

    def rmqueue_smallest(self, order: int) -> int | None:
        """``__rmqueue_smallest`` + ``expand``: take the smallest free block ≥ ``order``."""
        lists = self.free_lists
        for o in range(order, NR_PAGE_ORDERS):
            free_list = lists[o]
            if free_list:
                pfn = free_list.popitem()[0]  # the most recently freed block (LIFO)
                self.nr_free -= 1 << o
                while o > order:
                    o -= 1
                    self._add_free(pfn + (1 << o), o)
                self._mark_allocated(pfn, order)
                return pfn
        return None

    def isolate_free_block(self, pfn: int) -> int:
        """Take the free block headed at ``pfn`` off its free list (``__isolate_free_page``),
        leaving it marked allocated at its order; ``free_one_page`` puts it back. Returns its
        order."""
        order = self.mem_map.order[pfn]
        self._del_free(pfn, order)
        self._mark_allocated(pfn, order)
        return order

    def _mark_allocated(self, pfn: int, order: int) -> None:
        mm = self.mem_map
        mm.flags[pfn] = PG_head
        mm.order[pfn] = order
        mm.owner[pfn] = 0

    def free_one_page(self, pfn: int, order: int) -> None:
        """``__free_one_page``: free the block and merge with free buddies as far as possible."""
        mm = self.mem_map
        if not 0 <= pfn < self.nr_pages or mm.flags[pfn] & PG_head == 0 or mm.order[pfn] != order:
            raise ValueError(f"free_pages({pfn}, {order}): not an allocated block of that order "
                             f"(bad free or double free)")
        flags, orders, nr, lists = mm.flags, mm.order, self.nr_pages, self.free_lists
        flags[pfn] = 0
        freed = 1 << order
        while order < MAX_PAGE_ORDER:
            buddy = pfn ^ (1 << order)
            if buddy + (1 << order) > nr or not flags[buddy] & PG_buddy or orders[buddy] != order:
                break
            del lists[order][buddy]  # merged: the buddy leaves its free list
            flags[buddy] = 0
            pfn &= buddy
            order += 1
        flags[pfn] = PG_buddy
        orders[pfn] = order
        lists[order][pfn] = None
        self.nr_free += freed

    def check_invariants(self) -> list[str]:
        """Every frame is in exactly one block; free lists match the frames; merges complete."""
        out: list[str] = []
        mm = self.mem_map
        flags = np.frombuffer(mm.flags, dtype=np.uint16)
        orders = np.frombuffer(bytes(mm.order), dtype=np.uint8).astype(np.int64)
        heads = np.nonzero(flags & (PG_buddy | PG_head))[0]
        sizes = np.left_shift(1, orders[heads])
        ends = heads + sizes
        if len(heads) and ends[-1] > self.nr_pages:
            out.append(f"block at pfn {heads[-1]} runs past the end of the zone")
        if len(heads) > 1 and np.any(ends[:-1] > heads[1:]):
            bad = int(heads[1:][ends[:-1] > heads[1:]][0])
            out.append(f"overlapping blocks at pfn {bad}")
        covered = int(sizes.sum())
        if covered != self.nr_pages:
            out.append(f"blocks cover {covered} frames, zone has {self.nr_pages}")
        if np.any(heads & (sizes - 1)):
            out.append("misaligned block")
        free_heads = heads[(flags[heads] & PG_buddy) != 0]
        listed = sum(len(fl) for fl in self.free_lists)
        if listed != len(free_heads):
            out.append(f"{listed} blocks on free lists, {len(free_heads)} free heads in mem_map")
        counted = int(np.left_shift(1, orders[free_heads]).sum())
        if counted != self.nr_free:
            out.append(f"nr_free {self.nr_free} but free blocks hold {counted} frames")
        for o, fl in enumerate(self.free_lists):
            for pfn in fl:
                if not mm.flags[pfn] & PG_buddy or mm.order[pfn] != o:
                    out.append(f"free list {o} holds pfn {pfn} not marked free of that order")
                    break
                buddy = pfn ^ (1 << o)
                if o < MAX_PAGE_ORDER and buddy in fl:
                    out.append(f"unmerged buddies {pfn} and {buddy} at order {o}")
                    break
        return out
