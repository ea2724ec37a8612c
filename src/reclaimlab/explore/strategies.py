"""Exploration strategies and the loop that drives them.

A strategy hands out one ``ChoicePolicy`` per schedule (``next_policy``) and learns from each
outcome (``record``); ``explore`` runs schedules until a selected property is violated, the
strategy has nothing left (``complete``) or the budget of schedules is spent.

- ``random``: every choice uniformly at random (``random.Random(seed)``, never ``sim.rng``).
- ``pct``: probabilistic concurrency testing (Burckhardt et al., ASPLOS 2010): random distinct
  priorities per task, the highest-priority ready task wins, and at ``depth - 1`` change points
  drawn over the expected number of choice points the winner's priority drops below all others.
  A bug of depth d is found with probability at least 1/(n k^(d-1)) per schedule. Timed events
  keep their time order except at a change point, where the favourite's event not due first
  fires (so time keeps advancing).
- ``dfs``: bounded exhaustive search over the tree of choices, in the style of Hypothesis'
  ``choicetree.py``: each schedule replays the first untried branch, exhausted subtrees are
  marked dead, the space is complete when the root is. Bounds as in CHESS (Musuvathi & Qadeer,
  PLDI 2007): at most ``max_depth`` branching choice points per schedule (later ones take the
  default), at most ``preemptions`` choices that deviate from the default (this is the delay
  bound of Emmi et al., POPL 2011, which is what a deviation from a deterministic scheduler
  is). At each new choice point, in the tail past the bounds too, the canonical state
  (``state.canonical_state``) is hashed; a state already explored with at least the same
  remaining bounds cuts the schedule there (the run ends at once, ``choice.Cut``), which also
  merges interleavings of independent steps that commute to the same state — the reduction a
  sleep set would give, without needing to know which steps are independent. Once either bound
  is spent the rest is the default schedule, so all such states count as bounds (0, 0); a state
  keeps every non-dominated pair of bounds it was explored with. A state the run itself
  recorded since its last deviation never cuts it: its default continuation is that very run.
  Among identical-looking ready tasks (idle workers of one pool) only one is tried (symmetry).
  ``fork.ForkDFS`` is the same search with fork(2) sharing each schedule's prefix.
"""

from __future__ import annotations

import random
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence, TextIO

from reclaimlab.sim import Simulation

from .choice import (
    ABSTRACT, TASK, TIMER, ChoicePolicy, TimeMode, option_label, option_owner,
)
from .state import StateHasher
from .target import (
    DEFAULT_PROPERTIES, ExplorerError, Outcome, Target, run_schedule, stop_kinds,
)

STRATEGIES = ("random", "pct", "dfs")


class NondeterminismError(ExplorerError):
    """A replayed prefix met a different choice point: the model is not deterministic."""


# --------------------------------------------------------------------------- random
class RandomStrategy:
    """Uniformly random choices."""

    name = "random"
    keeps_states = False

    def __init__(self, seed: int = 0, time_mode: TimeMode = ABSTRACT) -> None:
        self.rng = random.Random(seed)
        self.time_mode = time_mode
        self.states = 0
        self.schedules = 0

    def next_policy(self) -> ChoicePolicy:
        return ChoicePolicy(chooser=self.choose, time_mode=self.time_mode)

    def choose(self, policy: ChoicePolicy, sim: Simulation, kind: str, options: list) -> int:
        self.states += 1
        return self.rng.randrange(len(options))

    def record(self, policy: ChoicePolicy, outcome: Outcome) -> None:
        self.schedules += 1

    def queue(self) -> int:
        return 0


