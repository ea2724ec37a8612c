"""Workqueues (``kernel/workqueue.c``): bound per-CPU pools, unbound pools, delayed work.

A bound workqueue has one worker kthread per CPU, pinned to it (``kworker/N:name``); work queued
with ``queue_work`` goes to the queuing task's CPU, as ``WORK_CPU_UNBOUND`` resolves to the local
CPU. An unbound workqueue (``WQ_UNBOUND``) has one pool of ``max_active`` workers.

Simplified: no concurrency management (a bound pool has exactly one worker, so a work item that
blocks holds up the rest of that CPU's items — the kernel would start another worker; rescuers
are not modelled); a delayed work's timer is a runtime timer.

``flush_work`` waits for the last queued instance to finish: each queueing of an idle item gets
an instance number, and the worker records the instance it completed.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable

from . import core
from .core import PF_KTHREAD, PF_WQ_WORKER, Simulation, Timer
from .locks import LockdepMap, lock_map_acquire, lock_map_release
from .wait import WaitQueue, wait_event, wake_up

WQ_UNBOUND = 1 << 1


class Work:
    """``struct work_struct``: ``func(work)`` is a generator function run by a worker."""

    __slots__ = ("func", "data", "pending", "running", "queued_seq", "done_seq", "pool", "wq",
                 "lockdep_map")

    def __init__(self, func: Callable[["Work"], Any], data: Any = None) -> None:
        self.func = func
        self.data = data
        self.lockdep_map = _work_map(func)
        self.pending = False
        self.running = 0
        self.queued_seq = 0
        self.done_seq = 0
        self.pool: _Pool | None = None
        self.wq: Workqueue | None = None

    def __repr__(self) -> str:
        return f"work {getattr(self.func, '__name__', self.func)}"


def _work_map(func: Any) -> LockdepMap:
    """``INIT_WORK``'s lockdep map. Its class is one per initialisation site; here, lockdep
    classes being names, one per work function (the kernel names it after the expression,
    ``(work_completion)(&gc->work)``)."""
    return LockdepMap(f"(work_completion)({getattr(func, '__name__', func)})")


class DelayedWork(Work):
    """``struct delayed_work``: a work item plus a timer."""

    __slots__ = ("timer", "cpu")

    def __init__(self, func: Callable[["Work"], Any], data: Any = None) -> None:
        super().__init__(func, data)
        self.timer: Timer | None = None
        self.cpu: int | None = None


class _Pool:
    """``struct worker_pool``: a worklist and the workers serving it."""

    __slots__ = ("worklist", "running", "more", "workers", "cpu")

    def __init__(self, cpu: int | None) -> None:
        self.worklist: deque[Work] = deque()
        self.running: list[Work] = []
        self.more = WaitQueue("worker_pool")
        self.workers: list[core.Task] = []
        self.cpu = cpu


class Workqueue:
    """``struct workqueue_struct``."""

    def __init__(self, sim: Simulation, name: str, flags: int, max_active: int) -> None:
        self.sim = sim
        self.name = name
        self.flags = flags
        self.flushed = WaitQueue(f"{name}-flush")
        self.lockdep_map = LockdepMap(f"(wq_completion){name}")
        if flags & WQ_UNBOUND:
            self.pools = [_Pool(None)]
            for i in range(max_active or sim.ncpus):
                self._start_worker(self.pools[0], f"kworker/u:{i}-{name}", None)
        else:
            self.pools = [_Pool(cpu) for cpu in range(sim.ncpus)]
            for pool in self.pools:
                self._start_worker(pool, f"kworker/{pool.cpu}:{name}", pool.cpu)

    def _start_worker(self, pool: _Pool, comm: str, cpu: int | None) -> None:
        t = self.sim.spawn(worker_thread(self, pool), comm, PF_KTHREAD | PF_WQ_WORKER, cpu)
        pool.workers.append(t)

    def pool_for(self, cpu: int | None) -> _Pool:
        if self.flags & WQ_UNBOUND:
            return self.pools[0]
        if cpu is None:
            cpu = core._current.cpu if core._current is not None else 0
        return self.pools[cpu]

    def queued(self) -> int:
        return sum(len(p.worklist) for p in self.pools)

    def __repr__(self) -> str:
        return f"workqueue {self.name}"


def alloc_workqueue(sim: Simulation, name: str, flags: int = 0, max_active: int = 0) -> Workqueue:
    """``alloc_workqueue``."""
    return Workqueue(sim, name, flags, max_active)


def _next_work(pool: _Pool) -> Work | None:
    """The first item no other worker is executing: a work item never runs on two workers at
    once (``find_worker_executing_work`` defers it to the worker already running it)."""
    for i, w in enumerate(pool.worklist):
        if not w.running:
            del pool.worklist[i]
            return w
    return None


def worker_thread(wq: Workqueue, pool: _Pool):
    """``worker_thread``: run the pool's work items in FIFO order, idle when none is left."""
    task = core._current
    sim = task.sim
    while True:
        work = _next_work(pool)
        while work is not None:
            work.pending = False
            work.running += 1
            seq = work.queued_seq
            pool.running.append(work)
            if (hook := sim._hook) is not None:
                hook("work_start", task, work, None)
            yield from process_one_work(work)
            pool.running.remove(work)
            work.running -= 1
            work.done_seq = max(work.done_seq, seq)
            if (hook := sim._hook) is not None:
                hook("work_end", task, work, None)
            wake_up(wq.flushed)
            if pool.worklist:
                wake_up(pool.more)  # an item deferred while this one ran may be free now
            work = _next_work(pool)
        yield from wait_event(pool.more, lambda: any(not w.running for w in pool.worklist),
                              state="I")


