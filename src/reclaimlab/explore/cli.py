"""``reclaimlab explore`` and ``reclaimlab replay`` (interfaces.md "Commands").

``register(subparsers)`` adds both sub-commands to the main parser; ``main(argv)`` runs them
stand-alone (tests). Exit status as every command: 0 on success, 1 when ``--check`` was given and
a violation was found (or replayed), 2 on a user error with one paragraph on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Sequence

from .choice import TimeMode
from .replay import (
    Counterexample, TimelineRecorder, make_target, render_timeline, replay,
)
from .shrink import shrink
from .strategies import STRATEGIES, Progress, explore, make_strategy
from .target import Outcome, parse_properties
from .toys import TOYS

from reclaimlab.scenario.errors import ScenarioError
from reclaimlab.scenario.models import DESIGNS, Explore


class ExploreUserError(Exception):
    """Bad arguments or input files (exit 2)."""


# --------------------------------------------------------------------------- explore
def default_out(scenario: str, design: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(scenario).stem if scenario.endswith(".toml")
                  else scenario)
    return f"{stem}-{design}.cex.json"


def finding_object(finding: Any) -> dict[str, Any]:
    """The finding as the run result shows it: a deadlock entry or a warning entry."""
    if finding.kind == "deadlock":
        return {"time_ns": finding.data.get("time_ns", finding.time_ns),
                "cycle": finding.data.get("cycle", [])}
    return finding.as_warning()


def scenario_bounds(args: argparse.Namespace, target: Any) -> None:
    """Bounds not given on the command line come from the scenario's ``[explore]`` table (a toy
    model has the table's defaults)."""
    loaded = getattr(target, "loaded", None)
    bounds = loaded.scenario.explore if loaded is not None else Explore()
    if args.max_depth is None:
        args.max_depth = bounds.max_depth
    if args.preemptions is None:
        args.preemptions = bounds.preemptions
    if args.start is None:
        args.start = round(bounds.start_ms * 1_000_000)


