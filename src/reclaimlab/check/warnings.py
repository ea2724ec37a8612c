"""Allocator warnings and OOM kills, printed as the kernel prints them.

- ``alloc_warn`` events (mm's ``__alloc_pages_slowpath`` WARN_ON_ONCE checks on ``__GFP_NOFAIL``,
  kernel-semantics §1 rule 2) become ``__warn`` splats: ``WARNING: CPU: N PID: P at
  mm/page_alloc.c:LINE __alloc_pages_slowpath`` and the call trace. Line numbers are nominal (one
  per WARN site, so the three checks stay distinguishable), not a particular release's. Other
  allocation-failure kinds are printed as ``warn_alloc`` does ("page allocation failure").
- ``oom_kill`` events become ``out_of_memory``'s "invoked oom-killer" line, the invoker's trace,
  and ``__oom_kill_process``'s ``Out of memory: Killed process …``.

mm decides when to warn (once per site, as ``WARN_ON_ONCE``); this module only formats.
"""

from __future__ import annotations

from typing import Any, Callable

from .splat import Detector, Dmesg, Finding, call_trace, cpu_line, task_name, task_stack

_WARN_SITES = {
    "nofail_costly_order": 4245,
    "nofail_no_reclaim": 4251,
    "nofail_in_reclaim": 4257,
}


class AllocWarnings(Detector):
    """Observer turning mm's ``alloc_warn`` and ``oom_kill`` events into splats."""

    def __init__(self, sim: Any, dmesg: Dmesg | None = None) -> None:
        self.sim = sim
        self.dmesg = dmesg if dmesg is not None else Dmesg()
        self.reports: list[Finding] = []

    def handlers(self) -> dict[str, Callable[[Any, Any, Any], None]]:
        return {"alloc_warn": lambda task, obj, info: self.warn(task, info),
                "oom_kill": self.oom_kill}

    def _log(self, finding: Finding) -> None:
        self.reports.append(finding)
        self.dmesg.log(finding)

    def warn(self, task: Any, info: dict[str, Any]) -> None:
        """``__warn`` for a NOFAIL check, ``warn_alloc`` for anything else."""
        kind = info.get("kind", "alloc_warn")
        stack = task_stack(task)
        gfp, order = info.get("gfp", "?"), info.get("order", 0)
        if kind in _WARN_SITES:
            lines = [
                "------------[ cut here ]------------",
                f"WARNING: CPU: {task.cpu} PID: {task.pid} at mm/page_alloc.c:{_WARN_SITES[kind]} "
                "__alloc_pages_slowpath",
                "Modules linked in:",
                cpu_line(task),
                "RIP: 0010:__alloc_pages_slowpath",
                *call_trace(stack),
                "---[ end trace 0000000000000000 ]---",
            ]
        else:
            lines = [
                f"{task.comm}: page allocation failure: order:{order}, mode:({gfp}), "
                "nodemask=(null)",
                cpu_line(task),
                *call_trace(stack),
            ]
        message = info.get("message") or f"{kind}: order {order} {gfp}"
        self._log(Finding(kind, self.sim.now, task_name(task), stack, message, "\n".join(lines),
                          {"gfp": gfp, "order": order}))

    def oom_kill(self, task: Any, obj: Any, info: Any) -> None:
        """``out_of_memory`` → ``oom_kill_process``: who invoked it, whom it killed (``obj``,
        the victim task; info as mm emits it: ``pid``, ``victim`` comm, ``anon_freed`` pages,
        ``gfp``, ``order``)."""
        details = info if isinstance(info, dict) else {}
        stack = task_stack(task)
        lines = []
        if task is not None:
            lines += [
                f"{task.comm} invoked oom-killer: gfp_mask=({details.get('gfp', '?')}), "
                f"order={details.get('order', 0)}, oom_score_adj=0",
                cpu_line(task),
                *call_trace(stack),
            ]
        rss_kb = 4 * int(details.get("anon_freed", 0))
        if hasattr(obj, "comm"):
            name = f"{obj.pid} ({obj.comm})"
        else:
            name = f"{details.get('pid', '?')} ({details.get('victim', obj)})"
        lines.append(f"Out of memory: Killed process {name} total-vm:{rss_kb}kB, "
                     f"anon-rss:{rss_kb}kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:0kB "
                     "oom_score_adj:0")
        self._log(Finding("oom_kill", self.sim.now, task_name(task), stack,
                          f"Out of memory: Killed process {name}", "\n".join(lines),
                          {"victim": name}))
