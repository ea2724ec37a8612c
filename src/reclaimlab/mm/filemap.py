"""The page cache (``mm/filemap.c``, ``mm/truncate.c``, ``mm/page-writeback.c``).

An ``address_space`` maps folio indices to head pfns (``i_pages``); folio state lives in
``mem_map`` flags, so a mapping costs one dict entry per folio and no Python object per page.
``folio`` is a light handle (mapping, index) resolved through ``i_pages`` at each access, so
it stays valid when compaction migrates the folio and reads as clean/not-uptodate once the
folio was removed. Every folio of a mapping has order ``min_order`` (bs > PS,
``mapping_set_folio_min_order``); indices are in pages and aligned down to the folio.

Writeback is the owner's: ``mapping.a_ops.writepages(mapping, nr)`` is called by the flusher
threads (VFS), which use ``filemap_dirty_folios``, ``folio_clear_dirty_for_io``,
``folio_start_writeback`` and ``folio_end_writeback``. Reclaim never writes.

Simplified: no xarray node allocations, no readahead state, no folio locks or refcounts (a
folio under writeback is pinned by its ``PG_writeback``; truncation detaches such a folio and
its frame is freed when the writeback ends).
"""

from __future__ import annotations

import heapq

from reclaimlab.sim import WaitQueue, wait_event, wake_up

from . import page_alloc
from .gfp import GFP_HIGHUSER_MOVABLE
from .mm_types import (
    PG_dirty, PG_lru, PG_reclaim, PG_referenced, PG_uptodate, PG_writeback,
)
from .swap import folio_add_lru, folio_mark_accessed_pfn, folio_rotate_reclaimable, \
    lruvec_del_folio
from .vmscan import __acct_reclaim_writeback

FGP_ACCESSED = 1 << 0
FGP_CREAT = 1 << 1


class address_space:
    """``struct address_space``: the page cache of an inode or a block device."""

    def __init__(self, sim, host: object, min_order: int = 0) -> None:
        self.sim = sim
        self.pgdat = sim.pgdat
        self.host = host
        self.min_order = min_order
        self.id = self.pgdat.register_owner(self)
        self.i_pages: dict[int, int] = {}       # folio index -> head pfn
        self.dirty: dict[int, None] = {}        # PAGECACHE_TAG_DIRTY
        self.private: dict[int, object] = {}    # folio->private (buffer heads) by index
        self.orphans: dict[int, int] = {}       # truncated while under writeback: index -> pfn
        self.nrpages = 0
        self.nr_writeback = 0
        self.released = False
        self.dirtied_when: int | None = None    # the host inode's, for the block device's
        self.a_ops = None
        self.gfp_mask = GFP_HIGHUSER_MOVABLE
        self.wb_wait = WaitQueue("folio_wait_writeback")

    def folio_index(self, index: int) -> int:
        return index & ~((1 << self.min_order) - 1)

    def __repr__(self) -> str:
        return f"address_space({self.host!r})"


class folio:
    """A handle on the folio at ``index`` of ``mapping`` (state in ``mem_map``)."""

    __slots__ = ("mapping", "index")

    def __init__(self, mapping: address_space, index: int) -> None:
        self.mapping = mapping
        self.index = index

    @property
    def order(self) -> int:
        return self.mapping.min_order

    @property
    def pfn(self) -> int | None:
        m = self.mapping
        pfn = m.i_pages.get(self.index)
        return m.orphans.get(self.index) if pfn is None else pfn

    def _test(self, bit: int) -> bool:
        pfn = self.pfn
        return pfn is not None and bool(self.mapping.pgdat.mem_map.flags[pfn] & bit)

    @property
    def uptodate(self) -> bool:
        return self._test(PG_uptodate)

    @uptodate.setter
    def uptodate(self, value: bool) -> None:
        pfn = self.pfn
        if pfn is not None:
            flags = self.mapping.pgdat.mem_map.flags
            flags[pfn] = flags[pfn] | PG_uptodate if value else flags[pfn] & ~PG_uptodate

    @property
    def dirty(self) -> bool:
        return self._test(PG_dirty)

    @property
    def writeback(self) -> bool:
        return self._test(PG_writeback)

    @property
    def private(self) -> object:
        return self.mapping.private.get(self.index)

    @private.setter
    def private(self, value: object) -> None:
        if value is None:
            self.mapping.private.pop(self.index, None)
        else:
            self.mapping.private[self.index] = value

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, folio) and other.mapping is self.mapping
                and other.index == self.index)

    def __hash__(self) -> int:
        return hash((self.mapping.id, self.index))

    def __repr__(self) -> str:
        return f"folio({self.mapping.host!r}, index={self.index}, order={self.order})"


