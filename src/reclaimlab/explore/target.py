"""Run factories: what an exploration runs, one schedule at a time, and what counts as a violation.

A ``Target`` builds a fresh simulation for each schedule, installs the exploration's policy, runs
it with the detectors of ``reclaimlab.check`` attached and returns an ``Outcome``: the findings in
dmesg order, the digest and a run result. ``ModelTarget`` does this for a model written directly
on ``reclaimlab.sim`` (a ``build(sim)`` that spawns tasks); ``reclaimlab.explore.scenario`` does it
for the built-in and TOML scenarios. Runs stop at the first finding of a selected kind, so a
violating schedule costs no more than its prefix.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol, Sequence

from reclaimlab.check import Finding, attach_checks
from reclaimlab.sim import Simulation

from .choice import ChoicePolicy, Cut

#: property name -> does a finding violate it
PROPERTIES: dict[str, Callable[[Finding], bool]] = {
    "deadlock": lambda f: f.kind == "deadlock" and f.data.get("kind") != "knot",
    "knot": lambda f: f.kind == "deadlock" and f.data.get("kind") == "knot",
    "hung_task": lambda f: f.kind == "hung_task",
    "lockdep": lambda f: f.kind.startswith("lockdep"),
    "nofail": lambda f: f.kind.startswith("nofail"),
    "invariant": lambda f: f.kind == "invariant" and "never freed" not in f.message,
    "leak": lambda f: f.kind == "invariant" and "never freed" in f.message,
    "oom": lambda f: f.kind == "oom_kill",
    "model_error": lambda f: f.kind == "model_error",
}
#: what a plain ``explore`` checks: every detector finding except an OOM kill, which is the
#: kernel's legitimate answer to memory pressure rather than a bug
DEFAULT_PROPERTIES = tuple(p for p in PROPERTIES if p != "oom")
#: finding kinds that may stop a run early for each property
_STOP_KINDS = {
    "deadlock": ("deadlock",), "knot": ("deadlock",), "hung_task": ("hung_task",),
    "lockdep": ("lockdep_circular",),
    "nofail": ("nofail_in_reclaim", "nofail_costly_order", "nofail_no_reclaim"),
    "invariant": ("invariant",), "leak": (), "oom": ("oom_kill",), "model_error": (),
}


class ExplorerError(Exception):
    """An error of the explorer itself, raised inside a run (a strategy's ``choose``): never a
    finding of the model."""


def parse_properties(text: str | None) -> tuple[str, ...]:
    """``--property deadlock,leak`` -> ("deadlock", "leak"); ValueError naming an unknown one."""
    if not text:
        return DEFAULT_PROPERTIES
    names = tuple(p.strip() for p in text.split(",") if p.strip())
    bad = [p for p in names if p not in PROPERTIES]
    if bad or not names:
        raise ValueError(f"unknown property {bad[0] if bad else '(empty)'!r}; "
                         f"known: {', '.join(PROPERTIES)}")
    return names


def finding_property(finding: Finding, properties: Iterable[str]) -> str | None:
    """The first of ``properties`` that ``finding`` violates, or None."""
    for p in properties:
        if PROPERTIES[p](finding):
            return p
    return None


def stop_kinds(properties: Iterable[str]) -> tuple[str, ...]:
    return tuple(k for p in properties for k in _STOP_KINDS[p])


@dataclass
class Outcome:
    """What one schedule produced; the run result is built only when asked for."""

    findings: list[Finding]
    digest: str
    make_result: Callable[[], dict[str, Any]]
    sim: Simulation
    policy: ChoicePolicy
    _result: dict[str, Any] | None = None

    @property
    def result(self) -> dict[str, Any]:
        """The run result (interfaces.md) of this schedule."""
        if self._result is None:
            self._result = self.make_result()
        return self._result

    def discard(self) -> None:
        """Unwind the run's suspended tasks (``Simulation.close``): an outcome nobody keeps.

        A run stopped midway leaves generators suspended; closing them here, as their tasks,
        keeps a ``finally`` of modelled code from running later under the garbage collector.
        """
        self.sim.close()

    def violations(self, properties: Iterable[str]) -> list[tuple[str, Finding]]:
        """(property, finding) for each finding violating one of ``properties``."""
        props = tuple(properties)
        out = []
        for f in self.findings:
            p = finding_property(f, props)
            if p is not None:
                out.append((p, f))
        return out


class Target(Protocol):
    """A run factory: ``run`` builds a fresh simulation under ``policy`` and runs it."""

    scenario: str
    design: str
    seed: int
    overrides: list[str]

    def run(self, policy: ChoicePolicy, stop_on: Sequence[str] = (),
            observers: Sequence[Any] = ()) -> Outcome: ...


@dataclass
class ModelTarget:
    """A model written directly on ``reclaimlab.sim``: ``build(sim)`` spawns its tasks."""

    scenario: str
    build: Callable[[Simulation], None]
    design: str = "model"
    seed: int = 0
    ncpus: int = 1
    until: int | None = None
    overrides: list[str] = field(default_factory=list)

    def run(self, policy: ChoicePolicy, stop_on: Sequence[str] = (),
            observers: Sequence[Any] = ()) -> Outcome:
        start = time.perf_counter()
        sim = Simulation(seed=self.seed, ncpus=self.ncpus)
        checks = attach_checks(sim, stop_on=stop_on)
        for obs in observers:
            sim.add_observer(obs)
        self.build(sim)
        policy.ignore_timer = checks.hung_task.owns
        policy.attach(sim)
        try:
            sim.run(self.until)
        except Cut:
            pass
        else:
            checks.finish()
        wall_s = time.perf_counter() - start
        return Outcome(checks.findings, sim.digest(),
                       lambda: model_result(self, sim, checks.findings, wall_s), sim, policy)


def model_result(target: Any, sim: Simulation, findings: list[Finding],
                 wall_s: float) -> dict[str, Any]:
    """The run-result fields (interfaces.md) that a bare model has: no mm, no inodes."""
    deadlocks = [f.data for f in findings if f.kind == "deadlock"]
    invariants = [f.message for f in findings if f.kind == "invariant"]
    return {
        "scenario": target.scenario, "design": target.design, "seed": target.seed,
        "outcome": "deadlock" if deadlocks else "completed",
        "sim_time_ns": sim.now, "events": sim.events, "wall_s": wall_s,
        "digest": sim.digest(),
        "warnings": [f.as_warning() for f in findings if f.kind not in ("deadlock", "invariant")],
        "deadlocks": deadlocks,
        "invariants": {"ok": not invariants, "violations": invariants},
    }


def run_schedule(target: Target, policy: ChoicePolicy, stop_on: Sequence[str] = (),
                 observers: Sequence[Any] = ()) -> Outcome:
    """``target.run``; an exception raised by the model under this schedule (a bug of the
    simulator's models, or a runtime rule broken: sleeping under a spinlock) becomes a
    ``model_error`` finding, so that it is shrunk and saved like any other violation; an
    ``ExplorerError`` goes on up."""
    try:
        return target.run(policy, stop_on, observers)
    except ExplorerError:
        raise
    except Exception as exc:
        sim = policy.sim
        if sim is None:  # failed before the schedule began: not a property of a schedule
            raise
        finding = model_error(sim, exc)
        return Outcome([finding], sim.digest(),
                       lambda: error_result(target, sim, finding), sim, policy)


def model_error(sim: Simulation, exc: BaseException) -> Finding:
    """The ``model_error`` finding for ``exc``: the modelled frames and the traceback."""
    task = ""
    for note in getattr(exc, "__notes__", []):
        if note.startswith("in simulated task "):
            task = note[len("in simulated task "):].split(" at t=")[0]
    frames = traceback.extract_tb(exc.__traceback__)
    starts = [i for i, f in enumerate(frames) if f.name == "run" and "sim" in f.filename]
    stack = [f.name for f in frames[starts[-1] + 1 if starts else 0:]]
    message = f"{type(exc).__name__}: {exc}"
    return Finding("model_error", sim.now, task, stack, message,
                   "reclaimlab: the model raised under this schedule\n"
                   + "".join(traceback.format_exception(exc)).rstrip())


def error_result(target: Any, sim: Simulation, finding: Finding) -> dict[str, Any]:
    """The run result of a schedule the model crashed in: outcome ``"error"``."""
    return {"scenario": target.scenario, "design": target.design, "seed": target.seed,
            "outcome": "error", "sim_time_ns": sim.now, "events": sim.events, "wall_s": 0.0,
            "digest": sim.digest(), "warnings": [], "deadlocks": [],
            "invariants": {"ok": True, "violations": []},
            "error": {"task": finding.task, "message": finding.message,
                      "stack": finding.stack}}

