"""The generic inodegc machinery (XFS's, kernel-semantics §5): delays, throttles, shrinker."""

from __future__ import annotations

import pytest

from reclaimlab.fs.inodegc import (
    XFS_INACTIVATING, XFS_NEED_INACTIVE, Inodegc, InodegcConfig, xfs_inodegc_push,
    xfs_inodegc_queue, xfs_inodegc_shrinker_count, xfs_inodegc_shrinker_scan, xfs_inodegc_start,
    xfs_inodegc_stop,
)
from reclaimlab.mm.gfp import GFP_KERNEL
from reclaimlab.mm.shrinker import SHRINK_STOP, shrink_control, shrink_slab
from reclaimlab.sim import JIFFY_NS, PF_KSWAPD, WaitQueue, current, wait_event, wake_up
from reclaimlab.vfs.fs import FileSystemType, Inode
from reclaimlab.vfs.super import alloc_super

from tests.fs.machine import Machine


class GcInode(Inode):
    __slots__ = ("i_gcflags",)

    def __init__(self, sb, ino: int) -> None:
        super().__init__()
        self.i_sb = sb
        self.i_ino = ino
        self.i_gcflags = 0


class Harness:
    """An Inodegc whose inactivation records when it ran and may be held behind a gate."""

    def __init__(self, ncpus: int = 1, **cfg) -> None:
        self.m = Machine(ncpus=ncpus)
        self.sim = self.m.sim
        self.sb = alloc_super(self.sim, FileSystemType(), None, "gc")
        self.gate_open = True
        self.gate = WaitQueue("gate")
        self.done: list[tuple[int, int, int]] = []     # (ino, time, flags seen)
        self.gc = Inodegc(self.sim, "gc", self.inactivate, lambda: False, InodegcConfig(**cfg))

    def inactivate(self, ip):
        flags = ip.i_gcflags
        yield from wait_event(self.gate, lambda: self.gate_open)
        self.done.append((ip.i_ino, current().sim.now, flags))
        ip.i_gcflags = 0

    def open_gate_at(self, when: int) -> None:
        def opener(_):
            self.gate_open = True
            wake_up(self.gate)
        self.sim.call_at(when, opener)

    def queue(self, n: int, flags: int = 0, journal_info=None):
        """Queue ``n`` inodes from one task; returns the time after each queueing."""
        me = current()
        me.flags |= flags
        me.journal_info = journal_info
        times = []
        for ino in range(1, n + 1):
            yield from xfs_inodegc_queue(self.gc, GcInode(self.sb, ino))
            times.append(me.sim.now)
        me.journal_info = None
        return times


def test_a_lone_inode_is_inactivated_one_jiffy_later_with_its_flags():
    h = Harness()
    h.m.run(h.queue(1), cpu=0)
    h.sim.run(until=JIFFY_NS * 3)
    (ino, when, flags), = h.done
    assert when >= JIFFY_NS
    assert flags & XFS_NEED_INACTIVE and flags & XFS_INACTIVATING


def test_more_than_a_cluster_of_items_kicks_the_worker_at_once():
    h = Harness()
    h.m.run(h.queue(33), cpu=0)
    h.sim.run(until=JIFFY_NS * 3)
    assert len(h.done) == 33 and h.done[0][1] < JIFFY_NS


def test_the_queuer_waits_when_its_cpu_queue_passes_256():
    h = Harness()
    h.gate_open = False
    h.open_gate_at(10_000_000)
    times = h.m.run(h.queue(300), cpu=0)
    throttles = h.m.tracepoints("xfs_inodegc_throttle")
    assert throttles and throttles[0][3]["items"] == 257
    assert times[-1] >= 10_000_000, "the queuer slept until the worker drained its queue"
    assert times[200] < 1_000_000, "no throttling below the backlog"


def test_without_the_backlog_throttle_the_queuer_never_waits():
    h = Harness(backlog_throttle=False)
    h.gate_open = False
    h.open_gate_at(10_000_000)
    times = h.m.run(h.queue(300), cpu=0)
    assert times[-1] < 10_000_000 and not h.m.tracepoints("xfs_inodegc_throttle")