# ------------------------------------------------------------------------ insert / lookup
def filemap_add_folio(mapping: address_space, pfn: int, index: int) -> None:
    """``filemap_add_folio``: insert a new folio and put it on the inactive file LRU."""
    pgdat = mapping.pgdat
    order = mapping.min_order
    page_alloc.claim_block(pgdat, pfn, order, mapping.id, index)
    mapping.i_pages[index] = pfn
    mapping.nrpages += 1 << order
    pgdat.nr_file_pages += 1 << order
    folio_add_lru(pgdat, pfn)


def filemap_get_folio(mapping: address_space, index: int, gfp: int, create: bool = True):
    """The lookup-or-create used by the fs (``filemap_grab_folio``-like): ``yield from`` it;
    returns a folio, or None if absent and not created (or the allocation failed)."""
    fgp = FGP_ACCESSED | (FGP_CREAT if create else 0)
    return (yield from __filemap_get_folio(mapping, index, fgp, gfp))


def __filemap_get_folio(mapping: address_space, index: int, fgp_flags: int, gfp: int):
    """``__filemap_get_folio``: find the folio; with ``FGP_CREAT`` allocate one of the
    mapping's minimum order (``__GFP_NOFAIL`` callers included: ``__getblk_slow``) and add it.
    A racing insert while we slept in the allocator wins; our block is freed."""
    index = mapping.folio_index(index)
    pfn = mapping.i_pages.get(index)
    if pfn is None:
        if not fgp_flags & FGP_CREAT:
            return None
        pfn = yield from page_alloc.alloc_pages(gfp, mapping.min_order)
        if pfn is None:
            return None
        raced = mapping.i_pages.get(index)
        if raced is not None:
            page_alloc.__free_pages_ok(mapping.pgdat, pfn, mapping.min_order)
            pfn = raced
        else:
            filemap_add_folio(mapping, pfn, index)
    if fgp_flags & FGP_ACCESSED:
        folio_mark_accessed_pfn(mapping.pgdat, pfn)
    return folio(mapping, index)


def folio_mark_accessed(f: folio) -> None:
    """``folio_mark_accessed``."""
    pfn = f.mapping.i_pages.get(f.index)
    if pfn is not None:
        folio_mark_accessed_pfn(f.mapping.pgdat, pfn)


def page_cache_ra_unbounded(mapping: address_space, index: int, nr_pages: int, gfp: int):
    """``page_cache_ra_unbounded``: make [index, index + nr_pages) present and uptodate,
    allocating missing folios in bulk (the read IO itself is the caller's). Returns the pages
    now present (less than asked only if an allocation failed)."""
    present = 0
    step = 1 << mapping.min_order
    pgdat = mapping.pgdat
    flags = pgdat.mem_map.flags
    idx = mapping.folio_index(index)
    end = index + nr_pages
    batch: list[int] = []
    while idx < end:
        pfn = mapping.i_pages.get(idx)
        if pfn is None:
            if mapping.min_order == 0:
                if not batch:
                    missing = sum(1 for i in range(idx, min(end, idx + 64))
                                  if i not in mapping.i_pages)
                    got = yield from page_alloc.alloc_pages_bulk(gfp, missing, batch)
                    if not got:
                        return present
                    batch.reverse()
                pfn = batch.pop()
            else:
                pfn = yield from page_alloc.alloc_pages(gfp, mapping.min_order)
                if pfn is None:
                    return present
            filemap_add_folio(mapping, pfn, idx)
        flags[pfn] |= PG_uptodate
        present += step
        idx += step
    for pfn in batch:
        page_alloc.__free_pages_ok(pgdat, pfn, 0)
    return present


WRITE_CHUNK_PAGES = 16


