"""Sleeping locks and spinlocks behave as the kernel's (kernel/locking/)."""

import pytest

from reclaimlab.sim import (
    RwSemaphore, Mutex, SimError, Simulation, Spinlock, down_read, down_read_trylock, down_write,
    down_write_trylock, mutex_lock, mutex_trylock, mutex_unlock, spin_lock, spin_unlock, up_read,
    up_write,
)


def test_mutex_is_handed_to_waiters_in_fifo_order():
    sim = Simulation()
    m = Mutex("m")
    order = []

    def holder():
        yield from mutex_lock(m)
        yield 1000  # everybody queues meanwhile
        mutex_unlock(m)

    def waiter(i):
        yield 10 * (5 - i)  # arrive in reverse pid order: 4, 3, 2, 1, 0
        yield from mutex_lock(m)
        order.append(i)
        assert m.owner is sim.current
        yield 1
        mutex_unlock(m)

    sim.spawn(holder(), "holder")
    for i in range(5):
        sim.spawn(waiter(i), f"w{i}")
    sim.run()
    assert order == [4, 3, 2, 1, 0]
    assert m.owner is None


def test_mutex_unlock_hands_ownership_before_the_waiter_runs():
    sim = Simulation()
    m = Mutex("m")
    seen = {}

    def a():
        yield from mutex_lock(m)
        yield 5
        mutex_unlock(m)
        seen["owner_after_unlock"] = m.owner.comm
        # a cannot retake it: it was handed off to b
        seen["retake"] = mutex_trylock(m)

    def b():
        yield 1
        yield from mutex_lock(m)
        mutex_unlock(m)

    sim.spawn(a(), "a")
    sim.spawn(b(), "b")
    sim.run()
    assert seen == {"owner_after_unlock": "b", "retake": False}


def test_trylock_never_sleeps_and_fails_when_held():
    sim = Simulation()
    m = Mutex("m")
    got = []

    def a():
        assert mutex_trylock(m)
        yield 100
        mutex_unlock(m)

    def b():
        yield 1
        got.append(mutex_trylock(m))
        yield 200
        got.append(mutex_trylock(m))
        mutex_unlock(m)

    sim.spawn(a(), "a")
    sim.spawn(b(), "b")
    sim.run()
    assert got == [False, True]


def test_unlocking_a_mutex_one_does_not_hold_names_task_and_stack():
    sim = Simulation()
    m = Mutex("m")

    def ext4_evict_inode():
        mutex_unlock(m)
        yield 0

    def evict():
        yield from ext4_evict_inode()

    sim.spawn(evict(), "kswapd0")
    with pytest.raises(SimError) as e:
        sim.run()
    msg = str(e.value)
    assert "kswapd0" in msg and "not held" in msg
    assert "evict > ext4_evict_inode" in msg


def test_rwsem_readers_share_writer_excludes_and_queued_writer_blocks_new_readers():
    sim = Simulation()
    s = RwSemaphore("s_umount")
    log = []

    def reader(name, delay):
        yield delay
        yield from down_read(s)
        log.append((sim.now, name, "in"))
        yield 100
        up_read(s)

    def writer():
        yield 10
        yield from down_write(s)
        log.append((sim.now, "w", "in"))
        assert not s.readers
        yield 50
        up_write(s)

    sim.spawn(reader("r1", 0), "r1")
    sim.spawn(reader("r2", 5), "r2")
    sim.spawn(writer(), "w")
    sim.spawn(reader("r3", 20), "r3")  # arrives while the writer waits: queues behind it
    sim.run()
    assert log == [(0, "r1", "in"), (5, "r2", "in"), (105, "w", "in"), (155, "r3", "in")]


def test_rwsem_trylocks():
    sim = Simulation()
    s = RwSemaphore("s")
    res = []

    def t():
        res.append(down_read_trylock(s))
        res.append(down_write_trylock(s))
        up_read(s)
        res.append(down_write_trylock(s))
        res.append(down_read_trylock(s))
        up_write(s)
        yield 0

    sim.spawn(t(), "t")
    sim.run()
    assert res == [True, False, True, False]


def test_sleeping_while_holding_a_spinlock_is_an_error_naming_task_and_lock():
    sim = Simulation()
    lk = Spinlock("inode->i_lock")

    def bad():
        spin_lock(lk)
        yield 10

    sim.spawn(bad(), "unlinker")
    with pytest.raises(SimError, match=r"unlinker.*inode->i_lock"):
        sim.run()


