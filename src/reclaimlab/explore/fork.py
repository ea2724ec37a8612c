"""``dfs`` with fork(2) as the snapshot of a running simulation.

Plain ``dfs`` re-executes every schedule from the start: building the machine and replaying the
prefix up to the branch it tries. A task is a Python generator, which cannot be copied, but a
whole process can: at each branching choice point ``ForkDFS`` forks one child per branch, in
order, and waits for each. The child answers the choice point with its branch and runs on; at the
next branching point it forks in turn. So the machine is built once, and each schedule costs only
its suffix after the last branch point plus one fork — the way a fork server snapshots a target.

A child reports to its parent through a pipe, when its subtree is done: the schedule and state
counts, the states it added to the visited table (so that later siblings cut at them too) and a
violation, if it found one (its property and choice list, re-run by ``explore`` in the first
process for the full outcome). A parent whose branches are all done has nothing left to run: it
cuts its own run and reports in turn. Any error in a child is sent up and re-raised in the
parent; a child never unwinds into its parent's code (``os._exit``).

The search order, bounds, state hashing and results are those of ``DFSStrategy``.
"""

from __future__ import annotations

import gc
import os
import pickle
import sys
import traceback
from typing import Any

from reclaimlab.sim import Simulation

from .choice import ABSTRACT, ChoicePolicy, TimeMode
from .shrink import normalize
from .strategies import DFSStrategy, Node
from .target import Outcome


class ForkError(RuntimeError):
    """A forked schedule raised; carries the child's traceback."""


class ForkDFS(DFSStrategy):
    """Bounded exhaustive search, one forked process per branch (see the module docstring)."""

    def __init__(self, max_depth: int = 50, preemptions: int = 2,
                 time_mode: TimeMode = ABSTRACT, state_hashing: bool = True,
                 symmetry: bool = True) -> None:
        super().__init__(max_depth, preemptions, time_mode, state_hashing, symmetry)
        self.budget = 1 << 62
        self.properties: tuple[str, ...] = ()
        self.progress: Any = None
        self.in_child = False
        self.pipe = -1
        self.forked = False  # this process handed its branches to children
        self.stopped = False  # budget spent or violation found: nothing more to try
        self.delta: dict[int, tuple[int, int]] = {}  # visited entries added since the fork
        self.found: tuple[str, list[int]] | None = None

    def next_policy(self) -> ChoicePolicy | None:
        if self.stopped:
            return None
        return super().next_policy()

    def remember(self, h: int, bounds: tuple[int, int]) -> None:
        self.visited[h] = bounds
        if self.in_child:
            self.delta[h] = bounds

    def choose(self, policy: ChoicePolicy, sim: Simulation, kind: str, options: list) -> int:
        node = self.node
        c = super().choose(policy, sim, kind, options)
        if policy.cut or self.node is None or node is None:
            return c
        # a branching point met for the first time: super() took branch 0; fork them all
        self.path.pop()
        for c in node.branches:
            if self.found is not None or self.schedules >= self.budget:
                self.stopped = True
                break
            child = node.children.setdefault(c, Node())
            if self.fork_branch():
                self.path.append((node, c))
                self.used += 1 if c else 0
                self.node = child
                return c
        self.node = node
        self.forked = True
        policy.cut_here(sim)
        return 0

    def fork_branch(self) -> bool:
        """Fork; True in the child, False in the parent once the child's report is merged."""
        sys.stdout.flush()
        sys.stderr.flush()
        r, w = os.pipe()
        gc.freeze()  # the child's collections skip what it inherits: no copy-on-write of it
        pid = os.fork()
        if pid == 0:
            os.close(r)
            self.in_child = True
            self.pipe = w
            self.delta = {}
            return True
        os.close(w)
        chunks = []
        while True:
            data = os.read(r, 1 << 16)
            if not data:
                break
            chunks.append(data)
        os.close(r)
        os.waitpid(pid, 0)
        gc.unfreeze()
        self.merge(pickle.loads(b"".join(chunks)) if chunks else {"error": "child died"})
        return False

    def merge(self, report: dict[str, Any]) -> None:
        if "error" in report:
            raise ForkError(f"a forked schedule failed:\n{report['error']}")
        self.schedules = report["schedules"]
        self.states = report["states"]
        for h, bounds in report["delta"].items():
            prev = self.visited.get(h)
            self.remember(h, bounds if prev is None else (max(prev[0], bounds[0]),
                                                          max(prev[1], bounds[1])))
        if report["found"] is not None:
            self.found = report["found"]
        if self.progress is not None:
            self.progress()

    def record(self, policy: ChoicePolicy, outcome: Outcome) -> None:
        if not self.forked:  # this process ran a schedule to its end (or to a cut)
            self.schedules += 1
            found = outcome.violations(self.properties)
            if found and self.found is None:
                self.found = (found[0][0], normalize(policy.choices))
            if self.progress is not None:
                self.progress()
        if self.in_child:
            self.report({"schedules": self.schedules, "states": self.states,
                         "delta": self.delta, "found": self.found})
        if self.found is not None:
            self.stopped = True
        elif not self.stopped:
            self.close_branch()
        self.forked = False

    def report(self, message: dict[str, Any]) -> None:
        """Send ``message`` to the parent and end this process."""
        data = pickle.dumps(message)
        view = memoryview(data)
        while view:
            view = view[os.write(self.pipe, view):]
        os.close(self.pipe)
        os._exit(0)

    def fail(self) -> None:
        self.report({"error": traceback.format_exc()})
