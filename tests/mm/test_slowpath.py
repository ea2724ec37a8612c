"""The allocator slow path: NOFAIL warnings and loops, OOM exemptions, NORETRY
(kernel-semantics §1, rules 2-14)."""

from __future__ import annotations

from reclaimlab.mm import gfp as G
from reclaimlab.mm.anon import do_anonymous_page, get_task_mm
from reclaimlab.mm.page_alloc import alloc_pages, free_pages
from reclaimlab.sim import NSEC_PER_MSEC, NSEC_PER_SEC, PF_MEMALLOC, current

GFP_NOFS_NOFAIL = G.GFP_NOFS | G.__GFP_NOFAIL


def ext4_like_caller(result: dict, gfp: int, order: int = 0, memalloc: bool = False):
    """A modelled fs function that allocates (its name must show up as the call site)."""
    if memalloc:
        current().flags |= PF_MEMALLOC
    result["pfn"] = yield from alloc_pages(gfp, order)
    result["t"] = current().sim.now


def free_later(pfns: list[int], order: int, delay: int):
    yield delay
    for pfn in pfns:
        free_pages(pfn, order)


def reclaim_of(rec, task) -> list:
    return [e for e in rec.of("mm_vmscan_direct_reclaim_begin") if e[1] is task]


def test_nofail_in_reclaim_warns_once_loops_on_reserves_never_recurses(node, drain):
    sim, pgdat, rec = node(64)
    held = drain(pgdat, leave=0)                  # far below low: nothing free at all
    res: dict = {}
    t = sim.spawn(ext4_like_caller(res, GFP_NOFS_NOFAIL, 0, memalloc=True), "kworker")
    sim.spawn(free_later(held[:1], 0, 10 * NSEC_PER_MSEC), "freer")
    sim.run(until=NSEC_PER_SEC)
    warns = rec.of("alloc_warn")
    assert [w[3]["kind"] for w in warns] == ["nofail_in_reclaim"]
    info, stack = warns[0][3], warns[0][4]
    assert info["gfp"] == "GFP_NOFS|__GFP_NOFAIL" and info["order"] == 0
    assert "ext4_like_caller" in stack and "__alloc_pages_slowpath" in stack
    assert stack.index("ext4_like_caller") < stack.index("__alloc_pages_slowpath")
    # it waited for memory to appear, looping on reserves, and got it
    assert res["pfn"] == held[0] and res["t"] >= 10 * NSEC_PER_MSEC
    assert pgdat.stats.nofail_retries > 1
    # PF_MEMALLOC: never direct reclaim, never the OOM killer
    assert reclaim_of(rec, t) == [] and rec.of("oom_kill") == []


