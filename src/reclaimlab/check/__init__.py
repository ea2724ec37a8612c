"""Detectors: observers that read the simulated kernel's events and report like the kernel.

The model never imports this package; detectors attach with ``sim.add_observer`` (docs/internals.md
§1). ``attach_checks(sim)`` attaches all of them sharing one log (``Dmesg``); after ``sim.run``,
``checks.finish()`` runs the end-of-run checks.
"""

from __future__ import annotations

from typing import Any, Iterable

from .deadlock import DeadlockDetector
from .hung_task import HUNG_TASK_TIMEOUT_NS, HungTaskDetector
from .invariants import InvariantChecker
from .lockdep import Lockdep
from reclaimlab.sim.core import Handler, fan_out

from .splat import Dmesg, Finding, task_name, task_stack
from .warnings import AllocWarnings

__all__ = [
    "AllocWarnings", "Checks", "DeadlockDetector", "Dmesg", "Finding", "HUNG_TASK_TIMEOUT_NS",
    "HungTaskDetector", "InvariantChecker", "Lockdep", "attach_checks", "task_name", "task_stack",
]


class Checks:
    """Every detector of one run, sharing one ``Dmesg``.

    ``stop_on`` lists finding kinds (``"deadlock"``, ``"lockdep_circular"``, …) that stop the
    run after the current step, for exploration; invariant violations always stop it.
    """

    def __init__(self, sim: Any, hung_task_timeout_ns: int = HUNG_TASK_TIMEOUT_NS,
                 stop_on: Iterable[str] = ()) -> None:
        self.sim = sim
        self.dmesg = Dmesg()
        self.hung_task = HungTaskDetector(sim, self.dmesg, hung_task_timeout_ns)
        self.deadlock = DeadlockDetector(sim, self.dmesg, ignore_timer=self.hung_task.owns)
        self.lockdep = Lockdep(sim, self.dmesg)
        self.warnings = AllocWarnings(sim, self.dmesg)
        self.invariants = InvariantChecker(sim, self.dmesg)
        self.routes: dict[str, Handler] = {}
        self.stop_on = tuple(stop_on)
        if self.stop_on:
            self.dmesg.listeners.append(self._maybe_stop)

    @property
    def detectors(self) -> list[Any]:
        return [self.deadlock, self.hung_task, self.lockdep, self.warnings, self.invariants]

    def attach(self) -> "Checks":
        """Attach as one observer routing each event kind to the detectors that want it."""
        self.deadlock.attach_existing()
        routes: dict[str, list[Handler]] = {}
        for d in self.detectors:
            for kind, handler in d.handlers().items():
                routes.setdefault(kind, []).append(handler)
        self.routes = {kind: fan_out(hs) for kind, hs in routes.items()}
        self.event_routes = self.routes  # the runtime merges these with other observers' routes
        self.sim.add_observer(self)
        return self

    def event(self, kind: str, task: Any, obj: Any, info: Any) -> None:
        """Route one event (the runtime itself routes through ``event_routes``)."""
        handler = self.routes.get(kind)
        if handler is not None:
            handler(task, obj, info)

    def _maybe_stop(self, finding: Finding) -> None:
        if finding.kind in self.stop_on:
            self.sim.stop()

    def finish(self, check_leaks: bool = True) -> None:
        """End-of-run checks: remaining deadlocks/knots, then invariants."""
        self.deadlock.finish()
        self.invariants.finish(check_leaks)

    @property
    def findings(self) -> list[Finding]:
        """Everything reported, in dmesg order."""
        return self.dmesg.findings


def attach_checks(sim: Any, hung_task_timeout_ns: int = HUNG_TASK_TIMEOUT_NS,
                  stop_on: Iterable[str] = ()) -> Checks:
    """Create every detector and attach it to ``sim``."""
    return Checks(sim, hung_task_timeout_ns, stop_on).attach()