# --------------------------------------------------------------------------- pct
class PCTStrategy:
    """Priority change points; ``depth`` is the bug depth targeted (d in the paper)."""

    name = "pct"
    keeps_states = False

    def __init__(self, seed: int = 0, depth: int = 3, time_mode: TimeMode = ABSTRACT) -> None:
        self.rng = random.Random(seed)
        self.depth = depth
        self.time_mode = time_mode
        self.expected_steps = 0
        self.states = 0
        self.schedules = 0

    def next_policy(self) -> ChoicePolicy:
        k = max(self.expected_steps, self.depth)
        self.change_points = sorted(self.rng.sample(range(1, k + 1), self.depth - 1))
        self.priority: dict[Any, float] = {}
        self.step = 0
        return ChoicePolicy(chooser=self.choose, time_mode=self.time_mode)

    def _key(self, option: Any) -> Any:
        owner = option_owner(option)
        return owner.pid if owner is not None else option_label(option)

    def choose(self, policy: ChoicePolicy, sim: Simulation, kind: str, options: list) -> int:
        self.states += 1
        self.step += 1
        change = self.step in self.change_points
        if kind == TIMER and not change:
            # Timed events fire in time order except at change points: always letting the
            # favourite's timer overtake would starve time itself (a task polling with a sleep
            # would be woken again and again at the same instant).
            return 0
        keys = [self._key(o) for o in options]
        prio = self.priority
        for k in keys:
            if k not in prio:  # a newcomer gets a random priority above every changed one
                prio[k] = self.depth + self.rng.random()
        if kind == TIMER:  # a change point: the favourite among the events not due first
            return max(range(1, len(keys)), key=lambda i: prio[keys[i]])
        best = max(range(len(keys)), key=lambda i: prio[keys[i]])
        if change:
            prio[keys[best]] = self.depth - 1 - self.change_points.index(self.step)
            best = max(range(len(keys)), key=lambda i: prio[keys[i]])
        return best

    def record(self, policy: ChoicePolicy, outcome: Outcome) -> None:
        self.schedules += 1
        self.expected_steps = max(self.expected_steps, len(policy.choices))

    def queue(self) -> int:
        return 0


# --------------------------------------------------------------------------- dfs
#: the (preemptions, depth) bounds a state was explored with, none dominating another
Front = tuple[tuple[int, int], ...]


def remaining(left_p: int, left_d: int) -> tuple[int, int]:
    """The bounds left at a choice point, (0, 0) once either is spent: from there on the run
    takes the default whatever the other bound says, so what it can reach is the same."""
    return (left_p, left_d) if left_p > 0 and left_d > 0 else (0, 0)


def covers(front: Front, bounds: tuple[int, int]) -> bool:
    """Whether a state explored with ``front`` has been explored with at least ``bounds``:
    the schedules a state can reach only grow with each bound."""
    return any(p >= bounds[0] and d >= bounds[1] for p, d in front)


def with_bounds(front: Front, bounds: tuple[int, int]) -> Front:
    """``front`` and ``bounds``, without the pairs ``bounds`` covers. A pair-wise maximum
    would claim bounds no visit had: (1 preemption, 10 deep) and (2, 5) are not (2, 10)."""
    return (bounds, *(b for b in front if not covers((bounds,), b)))


class Node:
    """A choice point of the tree: its arity, the branches to try, the children tried."""

    __slots__ = ("arity", "branches", "children", "exhausted")

    def __init__(self) -> None:
        self.arity = 0
        self.branches: list[int] = []
        self.children: dict[int, Node] = {}
        self.exhausted = False