def test_a_queuer_inside_a_transaction_is_exempt_but_kswapd_is_not():
    h = Harness()
    h.gate_open = False
    h.open_gate_at(10_000_000)
    times = h.m.run(h.queue(300, journal_info=object()), cpu=0)
    assert times[-1] < 10_000_000
    h2 = Harness()
    h2.gate_open = False
    h2.open_gate_at(10_000_000)
    times = h2.m.run(h2.queue(300, flags=PF_KSWAPD), cpu=0)
    assert times[-1] >= 10_000_000
    h3 = Harness(kswapd_exempt=True)
    h3.gate_open = False
    h3.open_gate_at(10_000_000)
    times = h3.m.run(h3.queue(300, flags=PF_KSWAPD), cpu=0)
    assert times[-1] < 10_000_000


def test_the_shrinker_counts_4096_and_kicks_the_workers_without_freeing():
    h = Harness(delay_jiffies=1000)
    sc = shrink_control(GFP_KERNEL, 12)
    assert xfs_inodegc_shrinker_count(h.gc, sc) == 0
    h.m.run(h.queue(3), cpu=0)
    assert xfs_inodegc_shrinker_count(h.gc, sc) == 4096
    assert h.gc.shrinker.batch == 2049 and h.gc.shrinker.seeks == 0
    start = h.sim.now
    assert h.m.run(xfs_inodegc_shrinker_scan(h.gc, sc)) == SHRINK_STOP
    assert h.gc.m_inodegc[0].shrinker_hits == 1
    h.sim.run(until=start + 1_000_000)
    assert len(h.done) == 3, "kicked now instead of after 1000 jiffies"


def test_reclaim_passes_reach_the_inodegc_shrinker_and_then_throttle_queuers():
    h = Harness(delay_jiffies=1000)
    h.m.run(h.queue(5), cpu=0)
    passes = []

    def reclaim():
        for prio in range(12, -1, -1):
            yield from shrink_slab(h.sim.pgdat, GFP_KERNEL, prio)
            passes.append(h.gc.m_inodegc[0].shrinker_hits + len(h.done))
            if passes[-1]:
                return

    h.m.run(reclaim())
    assert passes[0] == 0 and passes[-1] > 0, "not on the first pass (batch 2049), but later"
    h.sim.run(until=h.sim.now + 1_000_000)              # the kicked worker drains the queue
    assert len(h.done) == 5
    h.gc.m_inodegc[0].shrinker_hits = 1                  # the shrinker hit this CPU again
    h.gate_open = False
    gate = h.sim.now + 5_000_000
    h.open_gate_at(gate)
    times = h.m.run(h.queue(1), cpu=0)
    assert h.m.tracepoints("xfs_inodegc_throttle")[-1][3]["shrinker_hits"] == 1
    assert times[-1] >= gate, "a single queued inode waits while the shrinker is hitting"


def test_stop_drains_and_disables_start_reenables():
    h = Harness(delay_jiffies=1000)
    h.m.run(h.queue(4), cpu=0)

    def stop_queue_start():
        yield from xfs_inodegc_stop(h.gc)
        drained = len(h.done)
        yield from h.queue(2)
        parked = h.gc.nr_queued()
        xfs_inodegc_start(h.gc)
        return drained, parked

    drained, parked = h.m.run(stop_queue_start(), cpu=0)
    assert drained == 4 and parked == 2
    h.sim.run(until=h.sim.now + 1_000_000)
    assert len(h.done) == 6 and h.gc.nr_queued() == 0


def test_push_starts_the_workers_without_waiting():
    h = Harness(delay_jiffies=1000)
    h.gate_open = False
    h.m.run(h.queue(2), cpu=0)
    start = h.sim.now

    def push():
        xfs_inodegc_push(h.gc)
        pushed_at = current().sim.now
        yield 0
        return pushed_at

    assert h.m.run(push()) == start, "push does not wait for the workers"
    h.open_gate_at(start + 1_000_000)
    h.sim.run(until=start + 2_000_000)
    assert len(h.done) == 2 and all(t < start + 1000 * JIFFY_NS for _, t, _ in h.done)


@pytest.mark.parametrize("bad", [{"max_backlog": 0}, {"queue_depth": 0}, {"delay_jiffies": -1},
                                 {"low_space_pct": 101}])
def test_bad_inodegc_configuration_is_rejected(bad):
    with pytest.raises(ValueError, match="inodegc"):
        InodegcConfig(**bad)
