"""Shrinkers (``mm/shrinker.c``): the registry and ``do_shrink_slab``'s arithmetic.

A shrinker reports how many objects it could free (``count_objects(sc)``, a plain function)
and frees up to ``sc.nr_to_scan`` of them (``scan_objects(sc)``, a generator returning the
number freed or ``SHRINK_STOP``). The pressure put on a shrinker is proportional to its
population and the reclaim priority: ``delta = (freeable >> priority) * 4 / seeks``, plus the
work deferred by earlier callers that could not do it (``nr_deferred``), capped at twice the
population, scanned in ``batch``-sized chunks.

The registry walk takes ``shrinker_rwsem`` with ``down_read_trylock`` and skips slab shrinking
when it is contended — the pre-6.7 behaviour (6.7+ walks the list under RCU; registration here
is a plain list append, which cannot block a walk in progress since walks iterate a snapshot).
Not modelled: NUMA/memcg awareness (one node, no memcg), ``SHRINKER_NONSLAB`` differences.
"""

from __future__ import annotations

from typing import Callable

from reclaimlab.sim import cond_resched, current, down_read_trylock, up_read

DEFAULT_SEEKS = 2
SHRINK_BATCH = 128
SHRINK_STOP = (1 << 64) - 1
SHRINK_EMPTY = (1 << 64) - 2


class shrink_control:
    """``struct shrink_control``: what a shrinker is asked to do."""

    __slots__ = ("gfp_mask", "nid", "nr_to_scan", "nr_scanned", "priority", "memcg")

    def __init__(self, gfp_mask: int, priority: int) -> None:
        self.gfp_mask = gfp_mask
        self.nid = 0
        self.priority = priority
        self.nr_to_scan = 0
        self.nr_scanned = 0
        self.memcg = None

    def __repr__(self) -> str:
        return f"shrink_control(nr_to_scan={self.nr_to_scan}, priority={self.priority})"


class Shrinker:
    """``struct shrinker``."""

    def __init__(self, name: str, count_objects: Callable, scan_objects: Callable,
                 seeks: int = DEFAULT_SEEKS, batch: int = 0, flags: int = 0,
                 private_data: object = None) -> None:
        self.name = name
        self.count_objects = count_objects
        self.scan_objects = scan_objects
        self.seeks = seeks
        self.batch = batch
        self.flags = flags
        self.private_data = private_data
        self.nr_deferred = 0
        self.registered = False

    def __repr__(self) -> str:
        return f"shrinker {self.name}"


def register_shrinker(sim, shrinker: Shrinker) -> None:
    """``shrinker_register``: make it visible to ``shrink_slab``."""
    if shrinker.registered:
        raise ValueError(f"{shrinker.name} registered twice")
    shrinker.registered = True
    sim.pgdat.shrinker_list.append(shrinker)


def unregister_shrinker(sim, shrinker: Shrinker) -> None:
    """``shrinker_free``: remove it; a scan already running finishes on its own."""
    if shrinker.registered:
        shrinker.registered = False
        sim.pgdat.shrinker_list.remove(shrinker)


def do_shrink_slab(pgdat, sc: shrink_control, shrinker: Shrinker):
    """``do_shrink_slab``: the scan target from population, priority, seeks and the deferred
    count; scanning in batches until the target drops below a batch (and below the population);
    the undone part of the target (and of the inherited deferred work) is deferred again,
    capped at twice the population. Returns objects freed."""
    freeable = shrinker.count_objects(sc)
    if freeable == 0 or freeable == SHRINK_EMPTY:
        return 0
    nr = shrinker.nr_deferred
    shrinker.nr_deferred = 0
    if shrinker.seeks:
        delta = (freeable >> sc.priority) * 4 // shrinker.seeks
    else:
        delta = freeable // 2
    total_scan = min((nr >> sc.priority) + delta, 2 * freeable)
    batch_size = shrinker.batch or SHRINK_BATCH
    sim = pgdat.sim
    task = current()
    if sim.observers:
        sim.emit("mm_shrink_slab_start", task, shrinker,
                 {"name": shrinker.name, "nr_objects_to_shrink": nr, "cache_items": freeable,
                  "delta": delta, "total_scan": total_scan, "priority": sc.priority})
    freed = scanned = 0
    while total_scan >= batch_size or total_scan >= freeable:
        nr_to_scan = min(batch_size, total_scan)
        sc.nr_to_scan = nr_to_scan
        sc.nr_scanned = nr_to_scan
        ret = yield from shrinker.scan_objects(sc)
        if ret == SHRINK_STOP:
            break
        freed += ret
        pgdat.stats.slabs_scanned += sc.nr_scanned
        total_scan -= sc.nr_scanned
        scanned += sc.nr_scanned
        yield from cond_resched()
    next_deferred = min(max(nr + delta - scanned, 0), 2 * freeable)
    shrinker.nr_deferred += next_deferred
    if sim.observers:
        sim.emit("mm_shrink_slab_end", task, shrinker,
                 {"name": shrinker.name, "unused_scan_cnt": nr, "new_scan_cnt": next_deferred,
                  "total_scan": total_scan, "freed": freed})
    return freed


def shrink_slab(pgdat, gfp_mask: int, priority: int):
    """``shrink_slab``: every registered shrinker once, under ``shrinker_rwsem`` read (trylock:
    if a registration holds it, skip — the caller will retry). Returns objects freed."""
    if not down_read_trylock(pgdat.shrinker_rwsem):
        return 0
    freed = 0
    for shrinker in list(pgdat.shrinker_list):
        if shrinker.registered:
            sc = shrink_control(gfp_mask, priority)
            freed += yield from do_shrink_slab(pgdat, sc, shrinker)
    up_read(pgdat.shrinker_rwsem)
    return freed
