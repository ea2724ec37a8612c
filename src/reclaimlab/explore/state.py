"""The canonical state of a simulation at a choice point, hashed, so revisits can be cut.

Two runs that reach equal canonical states at a choice point have the same futures, provided the
state says everything the future depends on. What it holds:

- the virtual time;
- per task, in pid order: comm, state (``R``/``D``/``S``/``I``/``X``), flags, its kernel stack as
  (function, bytecode offset, plain locals) per frame — the offset tells two yields of the same
  function apart, the locals (ints, strings, bools, floats, None) a loop's progress — what it
  waits on, by name, and the locks it holds, by name (so lock owners by comm);
- the order of the ready list, and every pending timed event as (delay from now, whom it wakes);
- whatever subsystems add through ``sim.state_fingerprint``: a callable returning a hashable
  value, or a list of such callables (page counts, inode states, queue lengths…).

State kept elsewhere in model objects (not in a task's locals, not in a fingerprint hook) is
invisible, so two states that differ only there are taken as equal and one of them is cut: the
pruning is sound only for models whose state is covered. The lockdep dependency graph, which
accumulates over the run, is not part of the state either.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from reclaimlab.sim import Simulation

from .choice import option_label

_PLAIN = (int, str, bool, float, type(None))


def _name(obj: Any) -> Any:
    if obj is None:
        return None
    return getattr(obj, "name", None) or type(obj).__name__


def _frames(gen: Any) -> tuple:
    """(function, offset, plain locals) of each frame of a task's generator chain."""
    out = []
    while gen is not None and hasattr(gen, "gi_code"):
        frame = gen.gi_frame
        if frame is None:
            break
        plain = tuple((k, v) for k, v in frame.f_locals.items() if isinstance(v, _PLAIN))
        out.append((gen.gi_code.co_name, frame.f_lasti, plain))
        gen = gen.gi_yieldfrom
    return tuple(out)


_SLOTS: dict[type, tuple[str, ...]] = {}
_SIZED = (list, dict, tuple, set, deque)


def _slots(cls: type) -> tuple[str, ...]:
    names = _SLOTS.get(cls)
    if names is None:
        names = _SLOTS[cls] = tuple(dict.fromkeys(
            n for c in cls.__mro__ for n in getattr(c, "__slots__", ()) if n != "__dict__"))
    return names


def object_summary(obj: Any) -> tuple:
    """A model object's plain fields, and the length of its containers (lists, dicts, queues):
    a cheap fingerprint for objects that do not expose one of their own. Fields are taken in
    their (deterministic) definition order, values only."""
    d = getattr(obj, "__dict__", None)
    values = list(d.values()) if d else []
    values += [getattr(obj, n, None) for n in _slots(type(obj))]
    plain = _PLAIN_OR_SIZED.get
    out = []
    for v in values:
        is_plain = plain(type(v))
        if is_plain is not None:
            out.append(v if is_plain else len(v))
    return tuple(out)


# type -> True for a plain value, False for a container (summarised by its length)
_PLAIN_OR_SIZED: dict[type, bool] = {**dict.fromkeys(_PLAIN, True),
                                     **dict.fromkeys(_SIZED, False)}


def _hooks(sim: Simulation) -> tuple:
    hook = getattr(sim, "state_fingerprint", None)
    if hook is None:
        return ()
    if callable(hook):
        return (hook(),)
    return tuple(fn() for fn in hook)


def task_signature(task: Any) -> tuple:
    """A task's canonical state without its name: equal for interchangeable tasks."""
    if task.gen is None:
        return (task.state,)
    return (task.state, task.flags, _frames(task.gen), _name(task.blocked_on),
            tuple(_name(lk) for lk in task.held_locks))


def canonical_state(sim: Simulation) -> tuple:
    """The canonical state of ``sim`` as a hashable tuple (see the module docstring)."""
    now = sim.now
    tasks = tuple((t.comm, task_signature(t)) for t in sim.tasks.values())
    ready = tuple(t.pid for t, _ in sim._ready)
    timers = tuple((e[0] - now, option_label(e)) for e in sim._live_timers())
    return (now, tasks, ready, timers, _hooks(sim))


def state_hash(sim: Simulation) -> int:
    """Hash of ``canonical_state`` (64 bits; stable within one process)."""
    return hash(canonical_state(sim))


class StateHasher:
    """``state_hash`` for the successive choice points of one run, caching each task's part.

    A task's signature changes only when the task itself runs — which always changes its wait
    sequence number (``Task.wseq``: bumped at every park, wake, sleep and CPU burst) or its
    state — or when someone changes its flags; so (wseq, state, flags) keys the cache. The hash
    equals ``state_hash`` up to how the parts are combined.
    """

    def __init__(self) -> None:
        self.cache: dict[int, tuple[int, str, int, int]] = {}

    def task_hash(self, task: Any) -> int:
        hit = self.cache.get(task.pid)
        if hit is not None and hit[0] == task.wseq and hit[1] == task.state \
                and hit[2] == task.flags:
            return hit[3]
        h = hash(task_signature(task))
        self.cache[task.pid] = (task.wseq, task.state, task.flags, h)
        return h

    def __call__(self, sim: Simulation) -> int:
        now = sim.now
        tasks = tuple((t.comm, self.task_hash(t)) for t in sim.tasks.values())
        ready = tuple(t.pid for t, _ in sim._ready)
        timers = tuple((e[0] - now, option_label(e)) for e in sim._live_timers())
        return hash((now, tasks, ready, timers, _hooks(sim)))
