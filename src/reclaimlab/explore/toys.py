"""Planted-bug models that check the explorer itself (not kernel models).

Each is a ``build(sim)`` for ``ModelTarget``, registered under a ``toy:`` name that ``explore`` and
``replay`` accept in place of a scenario:

- ``toy:abba`` — two tasks take mutexes A and B in opposite orders, but the plain schedule
  separates them in time: task 1 wakes at 1 ms and holds A for 0.5 ms, task 2 wakes at 2 ms. Only
  abstract time (letting task 2's wake-up fire first) overlaps them, and then they deadlock.
- ``toy:abba-instant`` — both wake at the same instant; the FIFO order lets task 1 take both locks
  at once, only running task 2 first deadlocks (a same-instant task choice, found in timed mode).
- ``toy:ordered`` — ``toy:abba`` with both tasks taking A before B: no schedule deadlocks.
"""

from __future__ import annotations

from typing import Callable

from reclaimlab.sim import (
    NSEC_PER_MSEC, NSEC_PER_USEC, Mutex, Run, Simulation, msleep, mutex_lock, mutex_unlock,
)

from .target import ModelTarget


def lock_pair(first: Mutex, second: Mutex, wake_ns: int, hold_ns: int):
    """Sleep until ``wake_ns``, take ``first``, hold it ``hold_ns``, take ``second``, release."""
    yield wake_ns
    yield from mutex_lock(first)
    if hold_ns:
        yield hold_ns
    yield from mutex_lock(second)
    yield Run(10 * NSEC_PER_USEC)
    mutex_unlock(second)
    mutex_unlock(first)


def abba(sim: Simulation) -> None:
    a, b = Mutex("A"), Mutex("B")
    sim.spawn(lock_pair(a, b, 1 * NSEC_PER_MSEC, NSEC_PER_MSEC // 2), "ab")
    sim.spawn(lock_pair(b, a, 2 * NSEC_PER_MSEC, 3 * NSEC_PER_MSEC // 2), "ba")


def ordered(sim: Simulation) -> None:
    a, b = Mutex("A"), Mutex("B")
    sim.spawn(lock_pair(a, b, 1 * NSEC_PER_MSEC, NSEC_PER_MSEC // 2), "ab")
    sim.spawn(lock_pair(a, b, 2 * NSEC_PER_MSEC, 3 * NSEC_PER_MSEC // 2), "ab2")


def ab_instant(a: Mutex, b: Mutex):
    """Wake at 1 ms, take A and B without yielding in between, compute, release."""
    yield from msleep(1)
    yield from mutex_lock(a)
    yield from mutex_lock(b)
    yield Run(10 * NSEC_PER_USEC)
    mutex_unlock(b)
    mutex_unlock(a)


def ba_instant(a: Mutex, b: Mutex):
    """Wake at 1 ms, take B, compute (a window for a same-instant rival), then take A."""
    yield from msleep(1)
    yield from mutex_lock(b)
    yield Run(10 * NSEC_PER_USEC)
    yield from mutex_lock(a)
    mutex_unlock(a)
    mutex_unlock(b)


def abba_instant(sim: Simulation) -> None:
    a, b = Mutex("A"), Mutex("B")
    sim.spawn(ab_instant(a, b), "ab")
    sim.spawn(ba_instant(a, b), "ba")


TOYS: dict[str, Callable[[Simulation], None]] = {
    "toy:abba": abba,
    "toy:abba-instant": abba_instant,
    "toy:ordered": ordered,
}


def toy_target(name: str, seed: int = 0) -> ModelTarget:
    """The ``ModelTarget`` of a registered toy; KeyError if there is none of that name."""
    return ModelTarget(name, TOYS[name], seed=seed)
