"""LRU lists of folios (``mm/swap.c``, ``include/linux/mm_inline.h``).

Each folio's head frame is linked into one of the node's four evictable lists through
``mem_map.lru_next/lru_prev``; list heads are sentinel slots. New folios start on the inactive
list (``folio_add_lru``); ``folio_mark_accessed`` implements the two-touch promotion: a first
access sets ``PG_referenced``, a second one activates the folio. The reclaim side (scanning from
the tail, deactivation) is in ``vmscan``.

Simplified: no per-CPU LRU batches (``folio_batch``), no unevictable list, no workingset
refault detection, no MGLRU.
"""

from __future__ import annotations

from typing import Sequence

from .mm_types import (
    LRU_ACTIVE_ANON, LRU_ACTIVE_FILE, LRU_INACTIVE_ANON, LRU_INACTIVE_FILE, PG_active, PG_anon,
    PG_lru, PG_reclaim, PG_referenced, PG_writeback,
)


def folio_lru_list(flags: int) -> int:
    """``folio_lru_list``: which list a folio with these flags belongs on."""
    if flags & PG_anon:
        return LRU_ACTIVE_ANON if flags & PG_active else LRU_INACTIVE_ANON
    return LRU_ACTIVE_FILE if flags & PG_active else LRU_INACTIVE_FILE


def lruvec_add_folio(pgdat, pfn: int, tail: bool = False) -> None:
    """``lruvec_add_folio`` (head) / ``lruvec_add_folio_tail``."""
    mm = pgdat.mem_map
    lru = folio_lru_list(mm.flags[pfn])
    head = mm.nr_pages + lru
    nxt, prv = mm.lru_next, mm.lru_prev
    if tail:
        last = prv[head]
        nxt[last] = pfn
        prv[pfn] = last
        nxt[pfn] = head
        prv[head] = pfn
    else:
        first = nxt[head]
        prv[first] = pfn
        nxt[pfn] = first
        prv[pfn] = head
        nxt[head] = pfn
    mm.flags[pfn] |= PG_lru
    pgdat.nr_lru[lru] += 1 << mm.order[pfn]


def lruvec_del_folio(pgdat, pfn: int) -> None:
    """``lruvec_del_folio``: unlink from its list (``PG_lru`` cleared)."""
    mm = pgdat.mem_map
    flags = mm.flags[pfn]
    nxt, prv = mm.lru_next, mm.lru_prev
    n, p = nxt[pfn], prv[pfn]
    nxt[p] = n
    prv[n] = p
    mm.flags[pfn] = flags & ~PG_lru
    pgdat.nr_lru[folio_lru_list(flags)] -= 1 << mm.order[pfn]


def folio_add_lru(pgdat, pfn: int) -> None:
    """``folio_add_lru``: a new folio goes to the head of its inactive list."""
    folio_batch_add_lru(pgdat, (pfn,))


def folio_batch_add_lru(pgdat, pfns: Sequence[int]) -> None:
    """``folio_add_lru`` of each folio of ``pfns`` in order, as the kernel's per-CPU batch
    drains them (``folio_batch_move_lru`` → ``lru_add``): list links and counters are looked
    up once per batch, which the anonymous fault path, one call per faulted page, needs."""
    mm = pgdat.mem_map
    flags, orders, nxt, prv = mm.flags, mm.order, mm.lru_next, mm.lru_prev
    nr_lru, heads = pgdat.nr_lru, mm.nr_pages
    for pfn in pfns:
        f = flags[pfn] & ~(PG_active | PG_referenced)
        lru = LRU_INACTIVE_ANON if f & PG_anon else LRU_INACTIVE_FILE  # folio_lru_list
        head = heads + lru
        first = nxt[head]
        prv[first] = pfn
        nxt[pfn] = first
        prv[pfn] = head
        nxt[head] = pfn
        flags[pfn] = f | PG_lru
        nr_lru[lru] += 1 << orders[pfn]


def folio_activate(pgdat, pfn: int) -> None:
    """``folio_activate``: move an inactive LRU folio to the active list."""
    mm = pgdat.mem_map
    flags = mm.flags[pfn]
    if flags & PG_lru and not flags & PG_active:
        lruvec_del_folio(pgdat, pfn)
        mm.flags[pfn] |= PG_active
        lruvec_add_folio(pgdat, pfn)


def folio_mark_accessed_pfn(pgdat, pfn: int) -> None:
    """``folio_mark_accessed``: inactive,unreferenced → inactive,referenced →
    active,unreferenced; an active folio just gets ``PG_referenced``."""
    mm = pgdat.mem_map
    flags = mm.flags[pfn]
    if not flags & PG_referenced:
        mm.flags[pfn] = flags | PG_referenced
    elif not flags & PG_active and flags & PG_lru:
        folio_activate(pgdat, pfn)
        mm.flags[pfn] &= ~PG_referenced


def folio_rotate_reclaimable(pgdat, pfn: int) -> None:
    """``folio_rotate_reclaimable``: a folio reclaim wanted (``PG_reclaim``) whose writeback
    ended moves to the tail of the inactive list, to be freed by the next scan."""
    mm = pgdat.mem_map
    flags = mm.flags[pfn]
    if flags & PG_lru and not flags & PG_writeback:
        lruvec_del_folio(pgdat, pfn)
        mm.flags[pfn] &= ~(PG_active | PG_reclaim)
        lruvec_add_folio(pgdat, pfn, tail=True)


def lru_tail(pgdat, lru: int) -> int:
    """The tail folio of a list, or -1 if the list is empty."""
    mm = pgdat.mem_map
    head = mm.nr_pages + lru
    pfn = mm.lru_prev[head]
    return -1 if pfn == head else pfn


def lru_replace(pgdat, old: int, new: int) -> None:
    """Put folio ``new`` at ``old``'s place in its LRU list (migration)."""
    mm = pgdat.mem_map
    nxt, prv = mm.lru_next, mm.lru_prev
    n, p = nxt[old], prv[old]
    nxt[p] = new
    prv[n] = new
    nxt[new] = n
    prv[new] = p
