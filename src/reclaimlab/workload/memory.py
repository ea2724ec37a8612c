"""Memory consumers: an anonymous-memory hog and bursts of kernel allocations.

Anonymous memory is modelled as pages taken from the page allocator and held (no swap device
is modelled, so they are unreclaimable, as anonymous memory is with swap off), faulted in with
``alloc_pages_bulk`` one step at a time: what matters to reclaim is that they leave the zone
near its watermarks. Touching held pages costs CPU only (no anonymous LRU to age). The program
frees everything it holds when it stops or is OOM-killed (``exit_mmap``).
"""

from __future__ import annotations

from typing import Generator

from reclaimlab.mm import gfp as gfp_flags
from reclaimlab.mm.page_alloc import alloc_pages, alloc_pages_bulk, free_pages
from reclaimlab.sim import Run, current
from reclaimlab.workload.base import Context, ms, pace
from reclaimlab.workload.specs import AnonHog, LargeAlloc, parse_gfp_names

# CPU time to fault in and zero one base page (clear_page, ~1 us for 4 KiB).
FAULT_NS_PER_PAGE = 1_000
# CPU time to touch an already-present page (a cache-missing load per page).
TOUCH_NS_PER_PAGE = 100


def resolve_gfp(text: str) -> int:
    """``"GFP_NOFS|__GFP_NOFAIL"`` -> the flag bits of :mod:`reclaimlab.mm.gfp`."""
    value = 0
    for name in parse_gfp_names(text):
        value |= getattr(gfp_flags, name)
    return value


def page_size() -> int:
    return current().sim.pgdat.page_size


def anon_hog(spec: AnonHog, ctx: Context) -> Generator:
    """Fault in ``target_mb`` of anonymous memory, ``step_kb`` at a time, at ``rate_mb_s``;
    touch it every ``touch_interval_ms`` while holding; after ``hold_ms`` (if set) free it all
    and start over."""
    gfp = resolve_gfp(spec.gfp)
    pages_per_step = max(1, spec.step_kb * 1024 // page_size())
    target = spec.target_mb * 1024 * 1024 // page_size()
    held: list[int] = []
    while ctx.running():
        yield from _fault_in(spec, ctx, gfp, pages_per_step, target, held)
        yield from _hold(spec, ctx, held)
        if spec.hold_ms:
            _exit_mmap(held)
    _exit_mmap(held)
    if current().oom_killed:
        ctx.stats.oom_killed += 1


def _fault_in(spec: AnonHog, ctx: Context, gfp: int, step: int, target: int,
              held: list[int]) -> Generator:
    started = current().sim.now
    bytes_per_page = page_size()
    while len(held) < target and ctx.running():
        want = min(step, target - len(held))
        while want and ctx.running():
            got = yield from alloc_pages_bulk(gfp, want, held)
            if got == 0:
                ctx.stats.error("ENOMEM")
                return
            want -= got
            yield Run(FAULT_NS_PER_PAGE * got)
            ctx.stats.op(current().sim.now, got * bytes_per_page)
        yield from pace(ctx, started, len(held) * bytes_per_page / 2**20, spec.rate_mb_s)


def _hold(spec: AnonHog, ctx: Context, held: list[int]) -> Generator:
    sim = current().sim
    until = sim.now + ms(spec.hold_ms) if spec.hold_ms else ctx.stop_ns
    while ctx.running() and sim.now < until:
        if spec.touch != "none" and held:
            yield Run(TOUCH_NS_PER_PAGE * len(held))
        yield max(1, min(ms(spec.touch_interval_ms), until - sim.now, ctx.stop_ns - sim.now))


def _exit_mmap(held: list[int]) -> None:
    while held:
        free_pages(held.pop(), 0)


def large_alloc(spec: LargeAlloc, ctx: Context) -> Generator:
    """Every ``interval_ms``: allocate ``burst`` blocks of ``order`` (vmalloc-like order-0
    bursts, or high-order blocks), hold them ``hold_ms``, free them."""
    gfp = resolve_gfp(spec.gfp)
    nbytes = page_size() << spec.order
    while ctx.running():
        held: list[int] = []
        for _ in range(spec.burst):
            pfn = yield from alloc_pages(gfp, spec.order)
            if pfn is None:
                ctx.stats.error("ENOMEM")
                break
            held.append(pfn)
            ctx.stats.op(current().sim.now, nbytes)
            if not ctx.running():
                break
        if spec.hold_ms:
            yield ms(spec.hold_ms)
        for pfn in held:
            free_pages(pfn, spec.order)
        if spec.interval_ms:
            yield ms(spec.interval_ms)
    if current().oom_killed:
        ctx.stats.oom_killed += 1
