"""Schedule exploration: every interleaving a small configuration can reach, within bounds.

- ``choice``: ``ChoicePolicy``, the runtime policy through whose one ``pick`` every
  nondeterministic decision goes (task order at an instant; in abstract time, timed events).
- ``target``: run factories (``ModelTarget``; ``scenario.ScenarioTarget``) and properties.
- ``state``: the canonical state hashed to cut revisits.
- ``strategies``: ``random``, ``pct``, ``dfs`` and the ``explore`` loop.
- ``shrink``: counterexample shrinking. ``replay``: counterexample files, replay, timelines.
- ``fork``: ``dfs`` with fork(2) as a snapshot of the running simulation.
- ``scenario``: ``ScenarioTarget``, the run factory for built-in and TOML scenarios.
- ``cli``: ``reclaimlab explore`` and ``reclaimlab replay``. ``toys``: planted-bug models.

See docs/explore.md.
"""

from .choice import ABSTRACT, TIMED, ChoicePolicy, TimeMode
from .replay import Counterexample, make_target, replay
from .shrink import shrink
from .strategies import DFSStrategy, PCTStrategy, RandomStrategy, explore, make_strategy
from .target import DEFAULT_PROPERTIES, PROPERTIES, ModelTarget, Outcome, Target

__all__ = [
    "ABSTRACT", "ChoicePolicy", "Counterexample", "DEFAULT_PROPERTIES", "DFSStrategy",
    "ModelTarget", "Outcome", "PCTStrategy", "PROPERTIES", "RandomStrategy", "TIMED", "Target",
    "TimeMode", "explore", "make_strategy", "make_target", "replay", "shrink",
]
