"""Invariant checks: the model's own consistency, never silently broken.

During the run (from events): a task exits still holding locks (``debug_check_no_locks_held``'s
"still has locks held!"), an inode freed twice or cleaned up after it was freed (use after
free). Any of these stops the run after the current step, with its report. At the end of the run
(``finish``, after unmount/flush): the subsystems' own checks — ``sim.pgdat.check_invariants()``
(page conservation), ``sim.vfs.check_invariants()`` (refcounts, lists) — and ``sim.vfs.leaked()``
(unlinked inodes whose blocks were never freed).
"""

from __future__ import annotations

import weakref
from typing import Any, Callable

from .splat import Detector, Dmesg, Finding, call_trace, task_name, task_stack


class _FreedInodes:
    """Identity set of freed inodes that does not keep them alive when they can be weakly
    referenced (a freed inode's ``id`` may be reused by a new one once it is collected)."""

    def __init__(self) -> None:
        self.refs: dict[int, Any] = {}

    def add(self, inode: Any) -> None:
        key = id(inode)
        try:
            self.refs[key] = weakref.ref(inode, lambda _r, k=key: self.refs.pop(k, None))
        except TypeError:
            self.refs[key] = lambda obj=inode: obj

    def __contains__(self, inode: Any) -> bool:
        ref = self.refs.get(id(inode))
        return ref is not None and ref() is inode


class InvariantChecker(Detector):
    """Observer for run-time invariants; ``finish()`` runs the end-of-run checks."""

    def __init__(self, sim: Any, dmesg: Dmesg | None = None, stop: bool = True) -> None:
        self.sim = sim
        self.dmesg = dmesg if dmesg is not None else Dmesg()
        self.stop = stop
        self.freed = _FreedInodes()
        self.violations: list[str] = []
        self.finished = False

    def handlers(self) -> dict[str, Callable[[Any, Any, Any], None]]:
        return {"exit": self.on_exit, "inode_evicted": self.on_inode_evicted,
                "inode_cleanup": lambda t, o, i: self.on_inode_use("inode_cleanup", t, o, i),
                "inode_deferred": lambda t, o, i: self.on_inode_use("inode_deferred", t, o, i)}

    def on_exit(self, task: Any, obj: Any, info: Any) -> None:
        if task.held_locks:
            self.debug_check_no_locks_held(task)

    def on_inode_evicted(self, task: Any, inode: Any, info: Any) -> None:
        if inode in self.freed:
            self.violate(task, f"inode {self._ino(inode, info)} freed twice")
        else:
            self.freed.add(inode)

    def on_inode_use(self, kind: str, task: Any, inode: Any, info: Any) -> None:
        if inode in self.freed:
            self.violate(task, f"use after free: {kind} of inode {self._ino(inode, info)} "
                               "after it was freed")

    @staticmethod
    def _ino(inode: Any, info: Any) -> str:
        ino = info.get("ino") if isinstance(info, dict) else getattr(inode, "i_ino", None)
        return str(ino if ino is not None else inode)

    def debug_check_no_locks_held(self, task: Any) -> None:
        """``debug_check_no_locks_held``: a task must not exit holding a lock."""
        names = ", ".join(lk.name for lk in task.held_locks)
        self.violate(task, f"{task.comm}/{task.pid} exited still holding locks: {names}",
                     ["=" * 37, f"WARNING: {task.comm}/{task.pid} still has locks held!",
                      *[f" #{i}: ({lk.name})" for i, lk in enumerate(task.held_locks)]])

    def violate(self, task: Any, message: str, lines: list[str] | None = None) -> None:
        self.violations.append(message)
        stack = task_stack(task)
        text = lines or [f"reclaimlab: invariant violated: {message}", *call_trace(stack)]
        self.dmesg.log(Finding("invariant", self.sim.now, task_name(task), stack, message,
                               "\n".join(text)))
        if self.stop and not self.finished:
            self.sim.stop()

    def finish(self, check_leaks: bool = True) -> list[str]:
        """End-of-run checks of every subsystem present (once); returns all violations."""
        if self.finished:
            return self.violations
        self.finished = True
        for subsystem in ("pgdat", "vfs"):
            owner = getattr(self.sim, subsystem, None)
            check = getattr(owner, "check_invariants", None)
            if check is not None:
                for message in check():
                    self.violate(None, f"{subsystem}: {message}")
        leaked = getattr(getattr(self.sim, "vfs", None), "leaked", None)
        if check_leaks and leaked is not None:
            for sb_name, ino in leaked():
                self.violate(None, f"inode {ino} on {sb_name} unlinked but never freed")
        return self.violations
