"""The kernel log the detectors write to, and the pieces every splat is made of.

Models ``printk`` into the log buffer (``dmesg``): findings are kept in the order they were
logged, each with the virtual time, and rendered with the kernel's layout — a ``[ seconds ]``
prefix, ``Call Trace:`` blocks listing the modelled functions innermost first, as
``dump_stack`` does. Offsets (``+0x1a/0x40``) are not modelled: a modelled function has no
machine code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from reclaimlab.sim import NSEC_PER_SEC

# locking primitives of reclaimlab.sim; lockdep's "at:" names their caller
_LOCK_PRIMITIVES = (
    "mutex_lock", "mutex_trylock", "down_read", "down_write", "down_read_trylock",
    "down_write_trylock", "spin_lock", "spin_trylock", "lock_map_acquire",
)


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
    """The task's modelled stack, outermost first (``Task.stack``); empty once it exited."""
    if task is None or task.gen is None:
        return []
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
