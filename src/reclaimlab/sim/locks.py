"""Sleeping locks, spinlocks and lockdep maps with the kernel's semantics.

Modelled: ``kernel/locking/mutex.c`` (sleeping, owner, FIFO hand-off to the first waiter when
nobody spins — the kernel lets a woken waiter race for the lock and hands off only after it
starved, we hand off directly, which keeps runs fair and deterministic),
``kernel/locking/rwsem.c`` (FIFO queue; a reader queues behind a waiting writer;
``down_read_trylock`` fails while anyone waits, as ``RWSEM_READ_FAILED_MASK`` includes the waiters
flag), optimistic spinning of both (``CONFIG_MUTEX_SPIN_ON_OWNER``/``CONFIG_RWSEM_SPIN_ON_OWNER``:
spinners steal the lock from sleepers, see ``_spin_on_owner``), spinlocks (an atomic section: a
holder may not sleep, block or even consume CPU — code between two yields takes no virtual time,
so a spinlock is never contended), and lockdep-only
maps (``lock_map_acquire``) for pseudo-locks such as ``fs_reclaim`` and ``jbd2_handle``.

Every lock has ``name``, its lockdep class. Acquisitions are reported to observers as
``lock_acquire`` (before the attempt, ``task.held_locks`` being what the task already holds),
``lock_acquired`` and ``lock_release``.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from . import core
from .core import PARK, SimError, Task


def _stack_error(task: Task, msg: str) -> SimError:
    return SimError(f"{msg}: task {task.comm}:{task.pid}, stack: {' > '.join(task.stack())}")


def _release_held(task: Task, lock: Any) -> None:
    held = task.held_locks
    if held and held[-1] is lock:  # the usual, properly nested release
        held.pop()
        return
    for i in range(len(held) - 2, -1, -1):
        if held[i] is lock:
            del held[i]
            return


# One pass of the spin-on-owner loop between two looks at the lock (``cpu_relax`` and the owner
# checks; assumption: 100 ns, a few cache-line round trips on a contended lock word).
SPIN_ON_OWNER_NS = 100


# How long the first sleeping waiter may be passed over by spinners before the unlock hands the
# lock to it (RWSEM_WAIT_TIMEOUT, one jiffy at least: 4 ms at HZ=250; the mutex's
# MUTEX_FLAG_HANDOFF is modelled with the same bound).
HANDOFF_AFTER_NS = 4_000_000


def _spin_on_owner(task: Task, lock: Any, steal: Any):
    """``mutex_optimistic_spin``/``rwsem_optimistic_spin``: a writer that finds the lock
    write-owned by a task running on a CPU burns CPU waiting for it instead of sleeping, for as
    long as that owner stays on its CPU and nothing else waits for the spinner's CPU
    (``need_resched``). While anyone spins, an unlock leaves the lock free instead of handing
    it to the first sleeper (``_handoff``), and the spinner takes it (``steal(lock)``, even
    with sleepers queued, as ``rwsem_try_write_lock_unqueued`` does). Returns True if the
    spinner got the lock; False when it should queue and sleep.

    Simplified: every spinner spins on the owner (the kernel queues spinners on an MCS lock,
    ``osq_lock``, where they spin too); a reader-owned rwsem is not spun on (the kernel spins
    on it for a bounded time); the switch is ``Simulation.spin_on_owner`` (``[machine]
    lock_spin_on_owner``), on by default as in x86-64 configs.
    """
    sim = task.sim
    if not sim.spin_on_owner:
        return False
    lock.spinners += 1
    try:
        while True:
            owner = lock.owner
            if owner is None:
                return steal(lock)
            if owner.on_cpu is None or owner is task:
                return False  # the owner sleeps or waits for a CPU (owner_on_cpu() false)
            if not sim._cpu_free_for(task):
                return False  # no CPU to spin on, or need_resched(): someone waits for it
            yield core.Run(SPIN_ON_OWNER_NS)
    finally:
        lock.spinners -= 1


def _mutex_steal(m: "Mutex") -> bool:
    if m.owner is None:
        m.owner = core._current
        return True
    return False


def _rwsem_steal_write(s: "RwSemaphore") -> bool:
    if s.owner is None and not s.readers:
        s.owner = core._current
        return True
    return False


def _handoff(lock: Any, first: Task) -> bool:
    """Whether an unlock hands the lock to its first sleeping waiter: always when nobody spins;
    while someone does, only once that waiter has waited ``HANDOFF_AFTER_NS`` (the handoff
    bit that stops spinners from starving sleepers)."""
    return not lock.spinners or first.sim.now - first.blocked_since >= HANDOFF_AFTER_NS


# Shared, read-only info objects: observers must not mutate them.
_EXCL = {"trylock": False, "read": False}
_SHARED = {"trylock": False, "read": True}
_TRY_EXCL = {"trylock": True, "read": False}
_TRY_SHARED = {"trylock": True, "read": True}
_MAP_EXCL = {"read": False}
_MAP_SHARED = {"read": True}


class Mutex:
    """``struct mutex``: a sleeping lock with an owner, a FIFO wait list and the number of
    tasks spinning on it."""

    __slots__ = ("name", "owner", "waiters", "spinners")

    def __init__(self, name: str) -> None:
        self.name = name
        self.owner: Task | None = None
        self.waiters: deque[Task] = deque()
        self.spinners = 0

    def holders(self) -> list[Task]:
        return [self.owner] if self.owner is not None else []

    def cancel_wait(self, task: Task) -> None:
        self.waiters.remove(task)

    def __repr__(self) -> str:
        return f"mutex {self.name}"


def mutex_lock(m: Mutex, _info: dict = _EXCL):
    """``mutex_lock``: take ``m``, sleeping in TASK_UNINTERRUPTIBLE until handed to us."""
    task = core._current
    if (hook := task.sim._hook) is not None:
        hook("lock_acquire", task, m, _info)
    if m.owner is None:
        m.owner = task
    elif m.owner.on_cpu is None or not (yield from _spin_on_owner(task, m, _mutex_steal)):
        m.waiters.append(task)
        task.sim.park(task, m)
        yield PARK
    task.held_locks.append(m)
    if (hook := task.sim._hook) is not None:
        hook("lock_acquired", task, m, None)


def mutex_trylock(m: Mutex) -> bool:
    """``mutex_trylock``: take ``m`` if free, never sleep."""
    task = core._current
    if m.owner is not None:
        return False
    if (hook := task.sim._hook) is not None:
        hook("lock_acquire", task, m, _TRY_EXCL)
    m.owner = task
    task.held_locks.append(m)
    if (hook := task.sim._hook) is not None:
        hook("lock_acquired", task, m, None)
    return True


def mutex_unlock(m: Mutex) -> None:
    """``mutex_unlock``: release ``m``, handing it to the first waiter."""
    task = core._current
    if m.owner is not task:
        raise _stack_error(task, f"mutex_unlock of {m.name} not held by this task "
                                 f"(owner {m.owner!r})")
    _release_held(task, m)
    if (hook := task.sim._hook) is not None:
        hook("lock_release", task, m, None)
    if m.waiters and _handoff(m, m.waiters[0]):
        nxt = m.waiters.popleft()
        m.owner = nxt
        task.sim.wake(nxt, None, m)
    else:
        m.owner = None  # a spinner takes it; the sleepers wait for its unlock


class RwSemaphore:
    """``struct rw_semaphore``: many readers or one writer, FIFO queue of waiters, the number
    of writers spinning on it."""

    __slots__ = ("name", "owner", "readers", "waiters", "spinners")

    def __init__(self, name: str) -> None:
        self.name = name
        self.owner: Task | None = None
        self.readers: list[Task] = []
        self.waiters: deque[tuple[Task, bool]] = deque()
        self.spinners = 0

    def holders(self) -> list[Task]:
        return [self.owner] if self.owner is not None else list(self.readers)

    def cancel_wait(self, task: Task) -> None:
        for i, (t, _) in enumerate(self.waiters):
            if t is task:
                del self.waiters[i]
                break
        self._grant()

    def _grant(self) -> None:
        """``rwsem_wake``: hand the lock to the head writer, or to the readers at the head —
        unless a writer spins on it and the head has not waited long (``_handoff``)."""
        if self.waiters and self.owner is None and not _handoff(self, self.waiters[0][0]):
            return
        sim = None
        while self.waiters and self.owner is None:
            t, write = self.waiters[0]
            if write:
                if self.readers:
                    return
                self.waiters.popleft()
                self.owner = t
            else:
                self.waiters.popleft()
                self.readers.append(t)
            sim = sim or t.sim
            sim.wake(t, None, self)
            if write:
                return

    def __repr__(self) -> str:
        return f"rwsem {self.name}"


def down_read(s: RwSemaphore, _info: dict = _SHARED):
    """``down_read``: shared acquisition; queues behind a holder-writer or any waiter."""
    task = core._current
    if (hook := task.sim._hook) is not None:
        hook("lock_acquire", task, s, _info)
    if s.owner is None and not s.waiters:
        s.readers.append(task)
    else:
        s.waiters.append((task, False))
        task.sim.park(task, s)
        yield PARK
    task.held_locks.append(s)
    if (hook := task.sim._hook) is not None:
        hook("lock_acquired", task, s, _SHARED)


def down_write(s: RwSemaphore, _info: dict = _EXCL):
    """``down_write``: exclusive acquisition."""
    task = core._current
    if (hook := task.sim._hook) is not None:
        hook("lock_acquire", task, s, _info)
    if s.owner is None and not s.readers and not s.waiters:
        s.owner = task
    elif s.owner is None or s.owner.on_cpu is None \
            or not (yield from _spin_on_owner(task, s, _rwsem_steal_write)):
        s.waiters.append((task, True))
        task.sim.park(task, s)
        yield PARK
    task.held_locks.append(s)
    if (hook := task.sim._hook) is not None:
        hook("lock_acquired", task, s, _EXCL)


def down_read_trylock(s: RwSemaphore) -> bool:
    """``down_read_trylock``: fails when a writer holds it or anyone waits."""
    task = core._current
    if s.owner is not None or s.waiters:
        return False
    if (hook := task.sim._hook) is not None:
        hook("lock_acquire", task, s, _TRY_SHARED)
    s.readers.append(task)
    task.held_locks.append(s)
    if (hook := task.sim._hook) is not None:
        hook("lock_acquired", task, s, _SHARED)
    return True


def down_write_trylock(s: RwSemaphore) -> bool:
    """``down_write_trylock``."""
    task = core._current
    if s.owner is not None or s.readers or s.waiters:
        return False
    if (hook := task.sim._hook) is not None:
        hook("lock_acquire", task, s, _TRY_EXCL)
    s.owner = task
    task.held_locks.append(s)
    if (hook := task.sim._hook) is not None:
        hook("lock_acquired", task, s, _EXCL)
    return True


def up_read(s: RwSemaphore) -> None:
    """``up_read``."""
    task = core._current
    if task not in s.readers:
        raise _stack_error(task, f"up_read of {s.name} not read-held by this task")
    s.readers.remove(task)
    _release_held(task, s)
    if (hook := task.sim._hook) is not None:
        hook("lock_release", task, s, None)
    s._grant()


def up_write(s: RwSemaphore) -> None:
    """``up_write``."""
    task = core._current
    if s.owner is not task:
        raise _stack_error(task, f"up_write of {s.name} not write-held by this task "
                                 f"(owner {s.owner!r})")
    s.owner = None
    _release_held(task, s)
    if (hook := task.sim._hook) is not None:
        hook("lock_release", task, s, None)
    s._grant()


def mutex_lock_nested(m: Mutex, subclass: int):
    """``mutex_lock_nested``: as ``mutex_lock``; lockdep sees class ``name/subclass``."""
    return (yield from mutex_lock(m, {"trylock": False, "read": False, "subclass": subclass}))


def down_read_nested(s: RwSemaphore, subclass: int):
    """``down_read_nested``."""
    return (yield from down_read(s, {"trylock": False, "read": True, "subclass": subclass}))


def down_write_nested(s: RwSemaphore, subclass: int):
    """``down_write_nested`` (``inode_lock_nested``: parent, then child of the same class)."""
    return (yield from down_write(s, {"trylock": False, "read": False, "subclass": subclass}))


class Spinlock:
    """``spinlock_t``: an atomic section; holding it across any yield is a bug."""

    __slots__ = ("name", "owner")
    is_spin = True

    def __init__(self, name: str) -> None:
        self.name = name
        self.owner: Task | None = None

    def holders(self) -> list[Task]:
        return [self.owner] if self.owner is not None else []

    def __repr__(self) -> str:
        return f"spinlock {self.name}"


def spin_lock(lk: Spinlock) -> None:
    """``spin_lock``."""
    task = core._current
    if (hook := task.sim._hook) is not None:
        hook("lock_acquire", task, lk, _EXCL)
    if lk.owner is not None:
        raise _stack_error(task, f"spin_lock of {lk.name} held by {lk.owner!r}, which left its "
                                 f"atomic section without unlocking")
    lk.owner = task
    task.spin_depth += 1
    task.held_locks.append(lk)
    if (hook := task.sim._hook) is not None:
        hook("lock_acquired", task, lk, None)


def spin_trylock(lk: Spinlock) -> bool:
    """``spin_trylock``."""
    if lk.owner is not None:
        return False
    spin_lock(lk)
    return True


def spin_unlock(lk: Spinlock) -> None:
    """``spin_unlock``."""
    task = core._current
    if lk.owner is not task:
        raise _stack_error(task, f"spin_unlock of {lk.name} not held by this task")
    lk.owner = None
    task.spin_depth -= 1
    _release_held(task, lk)
    if (hook := task.sim._hook) is not None:
        hook("lock_release", task, lk, None)


class LockdepMap:
    """``struct lockdep_map`` without a lock: a class lockdep tracks, never contended."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def holders(self) -> list[Task]:
        return []

    def __repr__(self) -> str:
        return f"lockdep_map {self.name}"


def lock_map_acquire(m: LockdepMap, read: bool = False) -> None:
    """``lock_map_acquire``: tell lockdep ``m`` is now held."""
    task = core._current
    if (hook := task.sim._hook) is not None:
        hook("lock_acquire", task, m, _SHARED if read else _EXCL)
    task.held_locks.append(m)
    if (hook := task.sim._hook) is not None:
        hook("lock_acquired", task, m, _MAP_SHARED if read else _MAP_EXCL)


def lock_map_release(m: LockdepMap) -> None:
    """``lock_map_release``."""
    task = core._current
    if m not in task.held_locks:
        raise _stack_error(task, f"lock_map_release of {m.name} not held")
    _release_held(task, m)
    if (hook := task.sim._hook) is not None:
        hook("lock_release", task, m, None)
