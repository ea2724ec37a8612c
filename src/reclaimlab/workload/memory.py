"""Memory consumers: an anonymous-memory hog and bursts of kernel allocations.

The hog faults anonymous memory in through mm's model (``do_anonymous_page``: anon folios on
the anon LRU, swappable only when ``machine.swap_mb`` > 0), touches it (``mm_touch``: the
accessed bits reclaim reads) and frees it with ``exit_mmap`` when it stops; the OOM killer
frees it itself. ``large_alloc`` takes blocks straight from the page allocator and gives them
back after ``hold_ms``.
"""

from __future__ import annotations

from typing import Generator

from reclaimlab.mm import gfp as gfp_flags
from reclaimlab.mm.anon import do_anonymous_page, exit_mmap, get_task_mm, mm_touch
from reclaimlab.mm.page_alloc import alloc_pages, free_pages
from reclaimlab.sim import Run, current
from reclaimlab.workload.base import Context, ms, pace
from reclaimlab.workload.specs import AnonHog, LargeAlloc, parse_gfp_names

# CPU time to touch an already-present page (a cache-missing load per page, assumption).
TOUCH_NS_PER_PAGE = 100


def resolve_gfp(text: str) -> int:
    """``"GFP_NOFS|__GFP_NOFAIL"`` -> the flag bits of :mod:`reclaimlab.mm.gfp`."""
    value = 0
    for name in parse_gfp_names(text):
        value |= getattr(gfp_flags, name)
    return value


def mem_available(pgdat) -> int:
    """``MemAvailable`` of /proc/meminfo, simplified (``si_mem_available``): free pages plus
    the page cache, which reclaim can give back."""
    return pgdat.zone.free_pages + pgdat.nr_file_pages


def anon_hog(spec: AnonHog, ctx: Context) -> Generator:
    """Fault in ``target_mb`` (or all but ``leave_available_mb`` of the memory available when
    it starts)
    of anonymous memory, ``step_kb`` at a time, at ``rate_mb_s``;
    touch it every ``touch_interval_ms`` while holding; after ``hold_ms`` (if set) unmap it
    all and start over; unmap everything at the end."""
    task = current()
    mm = get_task_mm(task)
    gfp = resolve_gfp(spec.gfp)
    page_size = task.sim.pgdat.page_size
    step = max(1, spec.step_kb * 1024 // page_size)
    if spec.target_mb is not None:
        target = spec.target_mb * 2**20 // page_size
    else:
        target = max(mem_available(task.sim.pgdat) - spec.leave_available_mb * 2**20 // page_size,
                     0)
    while ctx.running():
        started = task.sim.now
        while mm.rss < target and ctx.running():
            got = yield from do_anonymous_page(mm, min(step, target - mm.rss), gfp)
            if not got:
                ctx.stats.error("ENOMEM")
                break
            ctx.stats.op(task.sim.now, got * page_size)
            yield from pace(ctx, started, mm.rss * page_size / 2**20, spec.rate_mb_s)
        yield from hold(spec, ctx, mm)
        if spec.hold_ms:
            exit_mmap(mm)
    if task.oom_killed:
        ctx.stats.oom_killed += 1
    exit_mmap(mm)


def hold(spec: AnonHog, ctx: Context, mm) -> Generator:
    """Keep the memory for ``hold_ms`` (0: to the end), touching all of it every
    ``touch_interval_ms`` if ``touch`` (what keeps it hot when swap exists)."""
    sim = current().sim
    until = min(sim.now + ms(spec.hold_ms), ctx.stop_ns) if spec.hold_ms else ctx.stop_ns
    while ctx.running() and sim.now < until:
        if spec.touch and mm.rss:
            mm_touch(mm)
            yield Run(TOUCH_NS_PER_PAGE * mm.rss)
        yield max(1, min(ms(spec.touch_interval_ms), until - sim.now))


def large_alloc(spec: LargeAlloc, ctx: Context) -> Generator:
    """Every ``interval_ms``: allocate ``burst`` blocks of ``order`` (vmalloc-like order-0
    bursts, or high-order blocks), hold them ``hold_ms``, free them."""
    gfp = resolve_gfp(spec.gfp)
    nbytes = current().sim.pgdat.page_size << spec.order
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
