"""``dfs`` with fork(2) as the snapshot of a running simulation.

Plain ``dfs`` re-executes every schedule from the start: building the machine and replaying the
prefix up to the branch it tries. A task is a Python generator, which cannot be copied, but a
whole process can. ``ForkDFS`` runs the first schedule in the first process; at each branching
choice point it meets, it forks a *snapshot*: a child parked at that point, waiting on a pipe,
while the running process goes on with the first branch. When a run ends, its process resumes
its snapshots, the last parked first (the depth-first order): a resumed snapshot forks a child
for each of its remaining branches but the last, waiting for each in turn, and takes the last
branch itself — a run of its own, which parks snapshots in turn. So the machine is built once,
each schedule costs its suffix after its last branch point plus one fork, and the processes stay
shallow: the snapshots of a run are siblings, and a process is as many forks away from the first
as its schedule has deviations (a fork costs more the longer the chain of forks behind it).

Messages are pickled dicts, a pipe each way, ended by closing the pipe. A snapshot is told to go
on with the counts so far and the visited states added since it was parked (so that it cuts at
them too); a process reports to its parent, when its run and its snapshots are done, the counts,
the visited states added since its fork, and a violation if one was found (its property and
choice list, re-run by ``explore`` in the first process for the full outcome). A violation or a
spent budget stops everything: snapshots not resumed are told to quit by closing their pipe. Any
error in a child is sent up and re-raised in the parent; a child never unwinds into its parent's
code (``os._exit``).

The search order, bounds, state hashing and results are those of ``DFSStrategy``.
"""

from __future__ import annotations

import gc
import os
import pickle
import sys
import traceback
from dataclasses import dataclass
from typing import Any

from reclaimlab.sim import Simulation

from .choice import ABSTRACT, ChoicePolicy, TimeMode
from .shrink import normalize
from .strategies import DFSStrategy, Front, Node
from .target import ExplorerError, Outcome


class ForkError(ExplorerError):
    """A forked schedule raised; carries the child's traceback."""


@dataclass
class Snapshot:
    """A child parked at a branching choice point: its pid, the pipes to and from it, the
    length of the visited log when it was parked, and the node whose branches it holds."""

    pid: int
    go: int
    reply: int
    mark: int
    node: Node


def send(fd: int, message: dict[str, Any] | None) -> None:
    """Write ``message`` (None: nothing) to ``fd`` and close it."""
    if message is not None:
        view = memoryview(pickle.dumps(message))
        while view:
            view = view[os.write(fd, view):]
    os.close(fd)


def receive(fd: int) -> dict[str, Any] | None:
    """Read one message from ``fd`` up to its end and close it; None if nothing came."""
    chunks = []
    while True:
        data = os.read(fd, 1 << 16)
        if not data:
            break
        chunks.append(data)
    os.close(fd)
    return pickle.loads(b"".join(chunks)) if chunks else None


