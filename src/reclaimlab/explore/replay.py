"""Counterexample files, replay, and the interleaving as a per-task timeline.

A counterexample is a small JSON object::

    {"format": "reclaimlab-counterexample/1", "scenario": "mini-overlay", "design": "sync",
     "seed": 1, "overrides": [], "abstract_time": true, "window_ns": null, "start_ns": 0,
     "property": "nofail",
     "choices": [0, 0, 1], "expected": {"kind": "nofail_in_reclaim", "digest": "…"}}

``replay`` rebuilds the target from (scenario, design, seed, overrides), runs it under the choice
list (then defaults), stopping at the first finding of the property as the explorer did, and
so reproduces the same finding and digest.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .choice import ChoicePolicy, TimeMode
from .target import Outcome, Target, run_schedule, stop_kinds
from .toys import TOYS, toy_target

FORMAT = "reclaimlab-counterexample/1"


def make_target(scenario: str, design: str | None = None, seed: int | None = None,
                overrides: Sequence[str] = ()) -> Target:
    """The run factory for a ``toy:`` model or a scenario (built-in name or TOML path)."""
    if scenario in TOYS:
        return toy_target(scenario, seed or 0)
    from .scenario import ScenarioTarget

    return ScenarioTarget(scenario, design, seed, list(overrides))


@dataclass
class Counterexample:
    scenario: str
    design: str
    seed: int
    choices: list[int]
    property: str
    kind: str
    digest: str
    overrides: list[str] = field(default_factory=list)
    abstract_time: bool = True
    window_ns: int | None = None
    start_ns: int = 0

    @property
    def time_mode(self) -> TimeMode:
        return TimeMode(self.abstract_time, self.window_ns, self.start_ns)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        kind, digest = d.pop("kind"), d.pop("digest")
        return {"format": FORMAT, **d, "expected": {"kind": kind, "digest": digest}}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Counterexample":
        if d.get("format") != FORMAT:
            raise ValueError(f"not a reclaimlab counterexample (format {d.get('format')!r}, "
                             f"expected {FORMAT!r})")
        try:
            return cls(d["scenario"], d["design"], int(d["seed"]),
                       [int(c) for c in d["choices"]], d["property"], d["expected"]["kind"],
                       d["expected"]["digest"], list(d.get("overrides", [])),
                       bool(d.get("abstract_time", True)), d.get("window_ns"),
                       int(d.get("start_ns", 0)))
        except (KeyError, TypeError) as e:
            raise ValueError(f"malformed counterexample: missing or bad field {e}") from None

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "Counterexample":
        try:
            return cls.from_json(json.loads(Path(path).read_text()))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not JSON ({e})") from None


def replay(cex: Counterexample, observers: Sequence[Any] = (),
           target: Target | None = None) -> Outcome:
    """Re-run the counterexample's schedule exactly."""
    if target is None:
        target = make_target(cex.scenario, cex.design, cex.seed, cex.overrides)
    policy = ChoicePolicy(prefix=cex.choices, time_mode=cex.time_mode)
    return run_schedule(target, policy, stop_kinds((cex.property,)), observers)


# --------------------------------------------------------------------------- timeline
_SHOWN = ("spawn", "lock_acquired", "lock_release", "block", "wake", "exit", "work_start",
          "work_end")


class TimelineRecorder:
    """Observer keeping (time, task, what happened) for the events a reader follows."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, str, str]] = []

    def event(self, kind: str, task: Any, obj: Any, info: Any) -> None:
        if kind not in _SHOWN or task is None:
            return
        sim = task.sim
        if kind == "lock_acquired":
            what = f"lock {getattr(obj, 'name', obj)}"
        elif kind == "lock_release":
            what = f"unlock {getattr(obj, 'name', obj)}"
        elif kind == "block":
            what = f"waits on {obj!r}"
        elif kind == "wake":
            what = "woken" if info is not None else "timed out"
        elif kind in ("work_start", "work_end"):
            what = f"{kind} {getattr(getattr(obj, 'func', None), '__name__', obj)}"
        else:
            what = kind
        self.rows.append((sim.now, f"{task.comm}:{task.pid}", what))


def render_timeline(rows: list[tuple[int, str, str]], choices: list[tuple[float, str, str]],
                    focus: Sequence[str] = (), width: int = 26, limit: int = 200,
                    max_tasks: int = 6) -> str:
    """One column per task, one line per event, time on the left; marks the forced choices.

    Shows the last ``limit`` events of at most ``max_tasks`` tasks: those in ``focus`` (the
    tasks a finding names), then the busiest.
    """
    shown = rows[-limit:]
    count: dict[str, int] = {}
    for _, task, _ in shown:
        count[task] = count.get(task, 0) + 1
    tasks = [t for t in dict.fromkeys(focus) if t in count]
    tasks += sorted((t for t in count if t not in tasks), key=lambda t: -count[t])
    tasks = tasks[:max_tasks]
    dropped = len(rows) - sum(1 for _, task, _ in shown if task in tasks)
    lines = ["time(us)    " + "".join(t[:width - 1].ljust(width) for t in tasks)]
    if dropped:
        lines.append(f"... {dropped} events of earlier times or other tasks not shown")
    forced = [c for c in choices if c[0] >= (shown[0][0] if shown else 0)]
    for t, task, what in shown:
        while forced and forced[0][0] <= t:
            when, chosen, kind = forced.pop(0)
            lines.append(f"{when / 1000:>10.1f}  >> choice: {chosen} runs next ({kind})")
        if task in tasks:
            col = tasks.index(task)
            lines.append(f"{t / 1000:>10.1f}  " + " " * (width * col) + what[:width - 1])
    return "\n".join(lines)
