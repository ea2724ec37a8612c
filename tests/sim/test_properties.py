"""Properties over random programs: no lost wake-ups, mutual exclusion, monotone time."""

from hypothesis import given, settings, strategies as st

from reclaimlab.sim import (
    Completion, Mutex, Simulation, WaitQueue, complete, mutex_lock, mutex_unlock, wait_event,
    wait_for_completion, wake_up,
)

programs = st.lists(
    st.lists(st.tuples(st.sampled_from(["lock", "sleep", "post", "wait"]),
                       st.integers(0, 50)), min_size=1, max_size=12),
    min_size=1, max_size=5)


@settings(max_examples=60, deadline=None)
@given(programs)
def test_mutual_exclusion_no_lost_wakeups_and_monotone_time(progs):
    sim = Simulation(ncpus=2)
    locks = [Mutex("a"), Mutex("b")]
    inside = [0, 0]
    tokens = [0]
    wq = WaitQueue("tokens")
    times = []

    class Clock:
        def event(self, kind, task, obj, info):
            times.append(sim.now)

    sim.add_observer(Clock())
    posts = sum(1 for p in progs for op, _ in p if op == "post")
    waits_allowed = [posts]

    def task(prog):
        for op, arg in prog:
            if op == "lock":
                m = locks[arg % 2]
                yield from mutex_lock(m)
                inside[arg % 2] += 1
                assert inside[arg % 2] == 1
                yield arg
                inside[arg % 2] -= 1
                mutex_unlock(m)
            elif op == "sleep":
                yield arg
            elif op == "post":
                tokens[0] += 1
                wake_up(wq)
            elif op == "wait" and waits_allowed[0] > 0:
                waits_allowed[0] -= 1  # never wait for more tokens than will ever be posted

                def avail():
                    return tokens[0] > 0

                yield from wait_event(wq, avail)
                tokens[0] -= 1

    for i, p in enumerate(progs):
        sim.spawn(task(p), f"t{i}")
    sim.run()
    # a waiter still blocked while a token is available would be a lost wake-up
    stuck = sim.blocked_tasks()
    assert not (stuck and tokens[0] > 0)
    assert all(m.owner is None for m in locks)
    assert times == sorted(times)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 30), min_size=1, max_size=8))
def test_every_completion_is_consumed_by_exactly_one_waiter(delays):
    sim = Simulation()
    c = Completion("c")
    got = []

    def waiter(i, d):
        yield d
        yield from wait_for_completion(c)
        got.append(i)

    def completer(d):
        yield d
        complete(c)

    for i, d in enumerate(delays):
        sim.spawn(waiter(i, d), f"w{i}")
        sim.spawn(completer(30 - d), f"c{i}")
    sim.run()
    assert sorted(got) == list(range(len(delays)))
    assert not sim.blocked_tasks() and c.done == 0
