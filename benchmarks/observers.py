"""Cost of the observers: the same run with nothing attached, with every detector and the
metrics, and with those plus the Perfetto tracer.

    python benchmarks/observers.py [--tasks 8] [--iterations 2000] [--repeat 3] [--json]
    python benchmarks/observers.py --scenario overlay-unlink [--design sync] [--set K=V]...

Without ``--scenario`` the workload is a synthetic one built directly on the runtime
(tests/report/model.py): almost no model code runs between events, so it is the worst case for
observers. With ``--scenario`` a built-in scenario runs through the machine builder, observers
detached for the ``none`` configuration. The acceptance bound (issue 5): with all detectors and
the tracer attached a run is at most 2× slower than with none. Each configuration runs
``--repeat`` times, the configurations taking turns (so that a change in the machine's load
affects them alike); the best time counts. Time is the process's CPU time (``process_time``),
which other processes on a loaded machine disturb far less than the wall clock. Digests must
not depend on the observers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from reclaimlab.report import attach_observers, finish_run  # noqa: E402
from reclaimlab.sim import Simulation  # noqa: E402
from tests.report.model import synthetic_workload  # noqa: E402


WRITE_S: list[float] = []


def scenario_run(config: str, name: str, design: str, seed: int,
                 overrides: list[str]) -> tuple[float, int, str]:
    """One built-in scenario through the machine builder, with ``config``'s observers."""
    from reclaimlab.report import PerfettoTracer
    from reclaimlab.scenario import load_scenario
    from reclaimlab.scenario import machine as m

    built = m.build_machine(load_scenario(name, overrides).scenario, design, seed)
    sim = built.sim
    if config == "none":
        for obs in list(sim.observers):
            sim.remove_observer(obs)
    tracer = None
    if config == "all+trace":
        tracer = PerfettoTracer(sim, built.checks)
        sim.add_observer(tracer)
    t0 = time.process_time()
    m.run_machine(built)
    cpu = time.process_time() - t0
    if tracer is not None:
        write_trace(tracer)
    return cpu, sim.events, sim.digest()


def write_trace(tracer: Any) -> None:
    """Write the trace to a scratch file, timing it apart from the run."""
    t0 = time.process_time()
    with tempfile.TemporaryDirectory() as d:
        tracer.write(os.path.join(d, "trace.json"))
    WRITE_S.append(time.process_time() - t0)


def one_run(config: str, tasks: int, iterations: int) -> tuple[float, int, str]:
    """The synthetic workload with ``config``'s observers; the CPU time of the run (writing
    the trace file is timed apart, see ``trace_write_s``)."""
    sim = Simulation(seed=1, ncpus=4)
    synthetic_workload(sim, tasks, iterations)
    obs = attach_observers(sim, trace=config == "all+trace") if config != "none" else None
    t0 = time.process_time()
    sim.run()
    if obs is not None:
        finish_run(sim, obs, "synthetic", "inodegc", 1, 0.0)
    cpu = time.process_time() - t0
    if obs is not None and obs.tracer is not None:
        write_trace(obs.tracer)
    return cpu, sim.events, sim.digest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=8)
    ap.add_argument("--iterations", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--scenario", help="a built-in scenario instead of the synthetic workload")
    ap.add_argument("--design", default="sync")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    configs = ("none", "detectors+metrics", "all+trace")
    best = dict.fromkeys(configs, float("inf"))
    events = dict.fromkeys(configs, 0)
    digests = set()
    for _ in range(args.repeat):
        for config in configs:
            if args.scenario:
                cpu, events[config], digest = scenario_run(config, args.scenario, args.design,
                                                           args.seed, args.set)
            else:
                cpu, events[config], digest = one_run(config, args.tasks, args.iterations)
            best[config] = min(best[config], cpu)
            digests.add(digest)
    rows = {config: {"cpu_s": best[config], "events": events[config],
                     "events_per_s": events[config] / best[config]} for config in configs}
    base = rows["none"]["cpu_s"]
    for row in rows.values():
        row["slowdown"] = row["cpu_s"] / base
    out = {"python": sys.version.split()[0], "workload": args.scenario or "synthetic",
           "configs": rows, "trace_write_s": min(WRITE_S, default=0.0),
           "same_digest": len(digests) == 1, "within_2x": rows["all+trace"]["slowdown"] <= 2.0}
    if args.json:
        print(json.dumps(out, indent=2))
        return
    for name, row in rows.items():
        print(f"{name:<20} {row['cpu_s']:8.3f} s  {row['events_per_s']:>12,.0f} events/s  "
              f"×{row['slowdown']:.2f}")
    print(f"writing the trace file: {out['trace_write_s']:.3f} s (not in the run's time)")
    print(f"same digest with and without observers: {out['same_digest']}; "
          f"all+trace within 2×: {out['within_2x']}")


if __name__ == "__main__":
    main()
