"""The deadlock detector: cycles of single-owner waits and knots of any-task waits."""

from hypothesis import given, settings, strategies as st

from reclaimlab.check import attach_checks
from reclaimlab.sim import (
    NSEC_PER_SEC, Mutex, Simulation, WaitQueue, alloc_workqueue, Work, mutex_lock,
    mutex_unlock, queue_work, wait_event, wake_up,
)


def abba(sim, same_order: bool):
    a, b = Mutex("&a->lock"), Mutex("&b->lock")

    def first():
        yield from mutex_lock(a)
        yield 1000
        yield from mutex_lock(b)
        mutex_unlock(b)
        mutex_unlock(a)

    def second():
        x, y = (a, b) if same_order else (b, a)
        yield from mutex_lock(x)
        yield 1000
        yield from mutex_lock(y)
        mutex_unlock(y)
        mutex_unlock(x)

    return sim.spawn(first(), "first"), sim.spawn(second(), "second")


def test_abba_mutex_deadlock_is_reported_as_a_cycle_with_stacks_and_time():
    sim = Simulation()
    checks = attach_checks(sim)
    t1, t2 = abba(sim, same_order=False)
    sim.run(until=NSEC_PER_SEC)
    [finding] = checks.deadlock.reports
    assert finding.data["kind"] == "cycle"
    assert finding.time_ns == 1000
    cycle = {e["task"]: e for e in finding.data["cycle"]}
    assert cycle["first:1"]["waits_on"] == "mutex &b->lock"
    assert cycle["first:1"]["held_by"] == "second:2"
    assert cycle["second:2"]["held_by"] == "first:1"
    assert "circular wait among 2 tasks" in finding.text
    assert " mutex_lock\n first" in finding.text and " mutex_lock\n second" in finding.text


def test_same_order_variant_is_silent():
    sim = Simulation()
    checks = attach_checks(sim)
    abba(sim, same_order=True)
    sim.run()
    checks.finish()
    assert checks.findings == []
    assert all(t.state == "X" for t in sim.tasks.values())


def memory_knot(sim, freer_needs_lock: bool):
    """An allocator waits for free memory while holding a lock; the only task that could free
    memory first takes that lock (a knot), or frees without it (progress)."""
    free = [0]
    pages_freed = WaitQueue("free memory")
    m = Mutex("&sb->s_lock")

    def allocator():
        yield from mutex_lock(m)
        yield from wait_event(pages_freed, lambda: free[0] > 0)
        free[0] -= 1
        mutex_unlock(m)

    def freer():
        yield 500
        if freer_needs_lock:
            yield from mutex_lock(m)
        free[0] += 1
        wake_up(pages_freed)
        if freer_needs_lock:
            mutex_unlock(m)

    return sim.spawn(allocator(), "allocator"), sim.spawn(freer(), "freer")


def test_knot_where_the_only_freer_waits_on_the_allocator():
    sim = Simulation()
    checks = attach_checks(sim)
    memory_knot(sim, freer_needs_lock=True)
    sim.run()
    checks.finish()
    [finding] = checks.deadlock.reports
    assert finding.data["kind"] == "knot"
    assert finding.time_ns == 500
    entries = {e["task"]: e for e in finding.data["cycle"]}
    assert entries["allocator:1"]["waits_on"] == "waitqueue free memory"
    assert entries["allocator:1"]["held_by"] == "anyone"
    assert entries["freer:2"]["held_by"] == "allocator:1"


def test_knot_variant_where_the_freer_does_not_need_the_lock_is_silent():
    sim = Simulation()
    checks = attach_checks(sim)
    memory_knot(sim, freer_needs_lock=False)
    sim.run()
    checks.finish()
    assert checks.deadlock.reports == []


def test_a_pending_timer_is_progress_not_a_knot():
    """An IO completion (a runtime timer) will end the wait: no knot while it is pending."""
    sim = Simulation()
    checks = attach_checks(sim)
    done = [False]
    io = WaitQueue("bio completion")

    def end_io(_):
        done[0] = True
        wake_up(io)

    def reader():
        sim.call_after(10_000, end_io)
        yield from wait_event(io, lambda: done[0])

    sim.spawn(reader(), "reader")
    sim.run()
    checks.finish()
    assert checks.deadlock.reports == []
    assert sim.now == 10_000


def test_idle_workers_at_the_end_of_a_run_are_not_a_knot():
    sim = Simulation(ncpus=2)
    checks = attach_checks(sim)
    wq = alloc_workqueue(sim, "events")
    ran = []

    def func(work):
        ran.append(work)
        yield 100

    def queuer():
        queue_work(wq, Work(func))
        yield 1000

    sim.spawn(queuer(), "queuer")
    sim.run()
    checks.finish()
    assert len(ran) == 1
    assert checks.findings == []


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.lists(st.integers(0, 3), min_size=1, max_size=3, unique=True),
                          st.integers(0, 3)), min_size=1, max_size=4))
def test_a_cycle_is_reported_exactly_when_tasks_stay_stuck(programs):
    """Tasks nest mutexes in their own orders with sleeps in between: the run ends with tasks
    still blocked exactly when the detector reported a deadlock cycle."""
    sim = Simulation()
    checks = attach_checks(sim)
    locks = [Mutex(f"L{i}") for i in range(4)]

    def program(order, pause):
        for i in order:
            yield from mutex_lock(locks[i])
            yield pause
        for i in reversed(order):
            mutex_unlock(locks[i])

    for n, (order, pause) in enumerate(programs):
        sim.spawn(program(order, pause), f"t{n}")
    sim.run()
    checks.finish()
    stuck = [t for t in sim.tasks.values() if t.state != "X"]
    cycles = [f for f in checks.deadlock.reports if f.data["kind"] == "cycle"]
    assert bool(cycles) == bool(stuck)
    for f in cycles:
        members = {e["task"] for e in f.data["cycle"]}
        assert members <= {f"{t.comm}:{t.pid}" for t in stuck}


def test_a_knot_reports_the_holder_a_d_waiter_waits_on_even_if_it_sleeps_interruptibly():
    sim = Simulation()
    checks = attach_checks(sim)
    m = Mutex("&sb->s_umount")
    never = WaitQueue("signal")

    def holder():
        yield from mutex_lock(m)
        yield from wait_event(never, lambda: False, state="S")

    def waiter():
        yield 10
        yield from mutex_lock(m)

    def idle():
        yield from wait_event(WaitQueue("idle"), lambda: False, state="I")

    sim.spawn(holder(), "holder")
    sim.spawn(waiter(), "waiter")
    sim.spawn(idle(), "idle")
    sim.run()
    [finding] = checks.deadlock.reports
    assert finding.data["kind"] == "knot"
    assert [e["task"] for e in finding.data["cycle"]] == ["holder:1", "waiter:2"]
