"""Allocator warnings and OOM kills printed as the kernel prints them."""

from reclaimlab.check import attach_checks
from reclaimlab.sim import PF_MEMALLOC, Simulation, current


def nofail_in_kswapd(sim):
    def __alloc_pages_slowpath():
        task = current()
        sim.emit("alloc_warn", task, None,
                 {"kind": "nofail_in_reclaim", "message": "__GFP_NOFAIL allocation in PF_MEMALLOC",
                  "gfp": "GFP_NOFS|__GFP_NOFAIL", "order": 0})
        yield 10

    def __getblk_slow():
        yield from __alloc_pages_slowpath()

    def ext4_evict_inode():
        yield from __getblk_slow()

    def kswapd():
        yield from ext4_evict_inode()

    return sim.spawn(kswapd(), "kswapd0", PF_MEMALLOC)


def test_nofail_warning_layout_and_call_trace_innermost_first():
    sim = Simulation()
    checks = attach_checks(sim)
    nofail_in_kswapd(sim)
    sim.run()
    [f] = checks.findings
    assert f.kind == "nofail_in_reclaim"
    assert f.message == "__GFP_NOFAIL allocation in PF_MEMALLOC"
    lines = f.text.splitlines()
    assert lines[0] == "------------[ cut here ]------------"
    assert lines[1].startswith("WARNING: CPU: 0 PID: 1 at mm/page_alloc.c:")
    assert lines[1].endswith(" __alloc_pages_slowpath")
    trace = lines[lines.index("Call Trace:") + 2:lines.index(" </TASK>")]
    assert trace == [" __alloc_pages_slowpath", " __getblk_slow", " ext4_evict_inode", " kswapd"]
    assert f.as_warning()["stack"] == ["kswapd", "ext4_evict_inode", "__getblk_slow",
                                       "__alloc_pages_slowpath"]


def test_oom_kill_line():
    sim = Simulation()
    checks = attach_checks(sim)

    def hog():
        yield 10

    def allocator():
        sim.emit("oom_kill", current(), victim,
                 {"victim": "hog", "pid": 1, "gfp": "GFP_KERNEL", "order": 0, "anon_freed": 256})
        yield 1

    victim = sim.spawn(hog(), "hog")
    sim.spawn(allocator(), "allocator")
    sim.run()
    [f] = checks.findings
    assert f.kind == "oom_kill"
    assert "allocator invoked oom-killer: gfp_mask=(GFP_KERNEL), order=0" in f.text
    assert ("Out of memory: Killed process 1 (hog) total-vm:1024kB, anon-rss:1024kB"
            in f.text)