def test_nofail_in_reclaim_warns_even_when_reserves_satisfy_it(node, drain):
    sim, pgdat, rec = node(64)
    drain(pgdat, leave=pgdat.zone.watermark[0] // 2)     # below min, above zero
    res: dict = {}
    sim.spawn(ext4_like_caller(res, GFP_NOFS_NOFAIL, 0, memalloc=True), "kswapd-like")
    sim.run(until=NSEC_PER_SEC)
    assert res["pfn"] is not None and res["t"] < NSEC_PER_MSEC
    assert [w[3]["kind"] for w in rec.of("alloc_warn")] == ["nofail_in_reclaim"]


def test_warning_is_once_per_call_site(node, drain):
    sim, pgdat, rec = node(64)
    drain(pgdat, leave=pgdat.zone.watermark[0] // 2)

    def twice():
        current().flags |= PF_MEMALLOC
        for _ in range(2):
            yield from alloc_pages(GFP_NOFS_NOFAIL, 0)
    sim.spawn(twice(), "a")
    sim.spawn(ext4_like_caller({}, GFP_NOFS_NOFAIL, 0, memalloc=True), "b")
    sim.run(until=NSEC_PER_SEC)
    sites = sorted(next(n for n in w[4] if n in ("twice", "ext4_like_caller"))
                   for w in rec.of("alloc_warn"))
    assert sites == ["ext4_like_caller", "twice"]


def test_pre_612_kernel_warns_only_after_reclaim_failed(node, drain):
    sim, pgdat, rec = node(64, kernel_version="6.11")
    drain(pgdat, leave=pgdat.zone.watermark[0] // 2)
    res: dict = {}
    sim.spawn(ext4_like_caller(res, GFP_NOFS_NOFAIL, 0, memalloc=True), "kworker")
    sim.run(until=NSEC_PER_SEC)
    assert res["pfn"] is not None
    assert rec.of("alloc_warn") == []          # succeeded from reserves: the old nopage check
    sim2, pgdat2, rec2 = node(64, kernel_version="6.11")
    held = drain(pgdat2, leave=0)
    sim2.spawn(ext4_like_caller({}, GFP_NOFS_NOFAIL, 0, memalloc=True), "kworker")
    sim2.spawn(free_later(held[:1], 0, NSEC_PER_MSEC), "freer")
    sim2.run(until=NSEC_PER_SEC)
    assert [w[3]["kind"] for w in rec2.of("alloc_warn")] == ["nofail_in_reclaim"]


def hog(pages: int):
    mm = get_task_mm(current())
    yield from do_anonymous_page(mm, pages)
    while not current().oom_killed:
        yield NSEC_PER_MSEC


def hog_then_exhaust(sim, pgdat, drain, hog_pages: int = 4000):
    """A user task holds ``hog_pages`` of anonymous memory; long-lived kernel allocations hold
    everything else (nothing reclaimable). Returns (hog task, the kernel-held pfns)."""
    t = sim.spawn(hog(hog_pages), "hog")
    sim.run(until=sim.now + 100 * NSEC_PER_MSEC)
    assert t.mm.rss == hog_pages
    return t, drain(pgdat, leave=0)


def raw_hog(pages: int):
    """Holds unmovable kernel pages on behalf of a user task (a pinned-memory hog)."""
    held = []
    for _ in range(pages):
        held.append((yield from alloc_pages(G.GFP_KERNEL, 0)))
    while not current().oom_killed:
        yield NSEC_PER_MSEC
    for pfn in held:
        free_pages(pfn, 0)


def test_order4_nofail_warns_costly_and_never_ooms(node, drain):
    sim, pgdat, rec = node(64)
    hog_task = sim.spawn(raw_hog(4000), "hog")      # an OOM victim, if the killer ran
    sim.run(until=100 * NSEC_PER_MSEC)
    held = sorted(drain(pgdat, leave=0))
    for pfn in held[::2]:                 # plenty of free pages, but no two adjacent
        free_pages(pfn, 0, pgdat)
    assert pgdat.zone.free_pages > pgdat.zone.watermark[2]
    res: dict = {}
    sim.spawn(ext4_like_caller(res, G.GFP_KERNEL | G.__GFP_NOFAIL, 4), "getblk")
    sim.run(until=sim.now + 200 * NSEC_PER_MSEC)
    kinds = [w[3]["kind"] for w in rec.of("alloc_warn")]
    assert kinds == ["nofail_costly_order"]
    assert rec.of("oom_kill") == [] and not hog_task.oom_killed
    assert "pfn" not in res                       # still looping: no order-4 block anywhere
    block = next(p for p in held[::2] if p % 16 == 0 and p + 15 in held)
    sim.spawn(free_later([p for p in held[1::2] if block <= p < block + 16], 0, 0), "freer")
    sim.run(until=sim.now + NSEC_PER_SEC)
    assert res["pfn"] == block
    assert rec.of("oom_kill") == []


def test_gfp_nofs_small_allocation_loops_without_oom(node, drain):
    sim, pgdat, rec = node(64)
    hog_task, held = hog_then_exhaust(sim, pgdat, drain)
    res: dict = {}
    sim.spawn(ext4_like_caller(res, G.GFP_NOFS, 0), "nofs")
    sim.run(until=sim.now + 3 * NSEC_PER_SEC)
    assert "pfn" not in res                      # neither failed nor succeeded: looping
    assert rec.of("oom_kill") == [] and not hog_task.oom_killed
    sim.spawn(free_later(held[:2 * pgdat.zone.watermark[0]], 0, 0), "freer")
    sim.run(until=sim.now + NSEC_PER_SEC)
    assert res["pfn"] is not None


def test_gfp_kernel_ooms_the_biggest_task_when_nothing_is_reclaimable(node, drain):
    sim, pgdat, rec = node(64)
    small, _ = hog_then_exhaust(sim, pgdat, lambda p, leave: [], hog_pages=100)
    hog_task, held = hog_then_exhaust(sim, pgdat, drain)
    res: dict = {}
    sim.spawn(ext4_like_caller(res, G.GFP_KERNEL, 0), "kernel-alloc")
    sim.run(until=sim.now + 3 * NSEC_PER_SEC)
    kills = rec.of("oom_kill")
    assert [k[2] for k in kills] == [hog_task]
    assert hog_task.oom_killed and not small.oom_killed
    assert hog_task.mm.rss == 0                  # the reaper freed its memory
    assert res["pfn"] is not None
    assert pgdat.stats.oom_kills == 1


def test_noretry_fails_after_one_pass(node, drain):
    sim, pgdat, rec = node(64)
    hog_task, _ = hog_then_exhaust(sim, pgdat, drain)
    res: dict = {}
    t = sim.spawn(ext4_like_caller(res, G.GFP_KERNEL | G.__GFP_NORETRY, 0), "noretry")
    sim.run(until=sim.now + 3 * NSEC_PER_SEC)
    assert res["pfn"] is None
    assert len(reclaim_of(rec, t)) == 1
    assert rec.of("oom_kill") == []
    assert [w[3]["kind"] for w in rec.of("alloc_warn")] == ["page_allocation_failure"]


def test_nofail_without_direct_reclaim_warns_and_fails(node, drain):
    sim, pgdat, rec = node(64)
    drain(pgdat, leave=0)
    res: dict = {}
    sim.spawn(ext4_like_caller(res, G.GFP_NOWAIT | G.__GFP_NOFAIL, 0), "atomic")
    sim.run(until=NSEC_PER_SEC)
    assert res["pfn"] is None
    assert "nofail_no_reclaim" in [w[3]["kind"] for w in rec.of("alloc_warn")]


def test_alloc_events_carry_latency(node):
    sim, pgdat, rec = node(64)
    sim.spawn(ext4_like_caller({}, G.GFP_KERNEL, 0), "a")
    sim.run()
    (ev,) = rec.of("alloc")
    assert ev[3]["ns"] > 0 and ev[3]["order"] == 0 and ev[3]["gfp"] == "GFP_KERNEL"


def test_order2_nofail_warning_placement_depends_on_kernel_version(node):
    # 6.12+: checks at slow-path entry only, so a fast-path success is silent;
    # before: rmqueue's WARN_ON_ONCE(NOFAIL && order > 1) fires on any successful dequeue.
    for version, expected in (("6.12", []), ("6.11", ["nofail_costly_order"])):
        sim, pgdat, rec = node(64, kernel_version=version)
        res: dict = {}
        sim.spawn(ext4_like_caller(res, GFP_NOFS_NOFAIL, 2), "getblk")
        sim.run(until=NSEC_PER_SEC)
        assert res["pfn"] is not None
        assert [w[3]["kind"] for w in rec.of("alloc_warn")] == expected