class DFSStrategy:
    """Bounded exhaustive search with state hashing (see the module docstring).

    ``symmetry``: among tasks ready at the same instant, only the first of each group of
    identical-looking ones (``state.task_signature``: same code position, plain locals, waits
    and locks — idle workers of one pool) is tried; running another member of the group would
    be the same step by a task with another name.
    """

    name = "dfs"
    keeps_states = True

    def __init__(self, max_depth: int = 50, preemptions: int = 2,
                 time_mode: TimeMode = ABSTRACT, state_hashing: bool = True,
                 symmetry: bool = True) -> None:
        self.max_depth = max_depth
        self.preemptions = preemptions
        self.time_mode = time_mode
        self.state_hashing = state_hashing
        self.symmetry = symmetry
        self.root = Node()
        self.visited: dict[int, Front] = {}  # state -> the bounds it was explored with
        self.states = 0
        self.schedules = 0
        self.path: list[tuple[Node, int]] = []

    @property
    def distinct_states(self) -> int:
        return len(self.visited)

    @property
    def complete(self) -> bool:
        return self.root.exhausted

    def next_policy(self) -> ChoicePolicy | None:
        if self.root.exhausted:
            return None
        self.path = []
        self.node: Node | None = self.root
        self.used = 0
        self.hasher = StateHasher()
        self.mine: set[int] = set()  # states this run recorded since its last deviation
        return ChoicePolicy(chooser=self.choose, time_mode=self.time_mode)

    def _seen(self, sim: Simulation, left_p: int, left_d: int) -> bool:
        """Record the state; True if it was already explored with at least these bounds."""
        h = self.hasher(sim)
        if h in self.mine:
            # This run recorded the state since it last deviated: the default continuation
            # from there is this very run, unfinished, so it cuts nothing. (Equal states at two
            # points of one run that goes on mean the state misses what changed in between: a
            # loop's progress kept in an iterator, or a run stopped at its ``until`` asking the
            # same choice again.)
            return False
        bounds = remaining(left_p, left_d)
        front = self.visited.get(h, ())
        if covers(front, bounds):
            return True
        self.mine.add(h)
        self.remember(h, with_bounds(front, bounds))
        return False

    def remember(self, h: int, front: Front) -> None:
        self.visited[h] = front

    def branches(self, kind: str, options: list) -> list[int]:
        """The option indices worth trying: all, or one per group of identical tasks."""
        if not self.symmetry or kind != TASK:
            return list(range(len(options)))
        seen: dict[int, None] = {}
        out = []
        for i, task in enumerate(options):
            sig = self.hasher.task_hash(task)
            if sig not in seen:
                seen[sig] = None
                out.append(i)
        return out

    def choose(self, policy: ChoicePolicy, sim: Simulation, kind: str, options: list) -> int:
        node = self.node
        depth = len(self.path)
        left_p = self.preemptions - self.used
        left_d = self.max_depth - depth
        if node is None or left_d <= 0 or left_p <= 0:
            # the tail: one branch only; still cut it where it joins a known state
            self.states += 1
            if node is not None and node.arity == 0:
                node.arity = len(options)
                node.branches = [0]
            if self.state_hashing and self._seen(sim, left_p, left_d):
                policy.cut_here()
            self.node = None
            return 0
        if node.arity == 0:
            node.arity = len(options)
            node.branches = self.branches(kind, options)
            self.states += 1
            if self.state_hashing and self._seen(sim, left_p, left_d):
                node.exhausted = True
                policy.cut_here()
        elif node.arity != len(options):
            raise NondeterminismError(
                f"choice point {depth} had {node.arity} options, now {len(options)}")
        for c in node.branches:
            child = node.children.get(c)
            if child is None or not child.exhausted:
                break
        else:  # cannot happen: a node with every branch exhausted is exhausted itself
            raise AssertionError("dfs walked into an exhausted subtree")
        return self.take(node, c)

    def take(self, node: Node, c: int) -> int:
        """Follow branch ``c`` of ``node``."""
        child = node.children.get(c)
        if child is None:
            child = node.children[c] = Node()
        self.path.append((node, c))
        if c:
            self.used += 1
            # DFS tried branch 0 first: the default continuation of every state this run met
            # so far has been explored by an earlier run
            self.mine.clear()
        self.node = child
        return c

    def record(self, policy: ChoicePolicy, outcome: Outcome) -> None:
        """Count the schedule; mark the end of its branch dead and propagate up the path."""
        self.schedules += 1
        self.close_branch()

    def close_branch(self) -> None:
        leaf = self.node if self.node is not None else (self.path[-1][0].children[
            self.path[-1][1]] if self.path else self.root)
        leaf.exhausted = True
        for node, _ in reversed(self.path):
            if all(node.children.get(c) is not None and node.children[c].exhausted
                   for c in node.branches):
                node.exhausted = True
            else:
                break

    def queue(self) -> int:
        """Untried branches along the current path (TLC's "states left on queue")."""
        return sum(len(node.branches) - 1 - node.branches.index(c) for node, c in self.path)


