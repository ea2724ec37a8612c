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
pre-5.10 rule); trylocks add no dependency (as the kernel); a nesting subclass is honoured when
the runtime reports one in the ``lock_acquire`` info (``subclass``); the
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


def lock_class(lock: Any, info: Any) -> str:
    """The lockdep class of an acquisition: the lock's name, ``/N`` for a nesting subclass
    (``mutex_lock_nested``: ``info["subclass"]``, when the runtime reports one)."""
    sub = info.get("subclass", 0) if info else 0
    return f"{lock.name}/{sub}" if sub else lock.name


def lock_decor(lock: Any, cls: str) -> str:
    """``(class){usage}-{wait type}`` as lockdep prints a class."""
    if isinstance(lock, LockdepMap):
        wait = "{0:0}"
    elif isinstance(lock, Spinlock):
        wait = "{2:2}"
    else:
        wait = "{3:3}"
    return f"({cls}){{+.+.}}-{wait}"


class Lockdep(Detector):
    """Observer building the lock-class dependency graph and reporting bad orders."""

    def __init__(self, sim: Any, dmesg: Dmesg | None = None) -> None:
        self.sim = sim
        self.dmesg = dmesg if dmesg is not None else Dmesg()
        # class -> classes acquired while holding it, in first-seen order
        self.deps: dict[str, list[str]] = {}
        # (prev, next) -> (task, stack) of the acquisition that created the edge
        self.edge_trace: dict[tuple[str, str], tuple[str, list[str]]] = {}
        # pid -> (lock, trylock, function that took it, class) of each lock held, in order
        self.held_by: dict[int, list[tuple[Any, bool, str, str]]] = {}
        # pid -> (class, trylock) of each lock held: the task's lock chain
        self.chain_of: dict[int, list[tuple[str, bool]]] = {}
        # (class, chain) acquisitions already validated (``lookup_chain_cache``)
        self.chains: set[tuple[str, tuple[tuple[str, bool], ...]]] = set()
        self.pending: dict[int, tuple[bool, str]] = {}
        # every (prev, next) in ``deps``, for a constant-time check of a known edge
        self.edges: set[tuple[str, str]] = set()
        self.bad_edges: set[tuple[str, str]] = set()
        self.decor: dict[str, str] = {}
        self.reported: list[tuple[str, ...]] = []
        self.reports: list[Finding] = []

    def handlers(self) -> dict[str, Callable[[Any, Any, Any], None]]:
        return {"lock_acquire": self.on_lock_acquire, "lock_acquired": self.on_lock_acquired,
                "lock_release": self.on_lock_release}

    def on_lock_acquire(self, task: Any, lock: Any, info: Any) -> None:
        self.lock_acquire(task, lock, bool(info and info["trylock"]), lock_class(lock, info))

    def on_lock_acquired(self, task: Any, lock: Any, info: Any) -> None:
        pid = task.pid
        trylock, cls = self.pending.pop(pid, (False, lock.name))
        entries = self.held_by.get(pid)
        if entries is None:
            entries = self.held_by[pid] = []
            self.chain_of[pid] = []
        entries.append((lock, trylock, acquire_site(task), cls))
        self.chain_of[pid].append((cls, trylock))

    def on_lock_release(self, task: Any, lock: Any, info: Any) -> None:
        entries = self.held_by.get(task.pid)
        if entries:
            for i in range(len(entries) - 1, -1, -1):
                if entries[i][0] is lock:
                    del entries[i]
                    del self.chain_of[task.pid][i]
                    return

    def held_entries(self, task: Any) -> list[tuple[Any, bool, str, str]]:
        """``(lock, trylock, at, class)`` of each lock ``task`` holds, in acquisition order
        (rebuilt from ``task.held_locks`` if they differ: a lock taken before lockdep was
        attached has an unknown site and its name as class)."""
        held = task.held_locks
        entries = self.held_by.get(task.pid, [])
        if len(entries) != len(held) or (held and entries[-1][0] is not held[-1]):
            known = {id(e[0]): e for e in entries}
            entries = [known.get(id(h)) or (h, False, "?", h.name) for h in held]
            self.held_by[task.pid] = entries
            self.chain_of[task.pid] = [(e[3], e[1]) for e in entries]
        return entries

    def held(self, task: Any, lock: Any) -> tuple[bool, str, str]:
        """``(trylock, at, class)`` of a lock ``task`` holds."""
        for h, trylock, at, cls in self.held_entries(task):
            if h is lock:
                return trylock, at, cls
        return False, "?", lock.name

    # ------------------------------------------------------------------ acquisition
    def lock_acquire(self, task: Any, lock: Any, trylock: bool, cls: str) -> None:
        """``__lock_acquire`` → ``validate_chain``: check, then record dependencies.

        As the kernel's ``lookup_chain_cache``, an acquisition of a class on top of a chain
        of held classes already validated is not validated again: nothing new can be found
        (edges are only added, and each report is made once). Known edges are kept in a set
        (``self.edges``), so an edge already in the graph costs no graph search.
        """
        pid = task.pid
        self.pending[pid] = (trylock, cls)
        if cls not in self.decor:
            self.decor[cls] = lock_decor(lock, cls)
        held = task.held_locks
        if not held:
            return
        if task.spin_depth and not trylock and type(lock) in _SLEEPING_SITES:
            self.might_sleep(task, lock)
        if trylock:
            return
        entries = self.held_entries(task)
        key = (cls, tuple(self.chain_of[pid]))
        if key in self.chains:
            return
        self.chains.add(key)
        for h, _, _, h_cls in entries:
            if h_cls == cls:
                self.print_deadlock_bug(task, h, lock, cls)
                return
        for h, h_trylock, _, h_cls in reversed(entries):
            self.check_prev_add(task, h, h_cls, lock, cls)
            if not h_trylock:
                break

    def check_prev_add(self, task: Any, prev: Any, prev_cls: str, nxt: Any, nxt_cls: str) -> None:
        """``check_prev_add``: add ``prev --> next`` unless it closes a cycle."""
        if (prev_cls, nxt_cls) in self.edges or (prev_cls, nxt_cls) in self.bad_edges:
            return
        path = self.check_noncircular(nxt_cls, prev_cls)
        if path:
            self.bad_edges.add((prev_cls, nxt_cls))
            self.print_circular_bug(task, prev, nxt, path, task_stack(task))
            return
        self.deps.setdefault(prev_cls, []).append(nxt_cls)
        self.edges.add((prev_cls, nxt_cls))
        self.edge_trace[(prev_cls, nxt_cls)] = (task_name(task), task_stack(task))

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
            _, at, cls = self.held(task, h)
            lines.append(f" #{i}: {lock_decor(h, cls)}, at: {at}")
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
        held_at = self.held(task, prev)[1]
        nxt_cls, prev_cls = path[0], path[-1]
        parent = path[-2] if len(path) > 1 else nxt_cls
        lines = [
            "=" * 54,
            "WARNING: possible circular locking dependency detected",
            "6.12.0-reclaimlab #1 Not tainted",
            "-" * 54,
            f"{task.comm}/{task.pid} is trying to acquire lock:",
            f"{lock_decor(nxt, nxt_cls)}, at: {acquire_site(task)}",
            "",
            "but task is already holding lock:",
            f"{lock_decor(prev, prev_cls)}, at: {held_at}",
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
        lines += ["", f"-> #0 {lock_decor(nxt, nxt_cls)}:"]
        lines += [f"       {fn}" for fn in reversed(stack)]
        lines += ["", "other info that might help us debug this:", ""]
        if parent != nxt_cls:
            lines += ["Chain exists of:", f"  {nxt_cls} --> {parent} --> {prev_cls}", ""]
        lines += [
            " Possible unsafe locking scenario:",
            "",
            "       CPU0                    CPU1",
            "       ----                    ----",
            f"  lock({prev_cls});",
            f"                               lock({parent});",
            f"                               lock({prev_cls});",
            f"  lock({nxt_cls});",
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
                  f"possible circular locking dependency: {chain} --> {nxt_cls} "
                  f"({task.comm}/{task.pid} acquiring {nxt_cls} while holding {prev_cls})",
                  lines, {"chain": list(path), "held": prev_cls, "acquiring": nxt_cls,
                          "edges": edges})

    def print_deadlock_bug(self, task: Any, held: Any, lock: Any, cls: str) -> None:
        """``print_deadlock_bug``: "possible recursive locking detected"."""
        if not self._once(("recursive", cls)):
            return
        stack = task_stack(task)
        held_at = self.held(task, held)[1]
        lines = [
            "=" * 44,
            "WARNING: possible recursive locking detected",
            "6.12.0-reclaimlab #1 Not tainted",
            "-" * 44,
            f"{task.comm}/{task.pid} is trying to acquire lock:",
            f"{lock_decor(lock, cls)}, at: {acquire_site(task)}",
            "",
            "but task is already holding lock:",
            f"{lock_decor(held, cls)}, at: {held_at}",
            "",
            "other info that might help us debug this:",
            " Possible unsafe locking scenario:",
            "",
            "       CPU0",
            "       ----",
            f"  lock({cls});",
            f"  lock({cls});",
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
                  f"possible recursive locking of {cls} by {task.comm}/{task.pid}",
                  lines, {"lock": cls})

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
