"""Counterexample shrinking: fewer choices, fewer deviations, Hypothesis-style.

A counterexample is a choice list; smaller means fewer non-default choices (fewer preemptions),
then a shorter list, then smaller values (shortlex, as Hypothesis orders its choice sequences).
Candidates zero blocks of choices, delete one, or lower one (``candidates``); a candidate is
kept when its run violates the same property again, and what is kept is the list that run
actually recorded, trailing defaults stripped. Runs are cheap but not free, so the number of
runs is bounded.
"""

from __future__ import annotations

from typing import Iterator

from .choice import ABSTRACT, ChoicePolicy, TimeMode
from .target import Outcome, Target, run_schedule, stop_kinds

#: deleting single entries of a longer list costs more runs than it usually saves
MAX_DELETE_LEN = 64


def normalize(choices: list[int]) -> list[int]:
    """Drop trailing defaults: replay takes the default after the list anyway."""
    end = len(choices)
    while end and choices[end - 1] == 0:
        end -= 1
    return choices[:end]


def sort_key(choices: list[int]) -> tuple:
    return (sum(1 for c in choices if c), len(choices), tuple(choices))


def candidates(choices: list[int]) -> Iterator[list[int]]:
    """Smaller neighbours of ``choices``, the most promising first.

    Zero blocks of deviations, halving the block size down to single ones (as delta debugging
    does, so that a long random schedule loses its needless deviations in logarithmically many
    runs), then delete single entries of a short list (the later ones then answer earlier
    choice points), then lower single entries.
    """
    nonzero = [i for i, c in enumerate(choices) if c]
    size = max(len(nonzero) // 2, 1)
    while nonzero:
        for start in range(len(nonzero) - size, -size, -size):
            block = set(nonzero[max(start, 0):start + size])
            yield [0 if i in block else c for i, c in enumerate(choices)]
        if size == 1:
            break
        size //= 2
    if len(choices) <= MAX_DELETE_LEN:
        for i in range(len(choices)):
            yield choices[:i] + choices[i + 1:]
    for i in nonzero:
        if choices[i] > 1:
            yield choices[:i] + [choices[i] - 1] + choices[i + 1:]


def run_choices(target: Target, choices: list[int], prop: str,
                time_mode: TimeMode = ABSTRACT) -> Outcome:
    """One run replaying ``choices`` then defaults, stopping at a finding of ``prop``."""
    return run_schedule(target, ChoicePolicy(prefix=choices, time_mode=time_mode),
                        stop_kinds((prop,)))


def shrink(target: Target, choices: list[int], prop: str, time_mode: TimeMode = ABSTRACT,
           max_runs: int = 300) -> tuple[list[int], Outcome, int]:
    """The smallest choice list found that still violates ``prop``, its outcome, runs spent."""
    best_outcome = run_choices(target, choices, prop, time_mode)
    runs = 1
    if not best_outcome.violations([prop]):
        raise ValueError(f"the choice list does not reproduce a {prop} violation")
    best = normalize(best_outcome.policy.choices)
    tried: set[tuple[int, ...]] = set()  # runs are deterministic: never run a list twice
    improved = True
    while improved and runs < max_runs:
        improved = False
        for cand in candidates(best):
            cand = normalize(cand)
            if sort_key(cand) >= sort_key(best) or tuple(cand) in tried:
                continue
            tried.add(tuple(cand))
            outcome = run_choices(target, cand, prop, time_mode)
            runs += 1
            got = normalize(outcome.policy.choices)
            if outcome.violations([prop]) and sort_key(got) < sort_key(best):
                best_outcome.discard()
                best, best_outcome, improved = got, outcome, True
                break
            outcome.discard()
            if runs >= max_runs:
                break
    return best, best_outcome, runs
