"""The event loop: virtual time, CPUs, requests, stacks, blocked-task listing."""

import pytest

from reclaimlab.sim import (
    Completion, Mutex, Run, SimError, Simulation, complete, current, mutex_lock, mutex_unlock,
    wait_for_completion,
)


def test_sleep_advances_virtual_time_only():
    sim = Simulation()
    stamps = []

    def t():
        stamps.append(sim.now)
        yield 1_000_000
        stamps.append(sim.now)
        yield 5
        stamps.append(sim.now)

    sim.spawn(t(), "t")
    sim.run()
    assert stamps == [0, 1_000_000, 1_000_005]


def test_cpu_bursts_queue_when_all_cpus_are_busy():
    sim = Simulation(ncpus=2)
    done = {}

    def burner(name):
        yield Run(100)
        done[name] = sim.now

    for i in range(3):
        sim.spawn(burner(f"b{i}"), f"b{i}")
    sim.run()
    assert sorted(done.values()) == [100, 100, 200]


def test_pinned_tasks_run_on_their_cpu_and_serialise():
    sim = Simulation(ncpus=2)
    seen = []

    def burner(i):
        yield Run(50)
        seen.append((current().cpu, sim.now))

    sim.spawn(burner(0), "a", cpu=1)
    sim.spawn(burner(1), "b", cpu=1)
    sim.run()
    assert seen == [(1, 50), (1, 100)]


def test_run_until_stops_at_that_time():
    sim = Simulation()

    def forever():
        while True:
            yield 10

    sim.spawn(forever(), "f")
    sim.run(until=95)
    assert sim.now == 95
    sim.run(until=200)
    assert sim.now == 200


def test_yielding_something_that_is_not_a_request_names_task_and_stack():
    sim = Simulation()

    def xfs_inodegc_worker():
        yield "oops"

    def kworker():
        yield from xfs_inodegc_worker()

    sim.spawn(kworker(), "kworker/0:1")
    with pytest.raises(SimError) as e:
        sim.run()
    assert "kworker/0:1" in str(e.value)
    assert "kworker > xfs_inodegc_worker" in str(e.value)


def test_stack_is_the_chain_of_modelled_functions_innermost_last():
    sim = Simulation()
    m = Mutex("m")
    stacks = []

    def holder():
        yield from mutex_lock(m)
        yield 100
        stacks.append(sim.tasks[2].stack())
        mutex_unlock(m)

    def iput():
        yield from evict()

    def evict():
        yield from mutex_lock(m)
        mutex_unlock(m)

    sim.spawn(holder(), "holder")
    sim.spawn(iput(), "kswapd0")
    sim.run()
    assert stacks == [["iput", "evict", "mutex_lock"]]


def test_blocked_tasks_lists_waiter_object_holder_since_and_stack():
    sim = Simulation()
    m = Mutex("&ei->xattr_sem")
    never = Completion("never")

    def holder():
        yield from mutex_lock(m)
        yield from wait_for_completion(never)

    def victim():
        yield 7
        yield from mutex_lock(m)

    h = sim.spawn(holder(), "holder")
    v = sim.spawn(victim(), "victim")
    sim.run()
    blocked = {b.task.comm: b for b in sim.blocked_tasks()}
    assert set(blocked) == {"holder", "victim"}
    b = blocked["victim"]
    assert b.waits_on is m and b.holder == [h] and b.since == 7
    assert b.stack == ["victim", "mutex_lock"]
    assert blocked["holder"].waits_on is never and v.state == "D"


def test_timed_wait_returns_false_after_timeout_and_true_when_completed():
    sim = Simulation()
    c = Completion("c")
    res = []

    def waiter():
        res.append((yield from wait_for_completion(c, timeout=100)))
        res.append(sim.now)
        res.append((yield from wait_for_completion(c, timeout=1000)))
        res.append(sim.now)

    def completer():
        yield 300
        complete(c)

    sim.spawn(waiter(), "w")
    sim.spawn(completer(), "c")
    sim.run()
    assert res == [False, 100, True, 300]


def test_callbacks_run_at_their_time_and_can_be_cancelled():
    sim = Simulation()
    fired = []
    sim.call_at(50, fired.append, "a")
    t = sim.call_at(60, fired.append, "b")
    sim.call_after(70, fired.append, "c")
    t.cancel()
    sim.run()
    assert fired == ["a", "c"] and sim.now == 70


def test_policy_picks_among_tasks_ready_at_the_same_instant():
    class Last:
        def choose(self, sim, candidates):
            return len(candidates) - 1

    order = []

    def t(i):
        order.append(i)
        yield 0

    for policy, expected in ((None, [0, 1, 2]), (Last(), [2, 1, 0])):
        order.clear()
        sim = Simulation(policy=policy)
        for i in range(3):
            sim.spawn(t(i), f"t{i}")
        sim.run()
        assert order == expected


