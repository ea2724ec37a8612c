"""One ``choose()`` for every nondeterministic decision of a run.

A run of the simulator is deterministic given its seed, except where the runtime asks its policy
(docs/internals.md §1): which of several tasks ready at the same instant runs next
(``policy.choose``), and, in abstract-time mode, which pending timed event — a sleep's end, a CPU
burst's end, a device completion, a delayed work's timer, a wait's timeout — fires next
(``policy.choose_timer``). ``ChoicePolicy`` implements both hooks through one ``pick`` and records
every answer, so a run is fully described by (scenario, design, seed, overrides, time mode,
choice list) and replaying the list reproduces it exactly. Index 0 is always the runtime's
default (FIFO for tasks, earliest for timers): a choice list is a list of deviations from the
plain run, and a list of zeros, or an empty list, is the plain run itself.

After the given ``prefix`` is used up, choices come from ``chooser`` (the strategy) or default to
0. A prefix entry that is out of range (the run diverged, as happens while shrinking) also
defaults to 0; the recorded list holds what was actually chosen.

In abstract time the runtime never lets a sleeping or computing task continue without going
through the timer choice (docs/internals.md §1), so device and timer latencies cannot hide a
reordering. Before ``TimeMode.start`` nothing is a choice: ``AbstractTime`` then skips the
runtime's list of live timers altogether.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, NoReturn, Sequence

from reclaimlab.sim import Simulation, Task

TASK = "task"
TIMER = "timer"

#: ``chooser(policy, sim, kind, options) -> index``: the strategy's decision after the prefix.
Chooser = Callable[["ChoicePolicy", Simulation, str, list], int]


def option_label(option: Any) -> str:
    """Who a choice option stands for: a task, or a timed event (a heap entry)."""
    if isinstance(option, Task):
        return f"{option.comm}:{option.pid}"
    target = option[2]
    if isinstance(target, Task):
        return f"{target.comm}:{target.pid}"
    fn = target.fn
    return getattr(fn, "__qualname__", repr(fn))


def option_owner(option: Any) -> Task | None:
    """The task an option runs (a ready task, a task's timed wake-up), None for a callback."""
    if isinstance(option, Task):
        return option
    target = option[2]
    return target if isinstance(target, Task) else None


class Cut(Exception):
    """Raised by ``ChoicePolicy.cut_here`` out of the runtime's loop: the run ends there."""


@dataclass(frozen=True)
class TimeMode:
    """How timed events are ordered: in time order (``abstract=False``: only the order of tasks
    ready at the same instant is chosen), or chosen among the pending ones due within
    ``window`` ns of the earliest (``None``: any of them — pure abstract time). Before virtual
    time ``start`` nothing is chosen: the run takes the default, without choice points, so an
    exploration can concentrate on the phase that matters (after a setup phase)."""

    abstract: bool = True
    window: int | None = None
    start: int = 0


ABSTRACT = TimeMode()
TIMED = TimeMode(abstract=False)


class ChoicePolicy:
    """The runtime policy of one exploration run: replays ``prefix``, then asks ``chooser``.

    ``choices[i]`` is the index chosen at the i-th choice point among ``arities[i]`` options
    (``kinds[i]`` is ``"task"`` or ``"timer"``). ``time_mode`` says whether and how timed events
    are chosen. ``ignore_timer(timer)`` names callback timers that are not part of the model (a
    detector's watchdog): they fire in time order and never make a choice point. ``cut`` tells
    whether the explorer ended the run early (``cut_here``): its result is partial.
    """

    def __init__(self, prefix: Sequence[int] = (), chooser: Chooser | None = None,
                 time_mode: TimeMode = ABSTRACT,
                 ignore_timer: Callable[[Any], bool] | None = None) -> None:
        self.prefix = list(prefix)
        self.chooser = chooser
        self.time_mode = time_mode
        self.ignore_timer = ignore_timer
        self.choices: list[int] = []
        self.arities: list[int] = []
        self.kinds: list[str] = []
        self.labels: list[tuple[float, str, str]] = []  # (time, chosen, kind) of non-default picks
        self.cut = False
        self.sim: Simulation | None = None
        if not time_mode.abstract:
            self.choose_timer = None  # the runtime looks the hook up with getattr

    def attach(self, sim: Simulation) -> None:
        """Install the policy on ``sim`` (before ``sim.run``)."""
        self.sim = sim
        sim.policy = self
        if self.time_mode.abstract:
            AbstractTime(sim, self.time_mode.start)

    def cut_here(self) -> NoReturn:
        """End the run here: the explorer has seen the rest. Raises ``Cut``, which the run
        factory catches, so that nothing runs past the choice point — no step, no shutdown
        phase, no end-of-run check (which would misreport an unfinished machine): the run's
        findings are those logged so far."""
        self.cut = True
        raise Cut

    # ---------------------------------------------------------------- runtime hooks
    def choose(self, sim: Simulation, candidates: list[Task]) -> int:
        """``policy.choose``: which ready task runs next."""
        return self.pick(sim, TASK, candidates)

    def choose_timer(self, sim: Simulation, live: list[tuple]) -> int:
        """``policy.choose_timer``: which pending timed event fires next."""
        if sim.now < self.time_mode.start:
            return 0  # no choice point yet (``pick`` would answer 0 too)
        ignore = self.ignore_timer
        if ignore is not None and live[0][4] is None and ignore(live[0][2]):
            return 0  # a watchdog due first fires on time
        window = self.time_mode.window
        latest = live[0][0] + window if window is not None else None
        index = [i for i, e in enumerate(live)
                 if (latest is None or e[0] <= latest)
                 and (ignore is None or e[4] is not None or not ignore(e[2]))]
        if len(index) < 2:
            return 0
        return index[self.pick(sim, TIMER, [live[i] for i in index])]

    # ---------------------------------------------------------------- the one choose()
    def pick(self, sim: Simulation, kind: str, options: list) -> int:
        """Every nondeterministic decision: the prefix's entry, else the strategy's, else 0."""
        if sim.now < self.time_mode.start:
            return 0
        n = len(options)
        i = len(self.choices)
        if i < len(self.prefix):
            c = self.prefix[i]
            if not 0 <= c < n:
                c = 0
        elif self.chooser is not None:
            c = self.chooser(self, sim, kind, options)
        else:
            c = 0
        self.choices.append(c)
        self.arities.append(n)
        self.kinds.append(kind)
        if c:
            self.labels.append((sim.now, option_label(options[c]), kind))
        return c


class AbstractTime:
    """The simulation's ``_choose_timer`` gated on virtual time ``start``: before it the loop's
    timed events fire in time order and the policy is not asked (nor the live timers listed)."""

    def __init__(self, sim: Simulation, start: int = 0) -> None:
        self.sim = sim
        self.start = start
        self.base = sim._choose_timer
        sim._choose_timer = self

    def __call__(self, choose_timer: Callable) -> None:
        if self.sim.now >= self.start:
            self.base(choose_timer)
