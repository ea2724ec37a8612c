"""Hung-task detector: models ``kernel/hung_task.c`` (khungtaskd).

The kernel's khungtaskd wakes every ``hung_task_timeout_secs`` and reports each task that stayed
in TASK_UNINTERRUPTIBLE (``D``) without being scheduled since its last check, at most
``hung_task_warnings`` (10) times per boot. Here the check is a runtime timer, not a task, so it
never takes a CPU or changes a schedule: it is armed for the moment the oldest ``D`` wait would
exceed the timeout, so a task is reported exactly when it has been blocked for more than the
timeout, once per blocking episode. Interruptible (``S``) and idle (``I``) waits are not counted,
as in the kernel.

As the kernel does, only the first 10 reports are printed (``sysctl_hung_task_warnings``), and
the task's held locks follow its trace (``debug_show_all_locks`` with lockdep on). Simplified:
the kernel checks every ``hung_task_check_interval_secs`` (so reports come 120–240 s after the
task blocked); here the check fires at the first moment the timeout is exceeded.
"""

from __future__ import annotations

from typing import Any, Callable

from reclaimlab.sim import NSEC_PER_SEC

from .splat import Detector, Dmesg, Finding, call_trace, task_name, task_stack

HUNG_TASK_TIMEOUT_NS = 120 * NSEC_PER_SEC
HUNG_TASK_WARNINGS = 10


class HungTaskDetector(Detector):
    """khungtaskd as an observer: watches ``block``/``wake`` and arms one timer at a time."""

    def __init__(self, sim: Any, dmesg: Dmesg | None = None,
                 timeout_ns: int = HUNG_TASK_TIMEOUT_NS,
                 warnings: int = HUNG_TASK_WARNINGS) -> None:
        self.sim = sim
        self.dmesg = dmesg if dmesg is not None else Dmesg()
        self.timeout_ns = timeout_ns
        self.warnings_left = warnings
        # pid -> (task, blocked_since) of tasks in D, oldest first (re-blocking moves to the end)
        self.waiting: dict[int, tuple[Any, int]] = {}
        self.timer: Any = None
        self.reports: list[Finding] = []

    def handlers(self) -> dict[str, Callable[[Any, Any, Any], None]]:
        return {"block": self.on_block, "wake": self.on_wake, "exit": self.on_wake}

    def on_block(self, task: Any, obj: Any, state: Any) -> None:
        self.waiting.pop(task.pid, None)
        if state == "D":
            self.waiting[task.pid] = (task, self.sim.now)
            if self.timer is None:
                self._arm()

    def on_wake(self, task: Any, obj: Any, info: Any) -> None:
        if self.waiting.pop(task.pid, None) is not None and not self.waiting:
            self.del_timer()

    def del_timer(self) -> None:
        """Nothing left to watch: cancel the pending check (a cancelled timer never moves the
        clock, so it cannot prolong the run)."""
        timer, self.timer = self.timer, None
        if timer is not None:
            timer.cancel()

    def _arm(self) -> None:
        """Arm the check for the first moment the oldest waiter is over the timeout."""
        for _task, since in self.waiting.values():
            self.timer = self.sim.call_at(since + self.timeout_ns + 1,
                                          self.check_hung_uninterruptible_tasks)
            return
        self.timer = None

    def owns(self, timer: Any) -> bool:
        """Whether ``timer`` is this detector's (other detectors ignore it as a wake-up source)."""
        return timer is self.timer

    def check_hung_uninterruptible_tasks(self, _arg: Any = None) -> None:
        """``check_hung_uninterruptible_tasks``: report every D task blocked too long."""
        now = self.sim.now
        reported = len(self.reports)
        while self.waiting:
            pid, (task, since) = next(iter(self.waiting.items()))
            if now - since <= self.timeout_ns:
                break
            del self.waiting[pid]
            if task.blocked_on is not None and task.blocked_since == since:
                self.check_hung_task(task, now - since)
        if len(self.reports) > reported:      # hung_task_show_lock
            last = self.reports[-1]
            last.text += "\n" + "\n".join(self.debug_show_all_locks())
        self._arm()

    def debug_show_all_locks(self) -> list[str]:
        """``debug_show_all_locks``, printed after a pass that reported a task: every task's
        held locks, so the holder the hung tasks wait for is named too (it may be running,
        e.g. looping in reclaim, and so never reported itself)."""
        lines = ["", "Showing all locks held in the system:"]
        for task in self.sim.tasks.values():
            held = task.held_locks
            if task.state == "X" or not held:
                continue
            lines.append(f"{len(held)} lock{'s' if len(held) > 1 else ''} held by "
                         f"{task.comm}/{task.pid}:")
            lines += [f" #{i}: ({lk.name})" for i, lk in enumerate(held)]
        lines += ["", "============================================="]
        return lines

    def check_hung_task(self, task: Any, blocked_ns: int) -> None:
        """``check_hung_task``: print the ``INFO: task … blocked for more than`` report."""
        if self.warnings_left <= 0:
            return
        self.warnings_left -= 1
        secs = self.timeout_ns // NSEC_PER_SEC
        stack = task_stack(task)
        lines = [
            f"INFO: task {task.comm}:{task.pid} blocked for more than {secs} seconds.",
            "      Not tainted 6.12.0-reclaimlab #1",
            '"echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this message.',
            f"task:{task.comm:<15} state:D stack:0     pid:{task.pid:<5} tgid:{task.pid:<5} "
            f"ppid:2      flags:0x{task.flags:08x}",
            *call_trace(stack),
        ]
        if task.held_locks:
            n = len(task.held_locks)
            lines.append(f"{n} lock{'s' if n > 1 else ''} held by {task.comm}/{task.pid}:")
            lines += [f" #{i}: ({lk.name})" for i, lk in enumerate(task.held_locks)]
        finding = Finding(
            "hung_task", self.sim.now, task_name(task), stack,
            f"task {task.comm}:{task.pid} blocked for more than {secs} seconds "
            f"(on {task.blocked_on!r} for {blocked_ns / NSEC_PER_SEC:.1f} s)",
            "\n".join(lines), {"blocked_ns": blocked_ns, "waits_on": repr(task.blocked_on)})
        self.reports.append(finding)
        self.dmesg.log(finding)
