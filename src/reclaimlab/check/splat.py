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
from reclaimlab.sim.core import Handler

_MACHINERY = ("/reclaimlab/sim/core.py", "/reclaimlab/check/", "/reclaimlab/report/",
              "/reclaimlab/explore/")
_SHOWN: dict[Any, bool] = {}
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

    def text(self) -> str:
        """Every splat in log order, each line with its timestamp."""
        return "".join(stamp(f.time_ns, f.text) for f in self.findings)


class Detector:
    """Base of the observers here: each event kind is routed to one handler
    (``handlers()``: kind -> ``fn(task, obj, info)``), so kinds a detector ignores cost a lookup."""

    _routes: dict[str, Handler] | None = None

    def handlers(self) -> dict[str, Handler]:
        raise NotImplementedError

    def event(self, kind: str, task: Any, obj: Any, info: Any) -> None:
        if self._routes is None:
            self._routes = self.handlers()
        handler = self._routes.get(kind)
        if handler is not None:
            handler(task, obj, info)


def task_name(task: Any) -> str:
    """``comm:pid``, the run result's way of naming a task."""
    return f"{task.comm}:{task.pid}" if task is not None else ""


def _shown(code: Any) -> bool:
    """Whether a frame is a modelled function: not simulator machinery (the runtime's loop,
    detectors, reports) nor a private helper (``_grant``) — but ``__alloc_pages_slowpath`` and
    ``__dentry_kill`` are kernel names and stay. Cached per code object."""
    shown = _SHOWN.get(code)
    if shown is None:
        name = code.co_name
        shown = not (name.startswith("_") and (not name.startswith("__") or name.endswith("__"))
                     or any(d in code.co_filename for d in _MACHINERY))
        _SHOWN[code] = shown
    return shown


def task_stack(task: Any) -> list[str]:
    """The task's modelled stack, outermost first; empty once it exited.

    A suspended task's stack is ``Task.stack`` (its generator chain). For the running task the
    interpreter frames are walked up to its outermost generator, so plain kernel functions on
    the way appear too. ``Task.stack`` does this walk as well, but hides every name starting
    with ``_``, which drops kernel functions such as ``__alloc_pages_slowpath``.
    """
    if task is None or task.gen is None:
        return []
    gen = task.gen
    if not gen.gi_running:
        names = []
        try:  # Task.stack's walk, without a hasattr per frame (this is hot for the tracer)
            while gen is not None:
                names.append(gen.gi_code.co_name)
                gen = gen.gi_yieldfrom
        except AttributeError:  # delegating to an iterator that is not a generator
            pass
        return names
    top = gen.gi_frame
    names: list[str] = []
    f = sys._getframe(1)
    while f is not None:
        code = f.f_code
        if _SHOWN.get(code) or (code not in _SHOWN and _shown(code)):
            names.append(code.co_name)
        if f is top:
            names.reverse()
            return names
        f = f.f_back
    return task.stack()


# code object -> its name if lockdep's "at:" may name it, else "" (see ``acquire_site``)
_SITES: dict[Any, str] = {}


def _site_name(code: Any) -> str:
    name = _SITES.get(code)
    if name is None:
        name = _SITES[code] = (code.co_name if code.co_name not in _LOCK_PRIMITIVES
                               and _shown(code) else "")
    return name


def acquire_site(task: Any) -> str:
    """The innermost modelled function that is not a locking primitive: lockdep's ``at:``.

    Called at every acquisition, so for the running task it walks frames only until it finds
    one, rather than building the whole stack (one cached lookup per frame).
    """
    if task is None or task.gen is None:
        return "?"
    if not task.gen.gi_running:
        stack = task.stack()
    else:
        top = task.gen.gi_frame
        f = sys._getframe(1)
        sites = _SITES
        while f is not None:
            code = f.f_code
            name = sites.get(code)
            if name is None:
                name = _site_name(code)
            if name:
                return name
            if f is top:
                return "?"
            f = f.f_back
        stack = task.stack()
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
