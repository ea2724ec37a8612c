"""Lock-order validator: models ``kernel/locking/lockdep.c``.

Lock *classes* (a lock's ``name``: ``&ei->xattr_sem``, ``jbd2_handle``, ``fs_reclaim``), not
instances, form a dependency graph. When a task acquires class ``next`` while holding ``prev``,
the edge ``prev --> next`` is added, as ``check_prevs_add`` does: from the most recently acquired
held lock, and further back only across trylock acquisitions (older held locks reach ``next``
through the edges recorded when they were taken). Before adding an edge, ``check_noncircular``
searches ``next --> … --> prev`` breadth-first; a path means two orders were seen, and the cycle
is printed as ``print_circular_bug`` does, with the stack that created each edge of the path.
The pseudo-lock ``fs_reclaim`` (mm's ``LockdepMap``, acquired by allocations that may enter fs
reclaim and held by kswapd and direct reclaim) needs nothing special: it is just another class.

Also modelled: ``check_deadlock`` ("possible recursive locking detected": a class already held
taken again), and ``__might_sleep`` ("sleeping function called from invalid context": a sleeping
lock taken inside a spinlock's atomic section).

Simplified: read acquisitions are treated as writes (no recursive-read dependency types, the
pre-5.10 rule); trylocks add no dependency (as the kernel); no subclasses (``*_nested``); the
kernel disables lockdep after its first report, here each distinct cycle is reported once so a
run shows all of them; usage bits ``{+.+.}`` and source line numbers are nominal.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable

from reclaimlab.sim import LockdepMap, Mutex, RwSemaphore, Spinlock

from .splat import (
    Detector, Dmesg, Finding, acquire_site, call_trace, cpu_line, task_name, task_stack,
)

_SLEEPING_SITES = {Mutex: "kernel/locking/mutex.c:283", RwSemaphore: "kernel/locking/rwsem.c:1523"}


def lock_decor(lock: Any) -> str:
    """``(name){usage}-{wait type}`` as lockdep prints a class."""
    if isinstance(lock, LockdepMap):
        wait = "{0:0}"
    elif isinstance(lock, Spinlock):
        wait = "{2:2}"
    else:
        wait = "{3:3}"
    return f"({lock.name}){{+.+.}}-{wait}"


class Lockdep(Detector):
    """Observer building the lock-class dependency graph and reporting bad orders."""

    def __init__(self, sim: Any, dmesg: Dmesg | None = None) -> None:
        self.sim = sim
        self.dmesg = dmesg if dmesg is not None else Dmesg()
        # class -> classes acquired while holding it, in first-seen order
        self.deps: dict[str, list[str]] = {}
        # (prev, next) -> (task, stack) of the acquisition that created the edge
        self.edge_trace: dict[tuple[str, str], tuple[str, list[str]]] = {}
        # (pid, id(lock)) -> (trylock, function that took it), for locks currently held
        self.held_info: dict[tuple[int, int], tuple[bool, str]] = {}
        self.pending_trylock: dict[int, bool] = {}
        self.bad_edges: set[tuple[str, str]] = set()
        self.decor: dict[str, str] = {}
        self.reported: list[tuple[str, ...]] = []
        self.reports: list[Finding] = []

    def handlers(self) -> dict[str, Callable[[Any, Any, Any], None]]:
        return {"lock_acquire": self.on_lock_acquire, "lock_acquired": self.on_lock_acquired,
                "lock_release": self.on_lock_release}

    def on_lock_acquire(self, task: Any, lock: Any, info: Any) -> None:
        self.lock_acquire(task, lock, bool(info and info["trylock"]))

    def on_lock_acquired(self, task: Any, lock: Any, info: Any) -> None:
        trylock = self.pending_trylock.pop(task.pid, False)
        self.held_info[(task.pid, id(lock))] = (trylock, acquire_site(task))

    def on_lock_release(self, task: Any, lock: Any, info: Any) -> None:
        self.held_info.pop((task.pid, id(lock)), None)

    # ------------------------------------------------------------------ acquisition
    def lock_acquire(self, task: Any, lock: Any, trylock: bool) -> None:
        """``__lock_acquire`` → ``validate_chain``: check, then record dependencies."""
        self.pending_trylock[task.pid] = trylock
        self.decor.setdefault(lock.name, lock_decor(lock))
        held = task.held_locks
        if not held:
            return
        if task.spin_depth and not trylock and type(lock) in _SLEEPING_SITES:
            self.might_sleep(task, lock)
        if trylock:
            return
        for h in held:
            if h.name == lock.name:
                self.print_deadlock_bug(task, h, lock)
                return
        for h in reversed(held):
            self.check_prev_add(task, h, lock)
            if not self.held_info.get((task.pid, id(h)), (False, ""))[0]:
                break

    def check_prev_add(self, task: Any, prev: Any, nxt: Any) -> None:
        """``check_prev_add``: add ``prev --> next`` unless it closes a cycle."""
        after = self.deps.setdefault(prev.name, [])
        if nxt.name in after or (prev.name, nxt.name) in self.bad_edges:
            return
        path = self.check_noncircular(nxt.name, prev.name)
        if path:
            self.bad_edges.add((prev.name, nxt.name))
            self.print_circular_bug(task, prev, nxt, path, task_stack(task))
            return
        after.append(nxt.name)
        self.edge_trace[(prev.name, nxt.name)] = (task_name(task), task_stack(task))

    def check_noncircular(self, src: str, target: str) -> list[str]:
        """Breadth-first search ``src --> … --> target``; the class path, or ``[]``."""
        parent: dict[str, str | None] = {src: None}
        queue = deque([src])
        while queue:
            cls = queue.popleft()
            if cls == target:
                path = [cls]
                while parent[path[-1]] is not None:
                    path.append(parent[path[-1]])  # type: ignore[arg-type]
                return path[::-1]
            for nxt in self.deps.get(cls, ()):
                if nxt not in parent:
                    parent[nxt] = cls
                    queue.append(nxt)
        return []

    # ------------------------------------------------------------------ reports
    def _once(self, key: tuple[str, ...]) -> bool:
        if key in self.reported:
            return False
        self.reported.append(key)
        return True

    def _held_lines(self, task: Any) -> list[str]:
        """``lockdep_print_held_locks``."""
        n = len(task.held_locks)
        lines = [f"{n} lock{'s' if n != 1 else ''} held by {task.comm}/{task.pid}:"]
        for i, h in enumerate(task.held_locks):
            at = self.held_info.get((task.pid, id(h)), (False, "?"))[1]
            lines.append(f" #{i}: {lock_decor(h)}, at: {at}")
        return lines

    def _log(self, kind: str, task: Any, stack: list[str], message: str, lines: list[str],
             data: dict[str, Any]) -> None:
        finding = Finding(kind, self.sim.now, task_name(task), stack, message,
                          "\n".join(lines), data)
        self.reports.append(finding)
        self.dmesg.log(finding)

    def print_circular_bug(self, task: Any, prev: Any, nxt: Any, path: list[str],
                           stack: list[str]) -> None:
        """``print_circular_bug``: the chain ``next --> … --> prev``, then the new edge."""
        if not self._once(("circular", *sorted(path))):
            return
        held_at = self.held_info.get((task.pid, id(prev)), (False, "?"))[1]
        parent = path[-2] if len(path) > 1 else path[0]
        lines = [
            "=" * 54,
            "WARNING: possible circular locking dependency detected",
            "6.12.0-reclaimlab #1 Not tainted",
            "-" * 54,
            f"{task.comm}/{task.pid} is trying to acquire lock:",
            f"{lock_decor(nxt)}, at: {acquire_site(task)}",
            "",
            "but task is already holding lock:",
            f"{lock_decor(prev)}, at: {held_at}",
            "",
            "which lock already depends on the new lock.",
            "",
            "",
            "the existing dependency chain (in reverse order) is:",
        ]
        edges = []
        for depth in range(len(path) - 1, 0, -1):
            who, edge_stack = self.edge_trace[(path[depth - 1], path[depth])]
            edges.append({"from": path[depth - 1], "to": path[depth], "task": who,
                          "stack": edge_stack})
            lines += ["", f"-> #{depth} {self.decor[path[depth]]}:"]
            lines += [f"       {fn}" for fn in reversed(edge_stack)]
        lines += ["", f"-> #0 {lock_decor(nxt)}:"]
        lines += [f"       {fn}" for fn in reversed(stack)]
        lines += ["", "other info that might help us debug this:", ""]
        if parent != nxt.name:
            lines += ["Chain exists of:", f"  {nxt.name} --> {parent} --> {prev.name}", ""]
        lines += [
            " Possible unsafe locking scenario:",
            "",
            "       CPU0                    CPU1",
            "       ----                    ----",
            f"  lock({prev.name});",
            f"                               lock({parent});",
            f"                               lock({prev.name});",
            f"  lock({nxt.name});",
            "",
            " *** DEADLOCK ***",
            "",
            *self._held_lines(task),
            "",
            "stack backtrace:",
            cpu_line(task),
            *call_trace(stack),
        ]
        chain = " --> ".join(path)
        self._log("lockdep_circular", task, stack,
                  f"possible circular locking dependency: {chain} --> {nxt.name} "
                  f"({task.comm}/{task.pid} acquiring {nxt.name} while holding {prev.name})",
                  lines, {"chain": list(path), "held": prev.name, "acquiring": nxt.name,
                          "edges": edges})

    def print_deadlock_bug(self, task: Any, held: Any, lock: Any) -> None:
        """``print_deadlock_bug``: "possible recursive locking detected"."""
        if not self._once(("recursive", lock.name)):
            return
        stack = task_stack(task)
        held_at = self.held_info.get((task.pid, id(held)), (False, "?"))[1]
        lines = [
            "=" * 44,
            "WARNING: possible recursive locking detected",
            "6.12.0-reclaimlab #1 Not tainted",
            "-" * 44,
            f"{task.comm}/{task.pid} is trying to acquire lock:",
            f"{lock_decor(lock)}, at: {acquire_site(task)}",
            "",
            "but task is already holding lock:",
            f"{lock_decor(held)}, at: {held_at}",
            "",
            "other info that might help us debug this:",
            " Possible unsafe locking scenario:",
            "",
            "       CPU0",
            "       ----",
            f"  lock({held.name});",
            f"  lock({lock.name});",
            "",
            " *** DEADLOCK ***",
            "",
            " May be due to missing lock nesting notation",
            "",
            *self._held_lines(task),
            "",
            "stack backtrace:",
            cpu_line(task),
            *call_trace(stack),
        ]
        self._log("lockdep_recursive", task, stack,
                  f"possible recursive locking of {lock.name} by {task.comm}/{task.pid}",
                  lines, {"lock": lock.name})

    def might_sleep(self, task: Any, lock: Any) -> None:
        """``__might_sleep``: a sleeping lock taken in an atomic section."""
        spins = [h for h in task.held_locks if isinstance(h, Spinlock)]
        if not self._once(("atomic", lock.name, *(h.name for h in spins))):
            return
        stack = task_stack(task)
        lines = [
            f"BUG: sleeping function called from invalid context at {_SLEEPING_SITES[type(lock)]}",
            f"in_atomic(): 1, irqs_disabled(): 0, non_block: 0, pid: {task.pid}, "
            f"name: {task.comm}",
            f"preempt_count: {task.spin_depth}, expected: 0",
            "RCU nest depth: 0, expected: 0",
            *self._held_lines(task),
            cpu_line(task, "Tainted: G        W"),
            *call_trace(stack),
        ]
        self._log("sleeping_in_atomic", task, stack,
                  f"{task.comm}/{task.pid} takes sleeping lock {lock.name} while holding "
                  f"spinlock {', '.join(h.name for h in spins)}",
                  lines, {"lock": lock.name, "spinlocks": [h.name for h in spins]})
