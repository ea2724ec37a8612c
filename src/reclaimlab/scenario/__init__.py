"""Scenarios: TOML files validated into typed models, the built-ins, and the machine builder.

``run_scenario(scenario, design=None, seed=None, overrides=[])`` is the one entry point other
tools use (the sweep runner, benchmarks, tests): it loads a built-in name or a file, applies
``--set`` style overrides, builds and runs the machine and returns the interfaces.md run
result. User mistakes raise :class:`ScenarioError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from reclaimlab.scenario.errors import ScenarioError
from reclaimlab.scenario.loader import LoadedScenario, builtin_names, load_scenario
from reclaimlab.scenario.models import DESIGNS, Scenario

__all__ = ["DESIGNS", "LoadedScenario", "Scenario", "ScenarioError", "Simulated",
           "builtin_names", "load_scenario", "run_scenario", "simulate"]


@dataclass
class Simulated:
    """A finished run: its result and, when asked for, its Perfetto trace."""

    result: dict[str, Any]
    trace: dict[str, Any] | None


def simulate(scenario: str, design: str | None = None, seed: int | None = None,
             overrides: Sequence[str] = (), *, trace: bool = False,
             progress: Callable[[float], None] | None = None) -> Simulated:
    """Load, build, run, collect; ``trace`` also records a Chrome trace-event trace."""
    loaded = load_scenario(scenario, overrides)
    sc = loaded.scenario
    design = design if design is not None else sc.design.name
    if design not in DESIGNS:
        raise ScenarioError("design", f"unknown design {design!r}; expected one of "
                            f"{', '.join(DESIGNS)}")
    from reclaimlab.scenario import machine as m

    seed = seed if seed is not None else sc.run.seed
    started = m.wall_clock()
    tracer = None
    built = m.build_machine(sc, design, seed)
    if trace:
        from reclaimlab.report.perfetto import PerfettoTracer

        tracer = PerfettoTracer(built.sim, built.checks)
        built.sim.add_observer(tracer)
    m.run_machine(built, progress)
    result = m.collect(built, loaded.name, seed, m.wall_clock() - started)
    traced = tracer.trace() if tracer is not None else None
    built.sim.close()
    return Simulated(result, traced)


def run_scenario(scenario: str, design: str | None = None, seed: int | None = None,
                 overrides: Sequence[str] = (), *,
                 progress: Callable[[float], None] | None = None) -> dict[str, Any]:
    """Run one scenario and return the interfaces.md run result."""
    return simulate(scenario, design, seed, overrides, progress=progress).result
