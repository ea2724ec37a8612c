"""Wait queues and completions (``kernel/sched/wait.c``, ``kernel/sched/completion.c``).

``wait_event`` re-checks its condition after every wake-up, so a wake-up is never lost: a task
only parks after seeing the condition false, and whoever makes it true calls ``wake_up``
afterwards. Completions count ``complete`` calls that found no waiter, as the kernel's ``done``.
"""

from __future__ import annotations

from collections import deque
from typing import Callable

from . import core
from .core import PARK, TIMEOUT, Task

_COMPLETE_ALL = 1 << 62


class WaitQueue:
    """``wait_queue_head_t``."""

    __slots__ = ("name", "waiters")

    def __init__(self, name: str = "wq") -> None:
        self.name = name
        self.waiters: deque[Task] = deque()

    def holders(self) -> list[Task]:
        return []

    def cancel_wait(self, task: Task) -> None:
        self.waiters.remove(task)

    def __repr__(self) -> str:
        return f"waitqueue {self.name}"


def wait_event(wq: WaitQueue, cond: Callable[[], bool], timeout: int | None = None,
               state: str = "D"):
    """``wait_event``/``wait_event_timeout``: sleep until ``cond()``; False if timed out."""
    if cond():
        return True
    task = core._current
    sim = task.sim
    deadline = None if timeout is None else sim.now + timeout
    while True:
        wq.waiters.append(task)
        sim.park(task, wq, None if deadline is None else deadline - sim.now, state)
        got = yield PARK
        if cond():
            return True
        if got is TIMEOUT or (deadline is not None and sim.now >= deadline):
            return False


def wake_up(wq: WaitQueue) -> int:
    """``wake_up_all``: wake every waiter (each re-checks its condition); returns how many."""
    n = len(wq.waiters)
    if n:
        waiters = wq.waiters
        wq.waiters = deque()
        sim = waiters[0].sim
        for t in waiters:
            sim.wake(t, None, wq)
    return n


wake_up_all = wake_up


class Completion:
    """``struct completion``."""

    __slots__ = ("name", "done", "waiters", "completer")

    def __init__(self, name: str = "completion", completer: Task | None = None) -> None:
        self.name = name
        self.done = 0
        self.waiters: deque[Task] = deque()
        self.completer = completer

    def holders(self) -> list[Task]:
        """The task expected to complete it, when known (a single-owner wait)."""
        return [self.completer] if self.completer is not None else []

    def cancel_wait(self, task: Task) -> None:
        self.waiters.remove(task)

    def __repr__(self) -> str:
        return f"completion {self.name}"


def wait_for_completion(c: Completion, timeout: int | None = None):
    """``wait_for_completion``/``_timeout``: True once completed, False on timeout."""
    if c.done:
        if c.done != _COMPLETE_ALL:
            c.done -= 1
        return True
    task = core._current
    c.waiters.append(task)
    task.sim.park(task, c, timeout)
    got = yield PARK
    return got is not TIMEOUT


def complete(c: Completion) -> None:
    """``complete``: wake one waiter, or remember the completion."""
    if c.waiters:
        t = c.waiters.popleft()
        t.sim.wake(t, None, c)
    elif c.done != _COMPLETE_ALL:
        c.done += 1


def complete_all(c: Completion) -> None:
    """``complete_all``: wake every waiter and let all future waits pass."""
    c.done = _COMPLETE_ALL
    while c.waiters:
        t = c.waiters.popleft()
        t.sim.wake(t, None, c)


def reinit_completion(c: Completion) -> None:
    c.done = 0
