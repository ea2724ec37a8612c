"""Exploration throughput: schedules per minute and distinct states per second.

Explores SCENARIO (default ``mini-overlay``) under each design with ``dfs`` (re-executing each
schedule from the start, and with ``--fork``, sharing prefixes through fork(2)) and ``random``,
for at most ``--budget`` schedules or ``--seconds`` of host time each (a forked ``dfs`` is bounded
by the budget only), looking for every property except ``oom``; a violation ends a run early, as
in ``explore``. Abstract time with the bounds docs/explore.md gives for ``mini-overlay``
(``--start 5800000 --preemptions 1``, depth 50, any pending event eligible). Prints one line per
run, or one JSON object with ``--json``::

    {"python": str, "scenario": str, "target_schedules_per_min": 20000,
     "runs": [{"design", "strategy", "fork", "schedules", "wall_s", "schedules_per_min",
               "cpu_s", "cpu_ms_per_schedule", "states", "distinct_states",
               "distinct_states_per_s", "complete", "violation"}]}

``cpu_s`` is the CPU time (user and system) of this process and of the forked ones it reaped:
on a shared machine wall time also counts the waits for a core, and under ``--fork`` several
processes take turns, so CPU time per schedule is the steadier figure.

Usage: python benchmarks/explore.py [--scenario S] [--designs D1,D2] [--strategies S1,S2]
                                    [--budget N] [--seconds T] [--window NS] [--start NS]
                                    [--preemptions N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

from reclaimlab.explore import explore, make_strategy, make_target
from reclaimlab.explore.choice import TimeMode
from reclaimlab.explore.strategies import STRATEGIES

TARGET_SCHEDULES_PER_MIN = 20_000


class TimeBudget:
    """Wraps a strategy: no further schedule once ``seconds`` of host time have passed."""

    def __init__(self, strategy, seconds: float) -> None:
        self.inner = strategy
        self.deadline = time.perf_counter() + seconds

    def next_policy(self):
        if time.perf_counter() > self.deadline:
            return None
        return self.inner.next_policy()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __setattr__(self, name, value):
        if name in ("inner", "deadline"):
            object.__setattr__(self, name, value)
        else:
            setattr(self.inner, name, value)


def cpu_time() -> float:
    """User and system time of this process and of its reaped children, in seconds."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def bench(scenario: str, design: str, strategy: str, fork: bool, budget: int,
          seconds: float, time_mode: TimeMode, preemptions: int) -> dict:
    target = make_target(scenario, design)
    inner = make_strategy(strategy, seed=1, fork=fork, time_mode=time_mode,
                          preemptions=preemptions)
    # a forked dfs runs in children that never return to this loop: bound it by budget only
    strat = inner if fork else TimeBudget(inner, seconds)
    cpu = cpu_time()
    stats = explore(target, strat, budget=budget)
    cpu = cpu_time() - cpu
    if stats.found is not None:
        stats.found.outcome.discard()
    wall = max(stats.wall_s, 1e-9)
    return {
        "design": target.design, "strategy": strategy, "fork": fork,
        "schedules": stats.schedules, "wall_s": round(wall, 3),
        "schedules_per_min": round(stats.schedules / wall * 60),
        "cpu_s": round(cpu, 3),
        "cpu_ms_per_schedule": round(cpu / max(stats.schedules, 1) * 1000, 1),
        "states": stats.states, "distinct_states": stats.distinct_states,
        "distinct_states_per_s": round(stats.distinct_states / wall, 1),
        "complete": stats.complete,
        "violation": stats.found.prop if stats.found is not None else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="mini-overlay")
    ap.add_argument("--designs", default="sync,inodegc,passive-ref")
    ap.add_argument("--strategies", default="dfs,dfs-fork,random")
    ap.add_argument("--budget", type=int, default=5000)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--window", type=int, default=-1, help="ns; -1: any pending event")
    ap.add_argument("--start", type=int, default=5_800_000, help="ns")
    ap.add_argument("--preemptions", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    time_mode = TimeMode(True, None if args.window < 0 else args.window, args.start)
    runs = []
    for design in args.designs.split(","):
        for name in args.strategies.split(","):
            strategy, fork = name.removesuffix("-fork"), name.endswith("-fork")
            assert strategy in STRATEGIES, name
            row = bench(args.scenario, design, strategy, fork, args.budget, args.seconds,
                        time_mode, args.preemptions)
            runs.append(row)
            if not args.json:
                print(f"{args.scenario:>14} {design:>12} {name:>9}: {row['schedules']:>7,} "
                      f"schedules in {row['wall_s']:7.2f} s = {row['schedules_per_min']:>9,} "
                      f"schedules/min, {row['cpu_ms_per_schedule']:6.1f} ms CPU/schedule, "
                      f"{row['distinct_states_per_s']:>9,.1f} distinct states/s, "
                      f"complete={row['complete']}, violation={row['violation']}")
    if args.json:
        print(json.dumps({"python": platform.python_version(), "scenario": args.scenario,
                          "time_mode": {"window_ns": time_mode.window,
                                        "start_ns": time_mode.start},
                          "preemptions": args.preemptions,
                          "target_schedules_per_min": TARGET_SCHEDULES_PER_MIN,
                          "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
