"""Shared fixtures for the mm tests: a simulated node and an event recorder."""

from __future__ import annotations

import sys

import pytest

from reclaimlab.mm.page_alloc import MemoryConfig, pglist_data
from reclaimlab.sim import Simulation

QUIET = {"run", "sleep", "block", "wake", "lock_acquired", "lock_release", "spawn", "exit",
         "queue_work", "work_start", "work_end"}


def kernel_stack(task) -> list[str]:
    """The task's modelled call chain, outermost first, keeping kernel ``__names``.

    (``Task.stack`` of the runtime drops every name starting with ``_``, which hides kernel
    functions such as ``__alloc_pages_slowpath``; reported to the runtime's owner.)"""
    from reclaimlab.sim import core
    if not task.gen.gi_running:
        names, g = [], task.gen
        while g is not None and hasattr(g, "gi_code"):
            names.append(g.gi_code.co_name)
            g = g.gi_yieldfrom
        return names
    names, f = [], sys._getframe(2)
    while f is not None and f.f_code is not core.Simulation.run.__code__:
        if f.f_code.co_filename not in (core.__file__, __file__):
            names.append(f.f_code.co_name)
        f = f.f_back
    return names[::-1]


class Recorder:
    """Keeps subsystem events with the task's stack at the time they were emitted."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object, object, object, list[str], int]] = []
        self.sim = None

    def event(self, kind, task, obj, info) -> None:
        if kind in QUIET:
            return
        stack = kernel_stack(task) if task is not None and task.gen is not None else []
        self.events.append((kind, task, obj, info, stack, self.sim.now if self.sim else 0))

    def of(self, kind: str) -> list:
        return [e for e in self.events if e[0] == kind]


@pytest.fixture
def node():
    """``node(memory_mb, **config)`` -> (sim, pgdat, recorder)."""
    def make(memory_mb: int = 64, ncpus: int = 1, **config):
        sim = Simulation(seed=0, ncpus=ncpus)
        rec = Recorder()
        rec.sim = sim
        sim.add_observer(rec)
        pgdat = pglist_data(sim, MemoryConfig(memory_bytes=memory_mb << 20, **config))
        return sim, pgdat, rec
    return make


def _drain(pgdat, leave: int = 0) -> list[int]:
    """Test setup: take free pages straight from the buddy (as if long-lived kernel
    allocations held them), leaving ``leave`` free. Returns the pfns taken."""
    fa = pgdat.zone.free_area
    taken = []
    while fa.nr_free > leave:
        taken.append(fa.rmqueue_smallest(0))
    return taken


@pytest.fixture
def drain():
    return _drain
