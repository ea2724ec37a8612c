"""Running a built-in scenario under a design while watching who runs filesystem cleanup.

``observed_run`` is ``run_scenario`` plus one observer: for every ``inode_cleanup`` event (the
filesystem's blocking cleanup of an inode starts) in a task with ``PF_MEMALLOC`` it notes
whether the inode was unlinked and whether its filesystem marks it hard to evict
(``inode_needs_inactive``). Runs go to a process pool: each is a few seconds.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from typing import Any

from reclaimlab.scenario import load_scenario
from reclaimlab.scenario import machine as m
from reclaimlab.sim import PF_MEMALLOC
from reclaimlab.vfs.designs import inode_needs_inactive


class ReclaimCleanups:
    """Observer: cleanups run in reclaim, split by kind of inode."""

    def __init__(self) -> None:
        self.unlinked = 0     # nlink == 0: the W1 (dentry -> iput) shape
        self.hard = 0         # any inode the filesystem marks hard (unlinked, preallocations)
        self.all = 0

    def event(self, kind: str, task: Any, obj: Any, info: Any) -> None:
        if kind != "inode_cleanup" or task is None or not task.flags & PF_MEMALLOC:
            return
        self.all += 1
        self.unlinked += obj.i_nlink == 0
        self.hard += inode_needs_inactive(obj)


def observed_run(job: tuple[str, str, tuple[str, ...]]) -> dict[str, Any]:
    """Run ``(scenario, design, overrides)``; the run result plus ``reclaim_cleanups``."""
    scenario, design, overrides = job
    loaded = load_scenario(scenario, list(overrides))
    sc = loaded.scenario
    obs = ReclaimCleanups()
    machine = m.build_machine(sc, design, sc.run.seed, observers=[obs])
    m.run_machine(machine)
    result = m.collect(machine, loaded.name, sc.run.seed, 0.0)
    result["reclaim_cleanups"] = {"unlinked": obs.unlinked, "hard": obs.hard, "all": obs.all}
    return result


def run_all(scenario: str, designs: tuple[str, ...], overrides: tuple[str, ...] = ()
            ) -> dict[str, dict[str, Any]]:
    """``observed_run`` for each design, two at a time."""
    jobs = [(scenario, d, overrides) for d in designs]
    with ProcessPoolExecutor(max_workers=2) as pool:
        return dict(zip(designs, pool.map(observed_run, jobs)))


def warning_stacks(result: dict[str, Any], kind: str) -> list[list[str]]:
    """Stacks of the run's warnings of ``kind``."""
    return [w["stack"] for w in result["warnings"] if w["kind"] == kind]


def from_eviction(stack: list[str]) -> bool:
    """The warning was raised inside an inode eviction (``evict`` or the fs's ``->inactive``)."""
    return any(f.split()[0].split("(")[0] in ("evict", "ext4_evict_inode", "ext4_inactive",
                                               "xfs_inactive") for f in stack)