def test_blocking_on_a_mutex_while_holding_a_spinlock_is_an_error():
    sim = Simulation()
    lk = Spinlock("lru_lock")
    m = Mutex("m")

    def holder():
        yield from mutex_lock(m)
        yield 100
        mutex_unlock(m)

    def bad():
        yield 1
        spin_lock(lk)
        yield from mutex_lock(m)

    sim.spawn(holder(), "holder")
    sim.spawn(bad(), "bad")
    with pytest.raises(SimError, match="sleeping function called from invalid context"):
        sim.run()


def test_spinlock_section_without_yield_is_fine_and_tracked_in_held_locks():
    sim = Simulation()
    lk = Spinlock("l")
    seen = []

    def ok():
        spin_lock(lk)
        seen.append([x.name for x in sim.current.held_locks])
        spin_unlock(lk)
        seen.append(list(sim.current.held_locks))
        yield 1

    sim.spawn(ok(), "ok")
    sim.run()
    assert seen == [["l"], []]


def _contended_rwsem(spin_on_owner: bool, owner_sleeps: bool):
    """Two CPUs: ``owner`` write-holds a rwsem for 10 us (running, or asleep), ``waiter``
    wants it after 1 us. Returns the waiter's CPU time and when it got the lock."""
    from reclaimlab.sim import Run

    sim = Simulation(ncpus=2)
    sim.spin_on_owner = spin_on_owner
    s = RwSemaphore("i_rwsem")
    got = {}

    def owner():
        yield from down_write(s)
        yield 10_000 if owner_sleeps else Run(10_000)
        up_write(s)

    def waiter():
        yield 1_000
        yield from down_write(s)
        got["at"] = sim.now
        up_write(s)

    sim.spawn(owner(), "owner")
    w = sim.spawn(waiter(), "waiter")
    sim.run()
    return sim.cpus[0].busy_ns + sim.cpus[1].busy_ns - (0 if owner_sleeps else 10_000), got["at"], w


def test_a_writer_spins_on_a_running_owner_burning_cpu_until_the_lock_is_free():
    cpu_ns, at, _ = _contended_rwsem(spin_on_owner=True, owner_sleeps=False)
    assert at == 10_000  # took it the moment it fell free, no wake-up in between
    assert 8_000 <= cpu_ns <= 9_100  # spun from 1 us to 10 us


def test_a_writer_sleeps_when_the_owner_sleeps_or_spinning_is_configured_off():
    for spin, sleeps in ((True, True), (False, False)):
        cpu_ns, at, waiter = _contended_rwsem(spin_on_owner=spin, owner_sleeps=sleeps)
        assert cpu_ns == 0 and at == 10_000, (spin, sleeps)


def test_a_mutex_waiter_does_not_spin_on_one_cpu():
    from reclaimlab.sim import Run

    sim = Simulation(ncpus=1)
    m = Mutex("m")

    def owner():
        yield from mutex_lock(m)
        yield Run(5_000)
        mutex_unlock(m)

    def waiter():
        yield from mutex_lock(m)
        mutex_unlock(m)

    sim.spawn(owner(), "owner")
    sim.spawn(waiter(), "waiter")
    sim.run()
    assert sim.cpus[0].busy_ns == 5_000  # the only CPU runs the owner: nothing to spin on


def _steal_race(sleeper_waited_ns: int):
    """Three CPUs: ``owner`` write-holds a rwsem for 10 us of CPU; ``sleeper`` queued on it
    earlier (while the owner slept) and ``spinner`` spins on it since 6 us. Who gets it next?"""
    from reclaimlab.sim import Run

    sim = Simulation(ncpus=3)
    s = RwSemaphore("i_rwsem")
    order = []

    def owner():
        yield from down_write(s)
        yield sleeper_waited_ns      # asleep: the sleeper queues instead of spinning
        yield Run(10_000)
        up_write(s)

    def contender(name, delay):
        yield delay
        yield from down_write(s)
        order.append(name)
        yield Run(100)
        up_write(s)

    sim.spawn(owner(), "owner")
    sim.spawn(contender("sleeper", 1), "sleeper")
    sim.spawn(contender("spinner", sleeper_waited_ns + 6_000), "spinner")
    sim.run()
    return order


def test_a_spinner_steals_the_lock_from_a_sleeper_that_has_not_waited_long():
    assert _steal_race(sleeper_waited_ns=1_000) == ["spinner", "sleeper"]


def test_a_sleeper_that_waited_the_handoff_bound_gets_the_lock_before_spinners():
    from reclaimlab.sim.locks import HANDOFF_AFTER_NS

    assert _steal_race(sleeper_waited_ns=HANDOFF_AFTER_NS) == ["sleeper", "spinner"]
