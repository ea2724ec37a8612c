"""Reports: metrics, the interfaces.md run result, the human report, comparisons, plots, traces.

Typical use by a runner::

    obs = attach_observers(sim, trace=want_trace)        # before sim.run
    sim.run(until=...)
    ... unmount / flush ...
    result = finish_run(sim, obs, scenario, design, seed, wall_s, timed_out=...)
    print(render_human(result))
    if want_trace: obs.tracer.write(path)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from reclaimlab.check import HUNG_TASK_TIMEOUT_NS, Checks, attach_checks

from .compare import compare_report, compare_table, log2_histogram
from .human import render_human, verdict
from .metrics import Metrics
from .perfetto import PerfettoTracer
from .result import OUTCOMES, build_result, derive_outcome

__all__ = [
    "OUTCOMES", "Metrics", "Observers", "PerfettoTracer", "attach_observers", "build_result",
    "compare_report", "compare_table", "derive_outcome", "finish_run", "log2_histogram",
    "render_human", "verdict",
]


@dataclass
class Observers:
    """What ``attach_observers`` attached to one simulation."""

    checks: Checks
    metrics: Metrics
    tracer: PerfettoTracer | None

    def __iter__(self) -> Any:
        return iter([self.checks, self.metrics, *([self.tracer] if self.tracer else [])])


def attach_observers(sim: Any, trace: bool = False,
                     hung_task_timeout_ns: int = HUNG_TASK_TIMEOUT_NS,
                     stop_on: Iterable[str] = ()) -> Observers:
    """Attach every detector, the metrics and optionally the Perfetto tracer (before ``run``)."""
    checks = attach_checks(sim, hung_task_timeout_ns, stop_on)
    metrics = Metrics(sim)
    sim.add_observer(metrics)
    tracer = None
    if trace:
        tracer = PerfettoTracer(sim, checks)
        sim.add_observer(tracer)
    return Observers(checks, metrics, tracer)


def finish_run(sim: Any, observers: Observers, scenario: str, design: str, seed: int,
               wall_s: float, *, timed_out: bool = False, check_leaks: bool = True
               ) -> dict[str, Any]:
    """End-of-run checks, then the run result (call after ``sim.run`` and unmount/flush)."""
    observers.checks.finish(check_leaks)
    return build_result(sim, scenario, design, seed, wall_s, observers, timed_out=timed_out)
