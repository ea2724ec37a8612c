"""What every workload program shares: per-group statistics, the system-call wrapper, pacing.

A program is a generator function ``program(spec, ctx)`` run as a user task. It works through
``reclaimlab.vfs.syscalls`` and the mm allocation API, records what it did in ``ctx.stats``,
never decides an outcome, and returns when the run's stop time is reached or the OOM killer
chose it (``task.oom_killed``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generator

from reclaimlab.sim import NSEC_PER_MSEC, NSEC_PER_SEC, current
from reclaimlab.vfs.errors import KernelError


@dataclass
class GroupStats:
    """Counters of one ``[[workload]]`` group, summed over its tasks (the run result's
    ``workloads`` addition)."""

    kind: str
    tasks: int
    ops: int = 0
    bytes: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    oom_killed: int = 0
    finished: int = 0
    first_op_ns: int | None = None
    last_op_ns: int | None = None

    def op(self, now: int, nbytes: int = 0) -> None:
        self.ops += 1
        self.bytes += nbytes
        if self.first_op_ns is None:
            self.first_op_ns = now
        self.last_op_ns = now

    def error(self, errno: str) -> None:
        self.errors[errno] = self.errors.get(errno, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        span = (self.last_op_ns or 0) - (self.first_op_ns or 0)
        return {"kind": self.kind, "tasks": self.tasks, "ops": self.ops, "bytes": self.bytes,
                "errors": dict(sorted(self.errors.items())), "oom_killed": self.oom_killed,
                "finished": self.finished, "first_op_ns": self.first_op_ns,
                "last_op_ns": self.last_op_ns,
                "ops_per_s": self.ops * NSEC_PER_SEC / span if span > 0 else 0.0}


@dataclass
class Context:
    """One task's view of its group: the task index, the group's stats, the stop time."""

    index: int
    stats: GroupStats
    stop_ns: int

    def running(self) -> bool:
        """Keep going: before the stop time and not chosen by the OOM killer."""
        task = current()
        return not task.oom_killed and task.sim.now < self.stop_ns

    def rng(self):
        return current().sim.rng


def syscall(ctx: Context, gen: Generator, nbytes: int = 0, count: bool = True,
            ignore: tuple[str, ...] = ()) -> Generator[Any, Any, Any]:
    """Enter the kernel for one system call and return its result; on a ``KernelError``
    count the errno (unless it is one of ``ignore``, e.g. EEXIST for ``mkdir -p``) and
    return None. ``count=False`` keeps set-up calls out of the group's op counters. (The
    system call itself charges the entry/exit CPU cost.)"""
    try:
        result = yield from gen
    except KernelError as e:
        errno = e.errno
        if errno not in ignore:
            ctx.stats.error(errno)
        return None
    if count:
        ctx.stats.op(current().sim.now, nbytes)
    return result


def pace(ctx: Context, started_ns: int, done: float, per_s: float) -> Generator:
    """Sleep so that ``done`` units since ``started_ns`` run at ``per_s`` units per second."""
    if per_s <= 0:
        return
    due = started_ns + int(done * NSEC_PER_SEC / per_s)
    wait = min(due, ctx.stop_ns) - current().sim.now
    if wait > 0:
        yield wait


def ms(value: float) -> int:
    return int(value * NSEC_PER_MSEC)