def generic_perform_write(mapping: address_space, index: int, nr_pages: int, gfp: int):
    """``generic_perform_write``: for each folio of the range, ``write_begin`` (get or create
    it), copy, ``write_end`` (uptodate, accessed, dirty). Folios are created
    ``WRITE_CHUNK_PAGES`` at a time and dirtied right after, so reclaim never sees a written
    folio clean. Returns the pages written."""
    step = 1 << mapping.min_order
    chunk = max(WRITE_CHUNK_PAGES, step)
    idx = mapping.folio_index(index)
    end = index + nr_pages
    written = 0
    while idx < end:
        n = min(chunk, end - idx)
        got = yield from page_cache_ra_unbounded(mapping, idx, n, gfp)
        stop = idx + got
        while idx < stop:
            f = folio(mapping, idx)
            folio_mark_accessed(f)
            folio_mark_dirty(f)
            written += step
            idx += step
        if got < n:
            break
    return written


# ------------------------------------------------------------------------ dirty / writeback
def folio_mark_dirty(f: folio) -> bool:
    """``folio_mark_dirty`` → ``filemap_dirty_folio``: set ``PG_dirty``, tag it, account it;
    then ``a_ops.dirty_folio(folio)`` if the owner wants to hear (``__mark_inode_dirty``).
    Returns True if the folio was newly dirtied."""
    m = f.mapping
    pfn = m.i_pages.get(f.index)
    if pfn is None:
        return False
    mm = m.pgdat.mem_map
    if mm.flags[pfn] & PG_dirty:
        return False
    mm.flags[pfn] |= PG_dirty
    m.dirty[f.index] = None
    m.pgdat.nr_dirty += 1 << m.min_order
    hook = getattr(m.a_ops, "dirty_folio", None)
    if hook is not None:
        hook(f)
    return True


def filemap_dirty_folios(mapping: address_space, nr: int) -> list[folio]:
    """Up to ``nr`` dirty folios in index order (the ``PAGECACHE_TAG_DIRTY`` walk of
    ``writeback_iter``)."""
    return [folio(mapping, i) for i in heapq.nsmallest(nr, mapping.dirty)]


def folio_clear_dirty_for_io(f: folio) -> bool:
    """``folio_clear_dirty_for_io``: clear ``PG_dirty`` before writing; True if it was dirty."""
    m = f.mapping
    pfn = m.i_pages.get(f.index)
    if pfn is None:
        return False
    mm = m.pgdat.mem_map
    if not mm.flags[pfn] & PG_dirty:
        return False
    mm.flags[pfn] &= ~PG_dirty
    del m.dirty[f.index]
    m.pgdat.nr_dirty -= 1 << m.min_order
    return True


def folio_start_writeback(f: folio) -> None:
    """``folio_start_writeback``."""
    m = f.mapping
    pfn = m.i_pages[f.index]
    mm = m.pgdat.mem_map
    if mm.flags[pfn] & PG_writeback:
        raise ValueError(f"{f!r} already under writeback")
    mm.flags[pfn] |= PG_writeback
    m.nr_writeback += 1
    m.pgdat.nr_writeback += 1 << m.min_order


def folio_end_writeback(f: folio) -> None:
    """``folio_end_writeback``: clear ``PG_writeback``; a folio reclaim wanted rotates to the
    inactive tail; throttled reclaimers are credited; waiters wake. A folio truncated meanwhile
    is freed now."""
    m = f.mapping
    pgdat = m.pgdat
    mm = pgdat.mem_map
    nr = 1 << m.min_order
    orphan = m.orphans.pop(f.index, None)
    pfn = orphan if orphan is not None else m.i_pages[f.index]
    mm.flags[pfn] &= ~PG_writeback
    m.nr_writeback -= 1
    pgdat.nr_writeback -= nr
    if orphan is not None:
        pgdat.nr_file_pages -= nr
        page_alloc.__free_pages_ok(pgdat, pfn, m.min_order)
        if m.released and not m.orphans:
            pgdat.unregister_owner(m.id)
    elif mm.flags[pfn] & PG_reclaim:
        folio_rotate_reclaimable(pgdat, pfn)
    __acct_reclaim_writeback(pgdat, nr)
    if m.wb_wait.waiters:
        wake_up(m.wb_wait)


def folio_wait_writeback(f: folio):
    """``folio_wait_writeback``: sleep until the folio is not under writeback."""
    yield from wait_event(f.mapping.wb_wait, lambda: not f.writeback)


def filemap_fdatawait(mapping: address_space):
    """``filemap_fdatawait``: wait until no folio of the mapping is under writeback."""
    yield from wait_event(mapping.wb_wait, lambda: mapping.nr_writeback == 0)


