"""The canonical state: equal for equal futures, different where the future differs."""

from __future__ import annotations

from reclaimlab.explore.state import canonical_state, object_summary, state_hash
from reclaimlab.sim import Mutex, Simulation, mutex_lock, mutex_unlock


def two_sleeps():
    yield 1000
    yield 1000


def counter(n: int):
    for i in range(n):
        yield 1000


def at(build, t: int) -> tuple:
    sim = Simulation()
    build(sim)
    sim.run(until=t)
    return canonical_state(sim)


def test_the_same_stack_at_a_different_yield_is_a_different_state():
    first = at(lambda sim: sim.spawn(two_sleeps(), "t"), 500)
    second = at(lambda sim: sim.spawn(two_sleeps(), "t"), 1500)
    assert first[1] != second[1]  # same function, same state S: the bytecode offset differs


def test_loop_progress_is_part_of_the_state():
    a = at(lambda sim: sim.spawn(counter(5), "t"), 1500)
    b = at(lambda sim: sim.spawn(counter(5), "t"), 2500)
    assert a[1] != b[1]


def test_lock_owners_and_subsystem_fingerprints_are_part_of_the_state():
    def holder(m):
        yield from mutex_lock(m)
        yield 10_000
        mutex_unlock(m)

    def build(names):
        def b(sim):
            m = Mutex("m")
            sim.spawn(holder(m), names[0])
            sim.spawn(holder(m), names[1])
        return b

    assert at(build(["a", "b"]), 5) != at(build(["b", "a"]), 5)
    sim = Simulation()
    plain = state_hash(sim)
    sim.state_fingerprint = [lambda: ("free", 12)]
    assert state_hash(sim) != plain


def test_object_summary_reads_plain_fields_and_container_sizes():
    m = Mutex("i_rwsem")
    assert object_summary(m) == ("i_rwsem", None, 0, 0)  # name, owner, waiters, spinners