class ForkDFS(DFSStrategy):
    """Bounded exhaustive search, a forked process per deviating schedule (module docstring)."""

    def __init__(self, max_depth: int = 50, preemptions: int = 2,
                 time_mode: TimeMode = ABSTRACT, state_hashing: bool = True,
                 symmetry: bool = True) -> None:
        super().__init__(max_depth, preemptions, time_mode, state_hashing, symmetry)
        self.budget = 1 << 62
        self.properties: tuple[str, ...] = ()
        self.progress: Any = None
        self.in_child = False
        self.pipe = -1  # in a child: where its report goes
        self.log: list[tuple[int, Front]] = []  # visited entries, in the order they changed
        self.mark = 0  # the length of ``log`` at this process's fork: its report sends the rest
        self.snapshots: list[Snapshot] = []
        self.idle = False  # this process stopped without a branch to take: its run is no schedule
        self.stopped = False  # budget spent or violation found: nothing more to try
        self.found: tuple[str, list[int]] | None = None

    def next_policy(self) -> ChoicePolicy | None:
        if self.stopped:
            return None
        return super().next_policy()

    def remember(self, h: int, front: Front) -> None:
        self.visited[h] = front
        self.log.append((h, front))

    def choose(self, policy: ChoicePolicy, sim: Simulation, kind: str, options: list) -> int:
        node, used = self.node, self.used
        c = super().choose(policy, sim, kind, options)
        if node is None or self.node is None or len(node.branches) < 2:
            return c
        # a branching point, met for the first time: park its other branches in a snapshot
        if not self.park(node):
            return c
        self.path.pop()
        self.used = used
        rest = node.branches[1:]
        for c in rest[:-1]:
            if self.spent():
                break
            if self.fork_child():
                return self.take(node, c)
        else:
            if not self.spent():
                return self.take(node, rest[-1])
        self.idle = True
        policy.cut_here()

    def spent(self) -> bool:
        """Whether the search must stop before the next branch: a violation, or no budget."""
        if self.found is not None or self.schedules >= self.budget:
            self.stopped = True
        return self.stopped

    def fork(self) -> int:
        """fork(2); the child forgets its parent's snapshots and report pipe."""
        sys.stdout.flush()
        sys.stderr.flush()
        gc.freeze()  # collections skip what was inherited: no copy-on-write of it
        pid = os.fork()
        if pid == 0:
            for snap in self.snapshots:
                os.close(snap.go)
                os.close(snap.reply)
            self.snapshots = []
            if self.in_child:
                os.close(self.pipe)
            self.in_child = True
        return pid

    def park(self, node: Node) -> bool:
        """Fork a snapshot here. False in the running process; in the snapshot, once resumed:
        True (its counts and visited states brought up to date), or it quits."""
        go_r, go_w = os.pipe()
        reply_r, reply_w = os.pipe()
        pid = self.fork()
        if pid:
            os.close(go_r)
            os.close(reply_w)
            self.snapshots.append(Snapshot(pid, go_w, reply_r, len(self.log), node))
            return False
        os.close(go_w)
        os.close(reply_r)
        self.pipe = reply_w
        message = receive(go_r)
        if message is None:  # told to quit
            os._exit(0)
        self.merge(message)
        self.mark = len(self.log)
        return True

    def fork_child(self) -> bool:
        """Fork a child to take a branch: True in the child; False in the parent, once the
        child's report is merged."""
        r, w = os.pipe()
        pid = self.fork()
        if pid == 0:
            os.close(r)
            self.pipe = w
            self.mark = len(self.log)
            return True
        os.close(w)
        self.collect(pid, r)
        return False

    def collect(self, pid: int, fd: int) -> None:
        """Wait for a child's report on ``fd`` and merge it."""
        message = receive(fd)
        os.waitpid(pid, 0)
        self.merge(message if message is not None else {"error": "child died"})

    def merge(self, message: dict[str, Any]) -> None:
        """Take a message's counts, visited states and stop. The sender's visited table grew
        from this process's own, unchanged since (it was parked, or waiting for the sender):
        the sender's bounds for a state include this one's, so they replace them."""
        if "error" in message:
            raise ForkError(f"a forked schedule failed:\n{message['error']}")
        self.schedules = message["schedules"]
        self.states = message["states"]
        self.visited.update(message["visited"])
        self.log.extend(message["visited"].items())
        if message["found"] is not None and self.found is None:
            self.found = message["found"]
        self.stopped = self.stopped or message["stopped"]
        if self.progress is not None:
            self.progress()

    def message(self, since: int) -> dict[str, Any]:
        """Counts, visited states changed since log entry ``since``, violation, stop."""
        return {"schedules": self.schedules, "states": self.states,
                "visited": dict(self.log[since:]), "found": self.found,
                "stopped": self.stopped}

    def record(self, policy: ChoicePolicy, outcome: Outcome) -> None:
        if not self.idle:  # this process ran a schedule to its end (or to a cut)
            self.schedules += 1
            found = outcome.violations(self.properties)
            if found and self.found is None:
                self.found = (found[0][0], normalize(policy.choices))
            if self.progress is not None:
                self.progress()
        self.resume()
        if self.in_child:
            self.report(self.message(self.mark))
        if not self.stopped:
            self.root.exhausted = True
        gc.unfreeze()

    def resume(self) -> None:
        """Resume the snapshots, the last parked first, each to its end; once the search must
        stop (or fails), tell the rest to quit."""
        try:
            while self.snapshots and not self.spent():
                snap = self.snapshots.pop()
                send(snap.go, self.message(snap.mark))
                self.collect(snap.pid, snap.reply)
        finally:
            while self.snapshots:
                snap = self.snapshots.pop()
                send(snap.go, None)
                os.close(snap.reply)
                os.waitpid(snap.pid, 0)

    def queue(self) -> int:
        """Untried branches this process holds in its snapshots."""
        return sum(len(snap.node.branches) - 1 for snap in self.snapshots)

    def report(self, message: dict[str, Any]) -> None:
        """Send ``message`` to the parent and end this process."""
        send(self.pipe, message)
        os._exit(0)

    def fail(self) -> None:
        self.report({"error": traceback.format_exc()})
