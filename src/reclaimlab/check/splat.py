"""The kernel log the detectors write to, and the pieces every splat is made of.

Models ``printk`` into the log buffer (``dmesg``): findings are kept in the order they were
logged, each with the virtual time, and rendered with the kernel's layout — a ``[ seconds ]``
prefix, ``Call Trace:`` blocks listing the modelled functions innermost first, as
``dump_stack`` does. Offsets (``+0x1a/0x40``) are not modelled: a modelled function has no
machine code.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Callable

from reclaimlab.sim import NSEC_PER_SEC

_CO_GENERATOR = 0x20
# generator primitives of reclaimlab.sim that take locks; lockdep's "at:" names their caller
_LOCK_PRIMITIVES = ("mutex_lock", "down_read", "down_write")


@dataclass
class Finding:
    """One report: what a kernel developer would read in dmesg, plus its structured form.

    ``kind`` is a run-result warning kind (``hung_task``, ``lockdep_circular``, …) or
    ``deadlock``/``invariant``; ``stack`` is outermost first; ``text`` the full splat.
    """

    kind: str
    time_ns: int
    task: str
    stack: list[str]
    message: str
    text: str
    data: dict[str, Any] = field(default_factory=dict)

    def as_warning(self) -> dict[str, Any]:
        """The run result's ``warnings`` entry."""
        return {"kind": self.kind, "task": self.task, "time_ns": self.time_ns,
                "stack": list(self.stack), "message": self.message}


class Dmesg:
    """The log buffer shared by the detectors of one run; ``listeners`` see each finding."""

    def __init__(self) -> None:
        self.findings: list[Finding] = []
        self.listeners: list[Callable[[Finding], None]] = []

    def log(self, finding: Finding) -> None:
        self.findings.append(finding)
        for fn in self.listeners:
            fn(finding)

    def of_kind(self, *kinds: str) -> list[Finding]:
        return [f for f in self.findings if f.kind in kinds]

    def text(self) -> str:
        """Every splat in log order, each line with its timestamp."""
        return "".join(stamp(f.time_ns, f.text) for f in self.findings)


def task_name(task: Any) -> str:
    """``comm:pid``, the run result's way of naming a task."""
    return f"{task.comm}:{task.pid}" if task is not None else ""


def task_stack(task: Any) -> list[str]:
    """The task's modelled stack, outermost first, also while the task is running.

    ``Task.stack`` follows ``gi_yieldfrom``, which CPython leaves empty for generators that are
    executing; an event emitted from inside a running task (``lock_acquire``, ``alloc_warn``)
    would show only the outermost function. For the running task, walk the interpreter frames
    back to the task's outermost generator instead and keep the generator frames, which are the
    same functions ``Task.stack`` shows for a suspended task.
    """
    if task is None:
        return []
    gen = task.gen
    if gen is None:
        return []
    if not gen.gi_running:
        return task.stack()
    top = gen.gi_frame
    names: list[str] = []
    f = sys._getframe(1)
    while f is not None:
        if f.f_code.co_flags & _CO_GENERATOR:
            names.append(f.f_code.co_name)
        if f is top:
            names.reverse()
            return names
        f = f.f_back
    return task.stack()


def acquire_site(task: Any) -> str:
    """The innermost modelled function that is not a locking primitive: lockdep's ``at:``."""
    stack = task_stack(task)
    for fn in reversed(stack):
        if fn not in _LOCK_PRIMITIVES:
            return fn
    return "?"


def stamp(time_ns: int, text: str) -> str:
    """Prefix every line with the kernel's ``[    5.123456]`` timestamp."""
    secs, rem = divmod(time_ns, NSEC_PER_SEC)
    prefix = f"[{secs:5d}.{rem // 1000:06d}] "
    return "".join(prefix + line + "\n" for line in text.splitlines())


def call_trace(stack: list[str]) -> list[str]:
    """``dump_stack``'s ``Call Trace:`` block: innermost function first."""
    return ["Call Trace:", " <TASK>", *(f" {fn}" for fn in reversed(stack)), " </TASK>"]


def cpu_line(task: Any, tainted: str = "Not tainted") -> str:
    """The ``CPU: N PID: P Comm: c`` line of ``dump_stack`` and ``__warn``."""
    return f"CPU: {task.cpu} PID: {task.pid} Comm: {task.comm} {tainted} 6.12.0-reclaimlab #1"
