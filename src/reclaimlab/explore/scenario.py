"""The run factory for scenarios: one schedule is one machine built by the scenario layer.

``ScenarioTarget`` loads and validates the scenario once (a malformed one raises
``ScenarioError`` before any run), then for each schedule builds a fresh machine with
``reclaimlab.scenario.machine.build_machine``, installs the exploration's policy, runs it with
``run_machine`` (workload, then shutdown: sync and unmount, so leaks mean what they say) and
collects the interfaces.md run result. Unless the subsystems hang their own
``sim.state_fingerprint`` on the machine, ``machine_fingerprint`` summarises their global state
for the state hash. When the explorer cuts a schedule (a state it has already
explored), the run ends there (``choice.Cut``) with the findings logged so far: no shutdown
phase, and no end-of-run check, which would report the inodes of an unfinished machine leaked.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

from reclaimlab.scenario import load_scenario
from reclaimlab.scenario.errors import ScenarioError
from reclaimlab.scenario.models import DESIGNS

from .choice import ChoicePolicy, Cut
from .state import object_summary
from .target import Outcome


def machine_fingerprint(sim: Any) -> tuple:
    """Default ``sim.state_fingerprint`` of a machine whose subsystems expose none: the plain
    fields and container sizes of the mm node, its zone and free lists, the VFS and every
    superblock (free pages, LRU and dirty counts, inode counts, queue lengths…). Statistics
    (``pgdat.stats``, ``vfs.stats``) are history, not state: two interleavings that reach the
    same state by different paths must hash alike."""
    pgdat = getattr(sim, "pgdat", None)
    zone = getattr(pgdat, "zone", None)
    vfs = getattr(sim, "vfs", None)
    roots = [pgdat, zone, getattr(zone, "free_area", None), vfs,
             *getattr(vfs, "super_blocks", ())]
    return tuple(object_summary(r) for r in roots if r is not None)


class ScenarioTarget:
    """A built-in or TOML scenario under one design, seed and set of overrides."""

    def __init__(self, scenario: str, design: str | None = None, seed: int | None = None,
                 overrides: Sequence[str] = ()) -> None:
        loaded = load_scenario(scenario, list(overrides))
        self.loaded = loaded
        self.scenario = loaded.name
        self.design = design if design is not None else loaded.scenario.design.name
        if self.design not in DESIGNS:
            raise ScenarioError("design", f"unknown design {self.design!r}; expected one of "
                                f"{', '.join(DESIGNS)}")
        self.seed = seed if seed is not None else loaded.scenario.run.seed
        self.overrides = list(overrides)

    def run(self, policy: ChoicePolicy, stop_on: Sequence[str] = (),
            observers: Sequence[Any] = ()) -> Outcome:
        from reclaimlab.scenario import machine as m

        start = time.perf_counter()
        machine = m.build_machine(self.loaded.scenario, self.design, self.seed,
                                  stop_on=stop_on, observers=observers)
        policy.ignore_timer = machine.checks.hung_task.owns
        if getattr(machine.sim, "state_fingerprint", None) is None:
            machine.sim.state_fingerprint = lambda: machine_fingerprint(machine.sim)
        policy.attach(machine.sim)
        try:
            m.run_machine(machine)
        except Cut:
            pass
        wall_s = time.perf_counter() - start
        return Outcome(list(machine.checks.findings), machine.sim.digest(),
                       lambda: m.collect(machine, self.scenario, self.seed, wall_s),
                       machine.sim, policy)
