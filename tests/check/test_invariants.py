"""Invariant violations end the run with a report, never silently."""

from types import SimpleNamespace

from reclaimlab.check import attach_checks
from reclaimlab.sim import Mutex, Simulation, current, mutex_lock


class Inode:
    def __init__(self, ino):
        self.i_ino = ino


def test_exit_with_a_lock_held_stops_the_run():
    sim = Simulation()
    checks = attach_checks(sim)
    m = Mutex("&sb->s_umount")

    def leaky():
        yield from mutex_lock(m)

    def later():
        yield 1000
        ran.append(True)

    ran = []
    sim.spawn(leaky(), "leaky")
    sim.spawn(later(), "later")
    sim.run()
    [f] = checks.findings
    assert f.kind == "invariant"
    assert "WARNING: leaky/1 still has locks held!" in f.text
    assert ran == []  # stopped after the violating step


def test_inode_freed_twice():
    sim = Simulation()
    checks = attach_checks(sim)
    inode = Inode(7)

    def evictor():
        sim.emit("inode_evicted", current(), inode, {"ino": 7})
        sim.emit("inode_evicted", current(), inode, {"ino": 7})
        yield 1

    sim.spawn(evictor(), "evictor")
    sim.run()
    assert [f.message for f in checks.findings] == ["inode 7 freed twice"]


def test_inode_used_after_free():
    sim = Simulation()
    checks = attach_checks(sim)
    inode = Inode(12)

    def evictor():
        sim.emit("inode_evicted", current(), inode, {"ino": 12})
        yield 1
        sim.emit("inode_cleanup", current(), inode, {"ino": 12, "deferred": False})

    sim.spawn(evictor(), "evictor")
    sim.run()
    assert [f.message for f in checks.findings] == [
        "use after free: inode_cleanup of inode 12 after it was freed"]


def test_end_of_run_asks_every_subsystem_and_counts_leaks():
    sim = Simulation()
    sim.pgdat = SimpleNamespace(check_invariants=lambda: ["free pages 10 + used 5 != 16"])
    sim.vfs = SimpleNamespace(check_invariants=lambda: [], leaked=lambda: [("ext4", 42)])
    checks = attach_checks(sim)
    sim.run()
    checks.finish()
    assert checks.invariants.violations == [
        "pgdat: free pages 10 + used 5 != 16", "inode 42 on ext4 unlinked but never freed"]


def test_a_clean_run_has_no_violation():
    sim = Simulation()
    sim.pgdat = SimpleNamespace(check_invariants=lambda: [])
    checks = attach_checks(sim)

    def fine():
        yield 5

    sim.spawn(fine(), "fine")
    sim.run()
    checks.finish()
    assert checks.findings == []


def test_end_of_run_checks_run_once():
    sim = Simulation()
    sim.pgdat = SimpleNamespace(check_invariants=lambda: ["nr_free drifted"])
    checks = attach_checks(sim)
    sim.run()
    checks.finish()
    checks.finish()
    assert checks.invariants.violations == ["pgdat: nr_free drifted"]


def test_remembering_freed_inodes_does_not_keep_them_alive():
    import gc
    import weakref

    from reclaimlab.check.invariants import _FreedInodes
    from reclaimlab.fs.ext4.ext4 import ext4_inode_info

    freed = _FreedInodes()
    inode = ext4_inode_info()
    alive = weakref.ref(inode)
    freed.add(inode)
    assert inode in freed and ext4_inode_info() not in freed
    del inode
    gc.collect()
    assert alive() is None and not freed.refs  # a million evictions must not pile up