def make_strategy(name: str, seed: int = 0, max_depth: int = 50, preemptions: int = 2,
                  pct_depth: int = 3, time_mode: TimeMode = ABSTRACT, fork: bool = False,
                  state_hashing: bool = True, symmetry: bool = True) -> Any:
    """A strategy by name; ``fork`` makes ``dfs`` share prefixes through fork(2)."""
    if name == "random":
        return RandomStrategy(seed, time_mode)
    if name == "pct":
        return PCTStrategy(seed, pct_depth, time_mode)
    if name == "dfs":
        if fork:
            from .fork import ForkDFS

            return ForkDFS(max_depth, preemptions, time_mode, state_hashing, symmetry)
        return DFSStrategy(max_depth, preemptions, time_mode, state_hashing, symmetry)
    raise ValueError(f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)}")


# --------------------------------------------------------------------------- the loop
@dataclass
class Found:
    """The first violating schedule: its property, finding and recorded choices."""

    prop: str
    outcome: Outcome

    @property
    def finding(self) -> Any:
        return self.outcome.violations([self.prop])[0][1]


@dataclass
class ExploreStats:
    schedules: int = 0
    states: int = 0
    distinct_states: int = 0
    queue: int = 0
    wall_s: float = 0.0
    complete: bool = False
    found: Found | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Progress:
    """TLC-style progress lines on a stream, at most one per ``interval`` seconds."""

    def __init__(self, stream: TextIO | None = sys.stderr, interval: float = 1.0) -> None:
        self.stream = stream
        self.interval = interval
        self.start = time.perf_counter()
        self.last = self.start

    def line(self, stats: ExploreStats, final: bool = False) -> None:
        now = time.perf_counter()
        if self.stream is None or (not final and now - self.last < self.interval):
            return
        self.last = now
        minutes = max(now - self.start, 1e-9) / 60
        print(f"Progress: {stats.schedules:,} schedules ({stats.schedules / minutes:,.0f} "
              f"schedules/min), {stats.states:,} states generated "
              f"({stats.states / minutes:,.0f} s/min), {stats.distinct_states:,} distinct "
              f"states found, {stats.queue:,} states left on queue.", file=self.stream,
              flush=True)


def explore(target: Target, strategy: Any, budget: int = 10_000,
            properties: Sequence[str] = DEFAULT_PROPERTIES,
            progress: Progress | None = None,
            on_schedule: Callable[[Outcome], None] | None = None) -> ExploreStats:
    """Run schedules of ``target`` chosen by ``strategy`` until a violation, completion or
    ``budget`` schedules; the first violation is in ``stats.found`` (not yet shrunk).

    A strategy that runs schedules in forked processes (``fork.ForkDFS``) reports a violation
    found there as ``strategy.found`` (property, choices); it is re-run here for its outcome.
    """
    stats = ExploreStats()
    strategy.budget = budget
    strategy.properties = tuple(properties)
    strategy.progress = (lambda: progress.line(_snapshot(stats, strategy))) if progress else None
    stop_on = stop_kinds(properties)
    start = time.perf_counter()
    try:
        while strategy.schedules < budget:
            policy = strategy.next_policy()
            if policy is None:
                break
            outcome = run_schedule(target, policy, stop_on)
            strategy.record(policy, outcome)
            if on_schedule is not None:
                on_schedule(outcome)
            violations = outcome.violations(properties)
            found = getattr(strategy, "found", None)
            if not violations and found is not None:
                outcome.discard()
                outcome = run_schedule(target, ChoicePolicy(
                    prefix=found[1], time_mode=strategy.time_mode), stop_kinds((found[0],)))
                violations = outcome.violations([found[0]])
            if violations:
                stats.found = Found(violations[0][0], outcome)
                break
            outcome.discard()
            if progress is not None:
                progress.line(_snapshot(stats, strategy))
    except BaseException:
        if getattr(strategy, "in_child", False):
            strategy.fail()  # never returns: a forked run must not unwind into its parent's code
        raise
    _snapshot(stats, strategy)
    stats.complete = stats.found is None and getattr(strategy, "complete", False)
    stats.wall_s = time.perf_counter() - start
    if progress is not None:
        progress.line(stats, final=True)
    return stats


def _snapshot(stats: ExploreStats, strategy: Any) -> ExploreStats:
    stats.schedules = strategy.schedules
    stats.states = strategy.states
    stats.distinct_states = getattr(strategy, "distinct_states", 0)
    stats.queue = strategy.queue()
    return stats
