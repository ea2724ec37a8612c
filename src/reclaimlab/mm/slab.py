"""Slab caches for kernel objects (``mm/slub.c``), accounted in pages.

A ``kmem_cache`` carves slabs (blocks of ``2**order`` pages) into ``objs_per_slab`` objects.
An object is an integer id ``(slab pfn << 16) | slot``; freeing the last object of a slab frees
the slab's pages (so shrinkers that free objects free memory only when whole slabs empty, the
real source of slab fragmentation). Slab order follows ``calculate_order``: the smallest order
holding ``slub_min_objects`` objects, at most ``PAGE_ALLOC_COSTLY_ORDER``; a new slab is first
tried at that order with ``__GFP_NORETRY|__GFP_NOWARN`` and without ``__GFP_NOFAIL`` or any
reclaim, then at the minimum order with the caller's flags (``allocate_slab``).

Simplified: no per-CPU slabs or partial lists per CPU, no ``min_partial`` (an empty slab is
freed at once), no object constructors, no RCU-delayed freeing.
"""

from __future__ import annotations

from . import page_alloc
from .gfp import (
    __GFP_NOFAIL, __GFP_NOMEMALLOC, __GFP_NORETRY, __GFP_NOWARN, __GFP_RECLAIM,
    __GFP_DIRECT_RECLAIM,
)
from .mm_types import PG_slab

SLAB_RECLAIM_ACCOUNT = 1 << 0
SLOT_BITS = 16


class slab:
    """``struct slab``: one block of pages and its free object slots."""

    __slots__ = ("pfn", "order", "free", "inuse")

    def __init__(self, pfn: int, order: int, objects: int) -> None:
        self.pfn = pfn
        self.order = order
        self.free = list(range(objects - 1, -1, -1))
        self.inuse = 0


class kmem_cache:
    """``struct kmem_cache``."""

    def __init__(self, sim, name: str, object_size: int, flags: int = 0) -> None:
        pgdat = sim.pgdat
        self.pgdat = pgdat
        self.name = name
        self.object_size = object_size
        self.flags = flags
        page = pgdat.page_size
        min_objects = 4 * (sim.ncpus.bit_length() + 1)
        self.min_order = max(0, (object_size - 1).bit_length() - page.bit_length() + 1)
        self.order = self.min_order
        while (self.order < page_alloc.PAGE_ALLOC_COSTLY_ORDER
               and (page << self.order) // object_size < min_objects):
            self.order += 1
        self.id = pgdat.register_owner(self)
        self.slabs: dict[int, slab] = {}
        self.partial: dict[int, None] = {}
        self.active_objs = 0
        self.nr_pages = 0

    def objects(self, order: int) -> int:
        return min((self.pgdat.page_size << order) // self.object_size, 1 << SLOT_BITS)

    def __repr__(self) -> str:
        return f"kmem_cache {self.name}"


def kmem_cache_create(sim, name: str, obj_size: int, flags: int = 0) -> kmem_cache:
    """``kmem_cache_create``."""
    if obj_size <= 0:
        raise ValueError(f"kmem_cache_create({name!r}): object size {obj_size}")
    return kmem_cache(sim, name, obj_size, flags)


def allocate_slab(cache: kmem_cache, gfp: int):
    """``allocate_slab``: the preferred order opportunistically, then the minimum order."""
    pfn = None
    order = cache.order
    if order > cache.min_order:
        try_gfp = (gfp | __GFP_NOWARN | __GFP_NORETRY) & ~__GFP_NOFAIL
        if try_gfp & __GFP_DIRECT_RECLAIM:
            try_gfp = (try_gfp | __GFP_NOMEMALLOC) & ~__GFP_RECLAIM
        pfn = yield from page_alloc.alloc_pages(try_gfp, order)
    if pfn is None:
        order = cache.min_order
        pfn = yield from page_alloc.alloc_pages(gfp, order)
        if pfn is None:
            return None
    pgdat = cache.pgdat
    page_alloc.claim_block(pgdat, pfn, order, cache.id, 0)
    pgdat.mem_map.flags[pfn] |= PG_slab
    nr = 1 << order
    cache.nr_pages += nr
    if cache.flags & SLAB_RECLAIM_ACCOUNT:
        pgdat.nr_slab_reclaimable += nr
    else:
        pgdat.nr_slab_unreclaimable += nr
    s = slab(pfn, order, cache.objects(order))
    cache.slabs[pfn] = s
    cache.partial[pfn] = None
    return s


def kmem_cache_alloc(cache: kmem_cache, gfp: int):
    """``kmem_cache_alloc``: an object from a partial slab (most recent first), else a new slab.
    ``yield from`` it; returns an object id or None."""
    page_alloc.might_alloc(gfp)
    if cache.partial:
        s = cache.slabs[next(reversed(cache.partial))]
    else:
        s = yield from allocate_slab(cache, gfp)
        if s is None:
            return None
    slot = s.free.pop()
    s.inuse += 1
    if not s.free:
        del cache.partial[s.pfn]
    cache.active_objs += 1
    return (s.pfn << SLOT_BITS) | slot


def kmem_cache_free(cache: kmem_cache, obj: int) -> None:
    """``kmem_cache_free``: return the object; an empty slab's pages go back to the buddy
    (counted as reclaimed when a reclaimer frees it, ``mm_account_reclaimed_pages``)."""
    pfn, slot = obj >> SLOT_BITS, obj & ((1 << SLOT_BITS) - 1)
    s = cache.slabs.get(pfn)
    if s is None or slot in s.free:
        raise ValueError(f"kmem_cache_free({cache.name}, {obj:#x}): not an allocated object")
    s.free.append(slot)
    s.inuse -= 1
    cache.active_objs -= 1
    if s.inuse == 0:
        discard_slab(cache, s)
    else:
        cache.partial[pfn] = None


def discard_slab(cache: kmem_cache, s: slab) -> None:
    """``discard_slab``: free an empty slab's pages."""
    pgdat = cache.pgdat
    del cache.slabs[s.pfn]
    cache.partial.pop(s.pfn, None)
    nr = 1 << s.order
    cache.nr_pages -= nr
    if cache.flags & SLAB_RECLAIM_ACCOUNT:
        pgdat.nr_slab_reclaimable -= nr
    else:
        pgdat.nr_slab_unreclaimable -= nr
    pgdat.mem_map.flags[s.pfn] &= ~PG_slab
    page_alloc.free_pages(s.pfn, s.order, pgdat)


def kmem_cache_destroy(cache: kmem_cache) -> None:
    """``kmem_cache_destroy``: every object must have been freed."""
    if cache.active_objs:
        raise ValueError(f"kmem_cache_destroy({cache.name}): {cache.active_objs} objects "
                         f"still allocated")
    cache.pgdat.unregister_owner(cache.id)