def run_explore(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """Explore, shrink and save; returns the exploration result and the human report."""
    try:
        properties = parse_properties(args.property)
    except ValueError as e:
        raise ExploreUserError(f"--property: {e}") from None
    if args.scenario not in TOYS and args.design is None:
        raise ExploreUserError("--design is required: one of " + ", ".join(DESIGNS))
    out = args.out or default_out(args.scenario, args.design or "model")
    if Path(out).parent != Path("") and not Path(out).parent.is_dir():
        raise ExploreUserError(f"--out {out}: directory {Path(out).parent} does not exist")
    target = make_target(args.scenario, args.design, args.seed, args.set)
    scenario_bounds(args, target)
    for name in ("budget", "max_depth", "pct_depth"):
        if getattr(args, name) < 1:
            raise ExploreUserError(f"--{name.replace('_', '-')} must be at least 1")
    if args.preemptions < 0:
        raise ExploreUserError("--preemptions must be at least 0")
    if args.window is not None and (args.window < 0 or args.timed):
        raise ExploreUserError("--window must be >= 0 ns, and cannot be combined with --timed")
    if args.start < 0:
        raise ExploreUserError("--start must be >= 0 ns")
    time_mode = TimeMode(not args.timed, args.window, args.start)
    if args.fork is None:
        args.fork = args.strategy == "dfs" and hasattr(os, "fork") and args.scenario not in TOYS
    strategy = make_strategy(args.strategy, args.seed or 0, args.max_depth, args.preemptions,
                             args.pct_depth, time_mode, args.fork,
                             not args.no_state_hashing, not args.no_symmetry)
    progress = Progress(sys.stderr if not args.quiet else None)
    stats = explore(target, strategy, args.budget, properties, progress)
    result: dict[str, Any] = {
        "scenario": target.scenario, "design": target.design, "strategy": args.strategy,
        "schedules": stats.schedules, "states": stats.states,
        "distinct_states": stats.distinct_states, "wall_s": round(stats.wall_s, 3),
        "complete": stats.complete, "violation": None,
        "bounds": {"budget": args.budget, "max_depth": args.max_depth,
                   "preemptions": args.preemptions, "pct_depth": args.pct_depth,
                   "abstract_time": time_mode.abstract, "window_ns": time_mode.window,
                   "start_ns": time_mode.start,
                   "fork": args.fork, "symmetry": not args.no_symmetry,
                   "state_hashing": not args.no_state_hashing},
        "properties": list(properties),
    }
    head = (f"explore {target.scenario} under {target.design}: {args.strategy}, "
            f"{stats.schedules:,} schedules, {stats.states:,} states generated, "
            f"{stats.distinct_states:,} distinct, {stats.wall_s:.1f} s")
    if stats.found is None:
        verdict = ("the bounded space was exhausted" if stats.complete
                   else "budget spent before the space was exhausted")
        return result, (f"{head}\nNo violation of {','.join(properties)}: {verdict} "
                        f"(complete={str(stats.complete).lower()}).")
    prop = stats.found.prop
    choices, outcome, runs = shrink(target, stats.found.outcome.policy.choices, prop,
                                    time_mode, args.shrink_runs)
    stats.found.outcome.discard()
    finding = outcome.violations([prop])[0][1]
    cex = Counterexample(target.scenario, target.design, target.seed, choices, prop,
                         finding.kind, outcome.digest, list(target.overrides),
                         time_mode.abstract, time_mode.window, time_mode.start)
    cex.save(out)
    result["violation"] = {
        "kind": finding.kind, "property": prop, "finding": finding_object(finding),
        "schedule_file": out, "choices": choices, "digest": outcome.digest,
        "preemptions": sum(1 for c in choices if c), "shrink_runs": runs,
        "message": finding.message,
    }
    outcome.discard()
    report = describe(cex, target)[0]
    return result, (f"{head}\nVIOLATION ({prop}): {finding.message}\n"
                    f"shrunk in {runs} runs to {len(choices)} choices, "
                    f"{result['violation']['preemptions']} deviating from the default schedule\n"
                    f"{report}\ncounterexample saved to {out}; reproduce with: "
                    f"reclaimlab replay {out}")


def describe(cex: Counterexample, target: Any = None) -> tuple[str, Outcome]:
    """Replay with a timeline recorder: the splats, then the interleaving per task."""
    rec = TimelineRecorder()
    outcome = replay(cex, [rec], target)
    splats = "\n".join(f.text for f in outcome.findings)
    focus = [f.task for f in outcome.findings]
    focus += [e["task"] for f in outcome.findings for e in f.data.get("cycle", [])]
    text = (f"{splats}\n\ninterleaving (one column per task):\n"
            f"{render_timeline(rec.rows, outcome.policy.labels, focus)}")
    outcome.result  # noqa: B018 - build (and cache) the run result before the run is unwound
    outcome.discard()
    return text, outcome


def cmd_explore(args: argparse.Namespace) -> int:
    result, text = run_explore(args)
    print(json.dumps(result, indent=2) if args.json else text)
    return 1 if args.check and result["violation"] is not None else 0


# --------------------------------------------------------------------------- replay
def cmd_replay(args: argparse.Namespace) -> int:
    try:
        cex = Counterexample.load(args.file)
    except OSError as e:
        raise ExploreUserError(f"{args.file}: {e.strerror}") from None
    except ValueError as e:
        raise ExploreUserError(f"{args.file}: {e}") from None
    text, outcome = describe(cex)
    found = outcome.violations([cex.property])
    same = bool(found) and found[0][1].kind == cex.kind and outcome.digest == cex.digest
    if args.json:
        result = dict(outcome.result)
        result["replay"] = {"file": args.file, "reproduced": same, "choices": cex.choices,
                            "expected": {"kind": cex.kind, "digest": cex.digest}}
        print(json.dumps(result, indent=2))
    else:
        print(f"replay {cex.scenario} under {cex.design}, seed {cex.seed}, "
              f"{len(cex.choices)} choices\n{text}\n"
              + ("reproduced: same finding kind and digest" if same else
                 f"NOT reproduced: expected {cex.kind} with digest {cex.digest}, got "
                 f"{found[0][1].kind if found else 'no finding'} with digest {outcome.digest}"))
    if not same:
        print(f"reclaimlab replay: {args.file} did not reproduce its finding", file=sys.stderr)
    return 1 if args.check and (found or not same) else 0


# --------------------------------------------------------------------------- parsers
def register(subparsers: Any) -> None:
    """Add ``explore`` and ``replay`` to the ``reclaimlab`` parser."""
    fmt = argparse.RawDescriptionHelpFormatter
    p = subparsers.add_parser(
        "explore", help="systematic exploration of schedules", formatter_class=fmt,
        epilog="examples:\n  reclaimlab explore mini-overlay --design sync\n"
               "  reclaimlab explore mini-overlay --design inodegc --strategy dfs "
               "--preemptions 2 --json\n  reclaimlab explore toy:abba --strategy pct "
               "--property deadlock")
    p.add_argument("scenario", metavar="SCENARIO",
                   help="a built-in name, a TOML file, or a toy model (" + ", ".join(TOYS) + ")")
    p.add_argument("--design", choices=DESIGNS, help="eviction design")
    p.add_argument("--strategy", choices=STRATEGIES, default="dfs")
    p.add_argument("--budget", type=int, default=10_000, metavar="N",
                   help="at most N schedules (default 10000)")
    p.add_argument("--seed", type=int, help="scenario seed, also seeds random/pct")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a scenario key by dotted path")
    p.add_argument("--property", metavar="P1,P2",
                   help="violations to look for (default: every detector finding but oom): "
                        "deadlock, knot, hung_task, lockdep, nofail, invariant, leak, oom")
    p.add_argument("--max-depth", type=int, metavar="N",
                   help="dfs: branch at most at the first N choice points (default: the "
                        "scenario's [explore] max_depth, 50)")
    p.add_argument("--preemptions", type=int, metavar="N",
                   help="dfs: at most N deviations from the default schedule (default: the "
                        "scenario's [explore] preemptions, 2)")
    p.add_argument("--pct-depth", type=int, default=3, metavar="D",
                   help="pct: bug depth, D-1 priority change points (default 3)")
    p.add_argument("--timed", action="store_true",
                   help="keep timed events in time order (choose only among same-instant tasks)")
    p.add_argument("--window", type=int, metavar="NS",
                   help="abstract time: choose only among timed events due within NS ns of "
                        "the earliest (default: any pending event)")
    p.add_argument("--start", type=int, metavar="NS",
                   help="no choice before virtual time NS: the run's setup takes the default "
                        "schedule (default: the scenario's [explore] start_ms, 0)")
    fork = p.add_mutually_exclusive_group()
    fork.add_argument("--fork", dest="fork", action="store_true", default=None,
                      help="dfs: run schedules in forked processes that share the prefix up to "
                           "their branch point (default for scenarios, whose runs cost much "
                           "more than a fork)")
    fork.add_argument("--no-fork", dest="fork", action="store_false",
                      help="dfs: re-execute every schedule from the start (default for toys)")
    p.add_argument("--no-symmetry", action="store_true",
                   help="dfs: try every ready task, also among identical ones (idle workers)")
    p.add_argument("--no-state-hashing", action="store_true",
                   help="dfs: never cut a schedule at an already explored state")
    p.add_argument("--shrink-runs", type=int, default=300, metavar="N",
                   help="at most N runs to shrink a counterexample (default 300)")
    p.add_argument("--out", metavar="FILE",
                   help="where to save a counterexample (default SCENARIO-DESIGN.cex.json)")
    p.add_argument("--json", action="store_true", help="print the exploration result as JSON")
    p.add_argument("--check", action="store_true", help="exit 1 if a violation was found")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=_guard(cmd_explore))

    p = subparsers.add_parser("replay", help="re-run a saved counterexample schedule",
                              formatter_class=fmt,
                              epilog="example:\n  reclaimlab replay mini-overlay-sync.cex.json")
    p.add_argument("file", metavar="FILE", help="a counterexample saved by explore")
    p.add_argument("--json", action="store_true", help="print the run result as JSON")
    p.add_argument("--check", action="store_true",
                   help="exit 1 if the replay shows a violation or does not reproduce")
    p.set_defaults(func=_guard(cmd_replay))


def _guard(handler: Any) -> Any:
    """Turn this package's user errors into the main CLI's (exit 2, one paragraph)."""
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except (ExploreUserError, ScenarioError) as e:
            print(f"reclaimlab {args.command}: {e}", file=sys.stderr)
            return 2
    return run


def main(argv: Sequence[str] | None = None) -> int:
    """``explore``/``replay`` without the rest of the CLI (for tests and scripts)."""
    parser = argparse.ArgumentParser(prog="reclaimlab")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    register(sub)
    args = parser.parse_args(argv)
    return args.func(args)
