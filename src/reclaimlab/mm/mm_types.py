"""``struct page`` as parallel arrays indexed by page frame number (the kernel's ``mem_map``).

One Python object per 4 KiB frame would not fit a 16 GiB machine in host memory, so each field
of ``struct page`` is a typed array (``array``/``bytearray``: compact, and fast to index from
Python). Only the head frame of a block (free buddy block, folio, slab) carries its fields, as in
the kernel's compound pages. The LRU ``list_head`` is ``lru_next``/``lru_prev``; the list heads
themselves are extra slots after the last frame (``lru_head(lru)``).

Page flags (``include/linux/page-flags.h``), the subset the model needs.
"""

from __future__ import annotations

from array import array

PG_buddy = 1 << 0       # head of a free buddy block (PageBuddy)
PG_head = 1 << 1        # head of an allocated block
PG_lru = 1 << 2
PG_active = 1 << 3
PG_referenced = 1 << 4
PG_dirty = 1 << 5
PG_writeback = 1 << 6
PG_uptodate = 1 << 7
PG_reclaim = 1 << 8
PG_anon = 1 << 9        # folio_test_anon: owner is an mm_struct, index its slot there
PG_slab = 1 << 10
PG_swapbacked = 1 << 11
PG_private = 1 << 12

# enum lru_list
LRU_INACTIVE_ANON = 0
LRU_ACTIVE_ANON = 1
LRU_INACTIVE_FILE = 2
LRU_ACTIVE_FILE = 3
NR_LRU_LISTS = 4
LRU_NAMES = ("inactive_anon", "active_anon", "inactive_file", "active_file")


class MemMap:
    """The frames of one node: ``flags``, ``order``, ``owner``, ``index`` and LRU links."""

    __slots__ = ("nr_pages", "flags", "order", "owner", "index", "lru_next", "lru_prev")

    def __init__(self, nr_pages: int) -> None:
        self.nr_pages = nr_pages
        slots = nr_pages + NR_LRU_LISTS
        self.flags = array("H", bytes(2 * nr_pages))
        self.order = bytearray(nr_pages)
        # owner: id of the address_space / mm_struct / kmem_cache owning the block (0: none).
        self.owner = array("i", bytes(4 * nr_pages))
        self.index = array("q", bytes(8 * nr_pages))
        self.lru_next = array("i", bytes(4 * slots))
        self.lru_prev = array("i", bytes(4 * slots))
        for lru in range(NR_LRU_LISTS):
            head = nr_pages + lru
            self.lru_next[head] = head
            self.lru_prev[head] = head

    def lru_head(self, lru: int) -> int:
        return self.nr_pages + lru

    def host_bytes(self) -> int:
        """Host memory held by the arrays (for the benchmark's bytes-per-frame figure)."""
        return sum(a.itemsize * len(a) for a in (self.flags, self.owner, self.index,
                                                  self.lru_next, self.lru_prev)) + len(self.order)
