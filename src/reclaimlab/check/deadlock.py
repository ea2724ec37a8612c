"""Deadlock detector: a wait-for graph over tasks, with cycles for single-owner waits and knots
for waits that any task could end.

Not a kernel facility (the kernel has lockdep and the hung-task watchdog, which only suspect);
this is the simulator's ground truth, in the manner of Ciw's deadlock detector. Two kinds of wait:

- a wait on something with known holders (``holders_of(obj)``: a mutex owner, rwsem writer or
  readers, a completion's declared completer) is an AND-wait: the waiter needs each holder to
  make progress. A cycle of such waits can never resolve: a **deadlock cycle**, checked whenever a
  task blocks, the only moment an edge appears.
- a wait with no known holder (a wait queue: free memory, log space, a workqueue flush) is an
  OR-wait: any task that can still make progress might end it. A task is stuck for good only when
  no path leads from it to a task, timer or timed wait that can still make progress — a **knot**.
  Since every OR-wait points at every live task, a knot exists exactly when no task can run and
  no timer is pending; it is checked whenever the last runnable task blocks or exits, and once
  more at the end of the run.

Tasks waiting interruptibly (``S``) or idle (``I``, an idle worker) are part of a knot but are
reported only when a reported task waits on them: otherwise they wait for work, not on others.
"""

from __future__ import annotations

from typing import Any, Callable

from reclaimlab.sim import holders_of

from .splat import Detector, Dmesg, Finding, call_trace, task_name, task_stack


class DeadlockDetector(Detector):
    """Observer maintaining the wait-for graph; reports each cycle or knot once."""

    def __init__(self, sim: Any, dmesg: Dmesg | None = None,
                 ignore_timer: Callable[[Any], bool] = lambda timer: False) -> None:
        self.sim = sim
        self.dmesg = dmesg if dmesg is not None else Dmesg()
        self.ignore_timer = ignore_timer
        self.live = 0
        self.blocked: dict[int, Any] = {}
        self.reported: list[tuple[int, ...]] = []
        self.reports: list[Finding] = []

    def handlers(self) -> dict[str, Callable[[Any, Any, Any], None]]:
        return {"block": self.on_block, "wake": self.on_wake, "spawn": self.on_spawn,
                "exit": self.on_exit}

    def on_block(self, task: Any, obj: Any, state: Any) -> None:
        self.blocked[task.pid] = task
        cycle = self.find_cycle(task)
        if cycle:
            self.report("cycle", cycle)
        elif len(self.blocked) >= self.live:
            self.check_knot()

    def on_wake(self, task: Any, obj: Any, waker: Any) -> None:
        self.blocked.pop(task.pid, None)

    def on_spawn(self, task: Any, obj: Any, info: Any) -> None:
        self.live += 1

    def on_exit(self, task: Any, obj: Any, info: Any) -> None:
        self.live -= 1
        self.blocked.pop(task.pid, None)
        if self.blocked and len(self.blocked) >= self.live:
            self.check_knot()

    def attach_existing(self) -> None:
        """Count tasks spawned before the detector was attached."""
        for t in self.sim.tasks.values():
            if t.state != "X":
                self.live += 1
                if t.blocked_on is not None:
                    self.blocked[t.pid] = t

    # ------------------------------------------------------------------ cycles
    def find_cycle(self, start: Any) -> list[Any]:
        """A path of AND-waits leading from ``start`` back to ``start``, or ``[]``."""
        path: list[Any] = [start]
        seen: set[int] = {start.pid}

        def walk(t: Any) -> bool:
            for h in holders_of(t.blocked_on):
                if h is start:
                    return True
                if h.pid in seen or h.blocked_on is None:
                    continue
                seen.add(h.pid)
                path.append(h)
                if walk(h):
                    return True
                path.pop()
            return False

        return path if walk(start) else []

    # ------------------------------------------------------------------ knots
    def progress_possible(self) -> bool:
        """Whether any task can run, or any timer or timed wait is pending (this detector's
        and the hung-task detector's own timers aside)."""
        if len(self.blocked) < self.live:
            return True
        return self.sim.pending(ignore=self.ignore_timer)

    def check_knot(self) -> None:
        """Report the knot if nothing can make progress and some task waits in ``D``: the
        ``D`` waiters and the holders they wait on (idle and interruptible waiters that hold
        nothing anyone waits for are left out)."""
        if self.progress_possible():
            return
        members: dict[int, Any] = {}
        todo = [t for t in self.blocked.values() if t.state == "D"]
        while todo:
            t = todo.pop()
            if t.pid not in members and t.state != "X":
                members[t.pid] = t
                todo += holders_of(t.blocked_on)
        if members:
            self.report("knot", [members[pid] for pid in sorted(members)])

    def finish(self) -> None:
        """End-of-run check over ``sim.blocked_tasks()``."""
        for info in self.sim.blocked_tasks():
            cycle = self.find_cycle(info.task)
            if cycle:
                self.report("cycle", cycle)
        if self.blocked and len(self.blocked) >= self.live:
            self.check_knot()

    # ------------------------------------------------------------------ report
    def report(self, kind: str, tasks: list[Any]) -> None:
        key = tuple(sorted(t.pid for t in tasks))
        if key in self.reported:
            return
        self.reported.append(key)
        entries = []
        lines = [
            f"reclaimlab: deadlock: {'circular wait' if kind == 'cycle' else 'knot'} "
            f"among {len(tasks)} task{'s' if len(tasks) > 1 else ''}"
            + ("" if kind == "cycle" else ", no task or timer left to wake any of them"),
        ]
        for i, t in enumerate(tasks):
            holders = holders_of(t.blocked_on)
            if kind == "cycle":
                nxt = tasks[(i + 1) % len(tasks)]
                held_by = task_name(nxt if nxt in holders else holders[0])
            else:
                held_by = ", ".join(task_name(h) for h in holders) or "anyone"
            entries.append({"task": task_name(t), "waits_on": repr(t.blocked_on),
                            "held_by": held_by})
            lines.append(f"task:{t.comm:<15} state:{t.state} pid:{t.pid:<5} "
                         f"blocked since {t.blocked_since / 1e9:.6f}s on {t.blocked_on!r}, "
                         f"held by {held_by}")
            lines += call_trace(task_stack(t))
        first = tasks[0]
        message = (f"{kind}: " + " -> ".join(f"{e['task']} waits on {e['waits_on']}"
                                              for e in entries))
        finding = Finding("deadlock", self.sim.now, task_name(first), task_stack(first), message,
                          "\n".join(lines),
                          {"kind": kind, "time_ns": self.sim.now, "cycle": entries})
        self.reports.append(finding)
        self.dmesg.log(finding)