def process_one_work(work: Work):
    """``process_one_work``: call the work function inside the workqueue's and the work's
    lockdep maps, so lockdep sees what a work item takes while "held" by its flushers."""
    wq_map, work_map = work.wq.lockdep_map, work.lockdep_map
    lock_map_acquire(wq_map)
    lock_map_acquire(work_map)
    yield from work.func(work)
    lock_map_release(work_map)
    lock_map_release(wq_map)


def _insert_work(wq: Workqueue, work: Work, cpu: int | None) -> None:
    # Non-reentrancy (``__queue_work``): an item still running goes back to the pool running it.
    pool = work.pool if work.running and work.wq is wq else wq.pool_for(cpu)
    work.pool = pool
    work.wq = wq
    work.queued_seq += 1
    pool.worklist.append(work)
    if (hook := wq.sim._hook) is not None:
        hook("queue_work", core._current, work, {"wq": wq.name, "cpu": pool.cpu})
    wake_up(pool.more)


def queue_work_on(cpu: int | None, wq: Workqueue, work: Work) -> bool:
    """``queue_work_on``: False if the item was already pending."""
    if work.pending:
        return False
    work.pending = True
    _insert_work(wq, work, cpu)
    return True


def queue_work(wq: Workqueue, work: Work) -> bool:
    """``queue_work``: queue on the local CPU's pool (bound) or the unbound pool."""
    return queue_work_on(None, wq, work)


def _delayed_work_timer_fn(dw: DelayedWork) -> None:
    """``delayed_work_timer_fn``: the timer expired, queue the work."""
    dw.timer = None
    _insert_work(dw.wq, dw, dw.cpu)


def _arm(cpu: int | None, wq: Workqueue, dw: DelayedWork, delay: int) -> None:
    dw.pending = True
    dw.wq = wq
    if cpu is None and not (wq.flags & WQ_UNBOUND):
        cpu = core._current.cpu if core._current is not None else 0
    dw.cpu = cpu
    if delay <= 0:
        _insert_work(wq, dw, cpu)
    else:
        dw.timer = wq.sim.call_after(delay, _delayed_work_timer_fn, dw)


def queue_delayed_work_on(cpu: int | None, wq: Workqueue, dw: DelayedWork, delay: int) -> bool:
    """``queue_delayed_work_on``: False if already pending."""
    if dw.pending:
        return False
    _arm(cpu, wq, dw, delay)
    return True


def queue_delayed_work(wq: Workqueue, dw: DelayedWork, delay: int) -> bool:
    return queue_delayed_work_on(None, wq, dw, delay)


def _grab_pending(dw: DelayedWork) -> bool:
    """``try_to_grab_pending``: take a pending item off its timer or worklist."""
    if not dw.pending:
        return False
    if dw.timer is not None:
        dw.timer.cancel()
        dw.timer = None
    elif dw.pool is not None and dw in dw.pool.worklist:
        dw.pool.worklist.remove(dw)
        dw.queued_seq -= 1
    dw.pending = False
    return True


def mod_delayed_work_on(cpu: int | None, wq: Workqueue, dw: DelayedWork, delay: int) -> bool:
    """``mod_delayed_work_on``: (re)arm with a new delay; True if it was pending."""
    was = _grab_pending(dw)
    _arm(cpu, wq, dw, delay)
    return was


def mod_delayed_work(wq: Workqueue, dw: DelayedWork, delay: int) -> bool:
    return mod_delayed_work_on(None, wq, dw, delay)


def cancel_delayed_work(dw: DelayedWork) -> bool:
    """``cancel_delayed_work``: cancel if pending; does not wait for a running instance."""
    return _grab_pending(dw)


def flush_work(work: Work):
    """``flush_work``: wait until the last queued instance of ``work`` has finished. Lockdep
    first "takes" the work's map (``__flush_work``), whether or not the item is queued."""
    lock_map_acquire(work.lockdep_map)
    lock_map_release(work.lockdep_map)
    target = work.queued_seq
    if work.done_seq >= target or work.wq is None:
        return False
    yield from wait_event(work.wq.flushed, lambda: work.done_seq >= target)
    return True


def flush_delayed_work(dw: DelayedWork):
    """``flush_delayed_work``: fire a pending timer now, then wait for the work."""
    if dw.timer is not None:
        dw.timer.cancel()
        dw.timer = None
        _insert_work(dw.wq, dw, dw.cpu)
    return (yield from flush_work(dw))


def flush_workqueue(wq: Workqueue):
    """``flush_workqueue``: wait until every item queued so far has run (lockdep "takes" the
    workqueue's map first, ``__flush_workqueue``)."""
    lock_map_acquire(wq.lockdep_map)
    lock_map_release(wq.lockdep_map)
    targets = [(w, w.queued_seq) for p in wq.pools for w in [*p.worklist, *p.running]]
    yield from wait_event(wq.flushed, lambda: all(w.done_seq >= s for w, s in targets))
