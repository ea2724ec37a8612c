"""Exploration on the built-in ``mini-overlay`` scenario, through the machine builder."""

from __future__ import annotations

import pytest

from reclaimlab.explore import ChoicePolicy, Counterexample, explore, make_target, replay
from reclaimlab.explore.choice import ABSTRACT, TIMED, TimeMode
from reclaimlab.explore.strategies import DFSStrategy, RandomStrategy
from reclaimlab.scenario import run_scenario


@pytest.fixture(scope="module")
def sync_target():
    return make_target("mini-overlay", "sync")


def test_the_default_schedule_is_the_plain_run(sync_target):
    plain = run_scenario("mini-overlay", "sync")["digest"]
    for mode in (TIMED, ABSTRACT):
        assert sync_target.run(ChoicePolicy(time_mode=mode)).digest == plain, mode


def test_any_recorded_schedule_replays_to_the_same_digest(sync_target, tmp_path):
    mode = TimeMode(window=100_000)
    first = sync_target.run(RandomStrategy(seed=7, time_mode=mode).next_policy())
    assert any(first.policy.choices)
    cex = Counterexample("mini-overlay", "sync", sync_target.seed, first.policy.choices,
                         "deadlock", "none", first.digest, window_ns=mode.window)
    cex.save(tmp_path / "s.cex.json")
    again = replay(Counterexample.load(tmp_path / "s.cex.json"))
    assert again.digest == first.digest
    assert again.result["digest"] == first.digest


def test_timed_dfs_on_mini_overlay_runs_within_its_bounds(sync_target):
    stats = explore(sync_target, DFSStrategy(time_mode=TIMED, preemptions=1), budget=6)
    assert 1 <= stats.schedules <= 6
    assert stats.distinct_states >= 1