# ------------------------------------------------------------------------ removal
def __filemap_remove_folio(mapping: address_space, pfn: int, index: int) -> None:
    """``__filemap_remove_folio`` + ``filemap_unaccount_folio``: off the LRU and the mapping."""
    pgdat = mapping.pgdat
    mm = pgdat.mem_map
    nr = 1 << mapping.min_order
    flags = mm.flags[pfn]
    if flags & PG_lru:
        lruvec_del_folio(pgdat, pfn)
    if flags & PG_dirty:
        mapping.dirty.pop(index, None)
        pgdat.nr_dirty -= nr
    mm.flags[pfn] = mm.flags[pfn] & ~(PG_dirty | PG_referenced | PG_reclaim)
    del mapping.i_pages[index]
    mapping.private.pop(index, None)
    mapping.nrpages -= nr
    if not flags & PG_writeback:
        pgdat.nr_file_pages -= nr


def filemap_release_folio(mapping: address_space, index: int) -> bool:
    """``filemap_release_folio``: a folio with private data (buffer heads) may be freed only if
    the owner's ``a_ops.release_folio(folio) -> bool`` agrees (``try_to_free_buffers`` fails
    for dirty, locked or journalled buffers). Without the hook the private data is dropped."""
    if index not in mapping.private:
        return True
    hook = getattr(mapping.a_ops, "release_folio", None)
    return hook is None or bool(hook(folio(mapping, index)))


def __remove_mapping(mapping: address_space, pfn: int) -> None:
    """``__remove_mapping`` for reclaim: a clean folio (already off the LRU) leaves the page
    cache and its frames are freed."""
    index = mapping.pgdat.mem_map.index[pfn]
    __filemap_remove_folio(mapping, pfn, index)
    page_alloc.__free_pages_ok(mapping.pgdat, pfn, mapping.min_order)


def truncate_inode_pages(mapping: address_space, lstart: int = 0) -> int:
    """``truncate_inode_pages``: remove every folio at or past page ``lstart`` (dirty ones are
    dropped); a folio with private data is first offered to ``a_ops.invalidate_folio(folio)``
    if the owner has it (``folio_invalidate``: buffers are discarded). A folio under writeback is detached now and freed when its IO ends (the kernel
    waits for it here; our callers cannot block at this point of the contract). Returns pages
    removed."""
    pgdat = mapping.pgdat
    removed = 0
    invalidate = getattr(mapping.a_ops, "invalidate_folio", None)
    for index in [i for i in mapping.i_pages if i >= mapping.folio_index(lstart)]:
        if invalidate is not None and index in mapping.private:
            invalidate(folio(mapping, index))
        pfn = mapping.i_pages[index]
        writeback = pgdat.mem_map.flags[pfn] & PG_writeback
        __filemap_remove_folio(mapping, pfn, index)
        if writeback:
            mapping.orphans[index] = pfn
        else:
            page_alloc.__free_pages_ok(pgdat, pfn, mapping.min_order)
        removed += 1 << mapping.min_order
    return removed


def invalidate_mapping_pages(mapping: address_space, start: int = 0,
                             end: int | None = None) -> int:
    """``invalidate_mapping_pages``: drop the clean, idle folios in [start, end]; dirty and
    writeback ones, and those whose private data cannot be released, stay. Freed pages count
    as reclaimed for a reclaimer calling this (``inode_lru_isolate`` credits them). Returns
    pages freed."""
    pgdat = mapping.pgdat
    mm = pgdat.mem_map
    freed = 0
    for index in [i for i in mapping.i_pages if i >= start and (end is None or i <= end)]:
        pfn = mapping.i_pages[index]
        if mm.flags[pfn] & (PG_dirty | PG_writeback) or not filemap_release_folio(mapping,
                                                                                  index):
            continue
        __filemap_remove_folio(mapping, pfn, index)
        page_alloc.free_pages(pfn, mapping.min_order, pgdat)
        freed += 1 << mapping.min_order
    return freed


def mapping_release(mapping: address_space) -> None:
    """Forget the mapping once its inode is gone (its pages must have been truncated); with
    truncated folios still under writeback, when the last of them completes."""
    if mapping.i_pages:
        raise ValueError(f"{mapping!r} released with {mapping.nrpages} pages cached")
    mapping.released = True
    if not mapping.orphans:
        mapping.pgdat.unregister_owner(mapping.id)


