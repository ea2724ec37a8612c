"""Small models written directly on the runtime, for the explorer's own tests."""

from __future__ import annotations

import pytest

from reclaimlab.explore import ModelTarget
from reclaimlab.sim import Run, Simulation


def one_step(n: int):
    """A task that computes once and exits."""
    yield Run(1000 * n)


def racers(k: int):
    """``k`` tasks, all ready at time 0, each computing once on 1 CPU and exiting."""
    def build(sim: Simulation) -> None:
        for i in range(k):
            sim.spawn(one_step(i + 1), f"t{i}")
    return build


@pytest.fixture
def three_racers() -> ModelTarget:
    """Three tasks ready at once: 3! orders, nothing else nondeterministic."""
    return ModelTarget("racers", racers(3))
