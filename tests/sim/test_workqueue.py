"""Workqueues: per-CPU placement, delayed work, mod_delayed_work, flush (kernel/workqueue.c)."""

from reclaimlab.sim import (
    JIFFY_NS, PF_WQ_WORKER, DelayedWork, Simulation, WQ_UNBOUND, Work, alloc_workqueue,
    cancel_delayed_work, current, flush_delayed_work, flush_work, flush_workqueue,
    mod_delayed_work, queue_delayed_work, queue_work, queue_work_on,
)


def test_per_cpu_work_runs_on_the_queuing_cpu_in_a_worker():
    sim = Simulation(ncpus=4)
    wq = alloc_workqueue(sim, "inodegc")
    ran = []

    def fn(work):
        me = current()
        ran.append((work.data, me.cpu, bool(me.flags & PF_WQ_WORKER)))
        yield 1

    def queuer(cpu):
        queue_work(wq, Work(fn, cpu))
        yield 0

    for cpu in range(4):
        sim.spawn(queuer(cpu), f"q{cpu}", cpu=cpu)
    sim.run()
    assert sorted(ran) == [(c, c, True) for c in range(4)]


def test_queue_work_on_names_the_cpu_and_pending_work_is_not_queued_twice():
    sim = Simulation(ncpus=2)
    wq = alloc_workqueue(sim, "wq")
    ran = []

    def fn(work):
        ran.append(current().cpu)
        yield 0

    w = Work(fn)
    res = []

    def queuer():
        res.append(queue_work_on(1, wq, w))
        res.append(queue_work_on(1, wq, w))
        yield 0

    sim.spawn(queuer(), "q", cpu=0)
    sim.run()
    assert res == [True, False] and ran == [1]


def test_delayed_work_fires_at_its_time_and_mod_delayed_work_rearms():
    sim = Simulation()
    wq = alloc_workqueue(sim, "wq")
    fired = []

    def fn(work):
        fired.append(sim.now)
        yield 0

    dw = DelayedWork(fn)
    res = []

    def t():
        res.append(queue_delayed_work(wq, dw, 10 * JIFFY_NS))
        res.append(queue_delayed_work(wq, dw, JIFFY_NS))  # already pending: no change
        yield 3 * JIFFY_NS
        res.append(mod_delayed_work(wq, dw, JIFFY_NS))  # re-armed: fires at 4 jiffies
        yield 10 * JIFFY_NS
        res.append(mod_delayed_work(wq, dw, 0))  # not pending: queued now
        yield 1

    sim.spawn(t(), "t")
    sim.run()
    assert res == [True, False, True, False]
    assert fired == [4 * JIFFY_NS, 13 * JIFFY_NS]


def test_flush_work_waits_for_the_running_instance():
    sim = Simulation()
    wq = alloc_workqueue(sim, "wq", WQ_UNBOUND, 1)
    done = []

    def slow(work):
        yield 1000
        done.append(sim.now)

    w = Work(slow)

    def t():
        queue_work(wq, w)
        yield 10
        waited = yield from flush_work(w)
        done.append(("flushed", sim.now, waited))
        waited = yield from flush_work(w)
        done.append(("again", sim.now, waited))

    sim.spawn(t(), "t")
    sim.run()
    assert done == [1000, ("flushed", 1000, True), ("again", 1000, False)]


def test_flush_delayed_work_fires_the_timer_now_and_waits():
    sim = Simulation()
    wq = alloc_workqueue(sim, "wq")
    fired = []

    def fn(work):
        fired.append(sim.now)
        yield 0

    dw = DelayedWork(fn)

    def t():
        queue_delayed_work(wq, dw, 10**9)
        yield 5
        yield from flush_delayed_work(dw)
        fired.append(("back", sim.now))

    sim.spawn(t(), "t")
    sim.run()
    assert fired == [5, ("back", 5)]


def test_cancel_delayed_work_stops_it_and_flush_workqueue_drains_everything():
    sim = Simulation(ncpus=2)
    wq = alloc_workqueue(sim, "wq")
    ran = []

    def fn(work):
        yield 100 * (work.data + 1)
        ran.append(work.data)

    dw = DelayedWork(fn, 99)

    def t():
        queue_delayed_work(wq, dw, 50)
        assert cancel_delayed_work(dw)
        for i in range(3):
            queue_work_on(i % 2, wq, Work(fn, i))
        yield from flush_workqueue(wq)
        ran.append(("flushed", sim.now))

    sim.spawn(t(), "t")
    sim.run()
    assert ran == [0, 1, 2, ("flushed", 400)]


def test_a_work_item_never_runs_on_two_workers_at_once():
    sim = Simulation(ncpus=2)
    wq = alloc_workqueue(sim, "unbound", WQ_UNBOUND, 4)
    running = [0]
    peak = [0]
    runs = []

    def fn(work):
        running[0] += 1
        peak[0] = max(peak[0], running[0])
        yield 100
        runs.append(sim.now)
        running[0] -= 1

    w = Work(fn)

    def requeuer():
        queue_work(wq, w)
        yield 10
        assert queue_work(wq, w)  # queued again while the first instance runs
        yield from flush_work(w)

    def other_cpu_requeuer():
        yield 20
        queue_work_on(1, wq, w)

    sim.spawn(requeuer(), "a", cpu=0)
    sim.spawn(other_cpu_requeuer(), "b", cpu=1)
    sim.run()
    assert peak == [1] and runs == [100, 200]


def test_lockdep_sees_a_flush_under_a_lock_the_work_takes_even_when_nothing_is_queued():
    """``__flush_work`` takes the work's lockdep map, ``process_one_work`` holds it around the
    function: holding ``A`` while flushing a work that takes ``A`` is reported, although this
    flush found the work idle and returned at once."""
    from reclaimlab.check import attach_checks
    from reclaimlab.sim import Mutex, mutex_lock, mutex_unlock

    sim = Simulation(ncpus=2)
    checks = attach_checks(sim)
    wq = alloc_workqueue(sim, "events")
    a = Mutex("A")

    def takes_a(work):
        yield from mutex_lock(a)
        mutex_unlock(a)

    w = Work(takes_a)

    def flusher():
        queue_work(wq, w)
        yield from flush_work(w)          # the work has run once: work --> A is known
        yield from mutex_lock(a)
        yield from flush_work(w)          # idle: returns at once, but A --> work
        mutex_unlock(a)

    sim.spawn(flusher(), "flusher")
    sim.run()
    [cycle] = [f for f in checks.findings if f.kind == "lockdep_circular"]
    assert "(work_completion)(takes_a) --> A" in cycle.message
    assert cycle.task.startswith("flusher:")