def test_observers_see_block_wake_and_lock_events_with_holders():
    sim = Simulation()
    m = Mutex("m")
    seen = []

    class Obs:
        def event(self, kind, task, obj, info):
            if kind in ("block", "wake", "lock_acquired", "lock_release"):
                seen.append((kind, task.comm, getattr(obj, "name", None)))

    sim.add_observer(Obs())

    def a():
        yield from mutex_lock(m)
        yield 10
        mutex_unlock(m)

    def b():
        yield 1
        yield from mutex_lock(m)
        mutex_unlock(m)

    sim.spawn(a(), "a")
    sim.spawn(b(), "b")
    sim.run()
    assert seen == [("lock_acquired", "a", "m"), ("block", "b", "m"), ("lock_release", "a", "m"),
                    ("wake", "b", "m"), ("lock_acquired", "b", "m"), ("lock_release", "b", "m")]


def test_routed_observers_get_only_their_kinds_and_run_before_plain_ones():
    sim = Simulation()
    m = Mutex("m")
    calls = []

    class Routed:
        def __init__(self, name, kinds):
            self.event_routes = {k: (lambda t, o, i, k=k: calls.append((name, k))) for k in kinds}

        def event(self, kind, task, obj, info):  # pragma: no cover - never called when routed
            raise AssertionError("a routed observer's event is not called")

    class Plain:
        def event(self, kind, task, obj, info):
            if kind.startswith("lock_"):
                calls.append(("plain", kind))

    sim.add_observer(Plain())
    sim.add_observer(Routed("a", ["lock_acquired", "lock_release"]))
    sim.add_observer(Routed("b", ["lock_release"]))

    def t():
        yield from mutex_lock(m)
        mutex_unlock(m)

    sim.spawn(t(), "t")
    sim.run()
    assert calls == [("plain", "lock_acquire"), ("a", "lock_acquired"), ("plain", "lock_acquired"),
                     ("a", "lock_release"), ("b", "lock_release"), ("plain", "lock_release")]


def test_running_stack_keeps_kernel_double_underscore_names_and_plain_calls():
    sim = Simulation()
    seen = []

    def warn_alloc():
        seen.append(current().stack())

    def __alloc_pages_slowpath():
        warn_alloc()
        yield 0

    def __getblk_slow():
        yield from __alloc_pages_slowpath()

    sim.spawn(__getblk_slow(), "kswapd0")
    sim.run()
    assert seen == [["__getblk_slow", "__alloc_pages_slowpath", "warn_alloc"]]


def test_timer_callbacks_run_outside_any_task():
    sim = Simulation()
    seen = []

    def t():
        sim.call_after(10, lambda _: seen.append(current()))
        yield 20

    sim.spawn(t(), "t")
    sim.run()
    assert seen == [None]


def test_cancelled_timers_and_stale_timeouts_never_move_the_clock():
    sim = Simulation()
    c = Completion("c")
    late = sim.call_at(10_000, lambda _: None)
    late.cancel()

    def t():
        # woken at 5 by the completer: its 1000 ns timeout entry goes stale
        yield from wait_for_completion(c, timeout=1000)

    def completer():
        yield 5
        complete(c)

    sim.spawn(t(), "t")
    sim.spawn(completer(), "c")
    assert sim.pending()
    sim.run()
    assert sim.now == 5 and not sim.pending()


def test_nested_lock_annotations_reach_lockdep_with_their_subclass():
    from reclaimlab.sim import RwSemaphore, down_write_nested, up_write

    sim = Simulation()
    parent, child = RwSemaphore("i_rwsem"), RwSemaphore("i_rwsem")
    seen = []

    class Obs:
        def event(self, kind, task, obj, info):
            if kind == "lock_acquire":
                seen.append(info.get("subclass", 0))

    sim.add_observer(Obs())

    def rmdir():
        yield from down_write_nested(parent, 1)
        yield from down_write_nested(child, 2)
        up_write(child)
        up_write(parent)

    sim.spawn(rmdir(), "rm")
    sim.run()
    assert seen == [1, 2]


def test_close_unwinds_live_tasks_as_themselves():
    sim = Simulation()
    m = Mutex("m")
    unwound = []

    def holder():
        yield from mutex_lock(m)
        try:
            yield 10**12
        finally:
            mutex_unlock(m)  # needs current() to be this task
            unwound.append(current().comm)

    sim.spawn(holder(), "holder")
    sim.run(until=100)
    sim.close()
    assert unwound == ["holder"] and m.owner is None and current() is None


def test_close_finishes_a_task_whose_cleanup_itself_waits():
    sim = Simulation()
    unwound = []

    def journal_stop():
        yield 5  # cleanup that may wait

    def unlink():
        try:
            yield 10**12
        finally:
            unwound.append(("unlink", current().comm))
            yield from journal_stop()

    def syscall():
        try:
            yield from unlink()
        finally:
            unwound.append(("syscall", current().comm))
            yield 5

    gen = syscall()
    sim.spawn(gen, "rm")
    sim.run(until=100)
    sim.close()
    # every level finished now, as its task, not later in the garbage collector
    assert unwound == [("unlink", "rm"), ("syscall", "rm")] and gen.gi_frame is None
