"""The OOM killer (``mm/oom_kill.c``).

``out_of_memory`` refuses to kill for an allocation without ``__GFP_FS`` and reports progress
anyway ("the OOM killer does not compensate for IO-less reclaim"), so small GFP_NOFS
allocations loop rather than fail. Otherwise it picks the task with the largest resident memory
(``oom_badness`` without ``oom_score_adj``: anonymous RSS plus raw pages the task holds from
the allocator), never a kthread, marks it ``oom_killed`` and frees its anonymous memory at once
(the OOM reaper). Tasks check ``current().oom_killed`` and exit. With nothing to kill the
kernel panics ("System is deadlocked on memory"): we report ``oom_panic`` and stop the run.
"""

from __future__ import annotations

from reclaimlab.sim import PF_KTHREAD, current

from . import anon
from .gfp import __GFP_FS, gfp_names


def oom_badness(pgdat, task) -> int:
    """``oom_badness``: pages the task pins (anon RSS + raw allocator pages)."""
    return anon.mm_rss(task) + pgdat.raw_pages_by_pid.get(task.pid, 0)


def select_bad_process(pgdat):
    """``select_bad_process``: the live non-kthread, not yet killed, with the highest badness
    (first by pid on ties)."""
    chosen, chosen_points = None, 0
    for task in pgdat.sim.tasks.values():
        if task.state == "X" or task.flags & PF_KTHREAD or task.oom_killed:
            continue
        points = oom_badness(pgdat, task)
        if points > chosen_points:
            chosen, chosen_points = task, points
    return chosen, chosen_points


def oom_kill_process(pgdat, victim, points: int, gfp: int, order: int) -> None:
    """``oom_kill_process`` + ``__oom_kill_process`` + the OOM reaper."""
    victim.oom_killed = True
    mm = getattr(victim, "mm", None)
    freed = anon.exit_mmap(mm) if mm is not None else 0
    pgdat.stats.oom_kills += 1
    pgdat.sim.emit("oom_kill", current(), victim, {
        "victim": victim.comm, "pid": victim.pid, "points": points, "anon_freed": freed,
        "gfp": gfp_names(gfp), "order": order,
        "message": f"Out of memory: Killed process {victim.pid} ({victim.comm})"})


def out_of_memory(pgdat, gfp: int, order: int) -> bool:
    """``out_of_memory``: True if progress can be expected (a kill, or a NOFS allocation that
    the killer declines to act for)."""
    task = current()
    if task.oom_killed:
        return True
    if not gfp & __GFP_FS:
        return True
    victim, points = select_bad_process(pgdat)
    if victim is None:
        pgdat.sim.emit("oom_panic", task, None, {
            "message": "Out of memory and no killable processes... "
                       "Kernel panic - not syncing: System is deadlocked on memory",
            "gfp": gfp_names(gfp), "order": order})
        pgdat.sim.stop()
        return False
    oom_kill_process(pgdat, victim, points, gfp, order)
    return True
