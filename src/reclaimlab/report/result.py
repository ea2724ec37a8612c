"""The run result of interfaces.md, built from the simulation and the attached observers.

Required fields exactly as interfaces.md; additions (documented there as allowed):
``alloc_latency_log2`` (bpftrace-style log2 bucket counts, index k = values with bit length k),
``alloc_latency_cdf`` (``[[ns, fraction], …]``), ``blocked`` (per-task D-state time),
``dmesg`` (every splat in log order). Warning kinds beyond interfaces.md's list:
``lockdep_recursive``, ``sleeping_in_atomic``, and ``page_allocation_failure``-style kinds mm
may emit. Deadlock entries carry ``kind`` (``cycle`` or ``knot``) in addition.
"""

from __future__ import annotations

from typing import Any, Iterable

from reclaimlab.check import Checks

from .metrics import Metrics

OUTCOMES = ("deadlock", "oom", "hung", "timeout", "completed")
_NOT_WARNINGS = ("deadlock", "invariant")


def _find(observers: Iterable[Any], cls: type) -> Any:
    for o in observers:
        if isinstance(o, cls):
            return o
    return None


def derive_outcome(checks: Checks | None, timed_out: bool) -> str:
    """deadlock > oom > hung > timeout > completed: the worst thing that happened."""
    kinds = {f.kind for f in checks.findings} if checks is not None else set()
    if "deadlock" in kinds:
        return "deadlock"
    if "oom_kill" in kinds:
        return "oom"
    if "hung_task" in kinds:
        return "hung"
    return "timeout" if timed_out else "completed"


def build_result(sim: Any, scenario: str, design: str, seed: int, wall_s: float,
                 observers: Iterable[Any], *, timed_out: bool = False) -> dict[str, Any]:
    """The interfaces.md run result.

    ``observers`` are the attached ``Checks`` and ``Metrics`` (either may be missing: its fields
    are then empty). Call after ``sim.run`` returned, the workload was unmounted/flushed and
    ``checks.finish()`` ran; ``timed_out`` says the run hit its time limit with work left.
    """
    observers = list(observers)
    checks: Checks | None = _find(observers, Checks)
    metrics: Metrics | None = _find(observers, Metrics)
    findings = checks.findings if checks is not None else []
    vfs = getattr(sim, "vfs", None)
    leaked = len(vfs.leaked()) if vfs is not None and hasattr(vfs, "leaked") else 0
    violations = [f.message for f in findings if f.kind == "invariant"]
    if metrics is None:
        metrics = Metrics(sim)  # nothing measured: zero counts
    metrics.finish()
    return {
        "scenario": scenario,
        "design": design,
        "seed": seed,
        "outcome": derive_outcome(checks, timed_out),
        "sim_time_ns": int(sim.now),
        "events": int(sim.events),
        "wall_s": float(wall_s),
        "digest": sim.digest(),
        "warnings": [f.as_warning() for f in findings if f.kind not in _NOT_WARNINGS],
        "deadlocks": [{"time_ns": f.time_ns, "kind": f.data["kind"], "cycle": f.data["cycle"]}
                      for f in findings if f.kind == "deadlock"],
        "alloc_latency_ns": metrics.alloc_latency(),
        "direct_reclaim": metrics.direct_reclaim(),
        "inodes": {"evicted": metrics.inodes_evicted,
                   "evicted_in_reclaim": metrics.inodes_cleaned_in_reclaim,
                   "deferred": metrics.inodes_deferred,
                   "leaked": leaked},
        "fs_errors": list(getattr(vfs, "fs_errors", [])),
        "invariants": {"ok": not violations, "violations": violations},
        "alloc_latency_log2": list(metrics.alloc_log2),
        "alloc_latency_cdf": metrics.alloc_latency_cdf(),
        "alloc_latency_hist": metrics.alloc_latency_hist(),
        "blocked": metrics.blocked_time(),
        "dmesg": checks.dmesg.text() if checks is not None else "",
    }
