"""A per-superblock queue of deferred eviction work and its worker (simulator machinery shared by
the ``evict-async``, ``split-evict`` and ``deferred-reclaim`` designs).

Each proposal hands an inode to "a workqueue"; the model gives each superblock one FIFO of
``(inode, step)`` pairs drained by one delayed work item on the VFS's ``inode_evict`` workqueue
(``delay_ns`` after the first queueing, 0 = at once). ``step(inode)`` is the design's generator
(the blocking rest of eviction). The queue measures how long each step took (virtual time,
including sleeps: what a throttle based on "the measured deferred-reclaim time" would see) and
keeps the average. ``sync_filesystem`` and unmount wait for it to drain (``evict_queue_flush``).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Iterator

from reclaimlab.sim import DelayedWork, WaitQueue, current, queue_delayed_work, wait_event, wake_up


class EvictQueueWait(WaitQueue):
    """Flush waiters; the "holder" is the draining worker (for the deadlock detector)."""

    __slots__ = ("queue",)

    def __init__(self, queue: "EvictQueue") -> None:
        super().__init__(f"{queue.sb.s_id}:{queue.name}")
        self.queue = queue

    def holders(self) -> list:
        worker = self.queue.worker
        return [worker] if worker is not None else []


class EvictQueue:
    """One superblock's deferred-eviction FIFO (see the module docstring)."""

    __slots__ = ("sb", "name", "delay_ns", "items", "work", "wait", "worker", "done",
                 "total_ns")

    def __init__(self, sb: Any, name: str, delay_ns: int) -> None:
        self.sb = sb
        self.name = name
        self.delay_ns = delay_ns
        self.items: deque[tuple[Any, Callable[[Any], Iterator]]] = deque()
        self.work = DelayedWork(evict_queue_worker, self)
        self.wait = EvictQueueWait(self)
        self.worker: Any = None
        self.done = 0
        self.total_ns = 0

    def __repr__(self) -> str:
        return f"{self.name} queue {self.sb.s_id}"

    def average_ns(self) -> int:
        """Average virtual time one deferred step took so far (0 before the first)."""
        return self.total_ns // self.done if self.done else 0

    def emit_depth(self) -> None:
        self.sb.s_sim.emit("queue_depth", current(), self,
                           {"name": self.name, "sb": self.sb.s_id, "depth": len(self.items)})


def evict_queue_of(sb: Any, name: str, delay_ns: int) -> EvictQueue:
    """``sb``'s queue (created on first use; one per superblock, the design is per sb)."""
    q = sb.s_deferred_evict
    if q is None:
        q = sb.s_deferred_evict = EvictQueue(sb, name, delay_ns)
    return q


def evict_queue_add(q: EvictQueue, inode: Any, step: Callable[[Any], Iterator]) -> None:
    """Queue ``step(inode)`` and arm the worker."""
    q.items.append((inode, step))
    q.emit_depth()
    queue_delayed_work(q.sb.s_sim.vfs.evict_wq, q.work, q.delay_ns)


def evict_queue_worker(work: DelayedWork):
    """Drain the queue in FIFO order, timing each step."""
    q: EvictQueue = work.data
    if q.worker is not None:
        return  # another worker is draining this queue and will see our items
    q.worker = current()
    sim = q.sb.s_sim
    while q.items:
        inode, step = q.items.popleft()
        q.emit_depth()
        started = sim.now
        yield from step(inode)
        q.total_ns += sim.now - started
        q.done += 1
        wake_up(q.wait)
    q.worker = None
    wake_up(q.wait)


def evict_queue_flush(sb: Any):
    """Wait until ``sb``'s deferred eviction work is done (sync, unmount)."""
    q: EvictQueue | None = sb.s_deferred_evict
    if q is None:
        return
    if q.items and q.worker is None:
        queue_delayed_work(sb.s_sim.vfs.evict_wq, q.work, 0)
    yield from wait_event(q.wait, lambda: not q.items and q.worker is None)
