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
    if stats.found is not None:  # the caller owns the violating run: unwind it
        stats.found.outcome.discard()
    assert 1 <= stats.schedules <= 6
    assert stats.distinct_states >= 1


def test_dfs_runs_the_default_schedule_to_its_end():
    """The first schedule is cut by no earlier one, and not by itself either: states it met
    before (a slice of the run ending on an event asks the same choice again; a loop whose
    progress the state does not show) leave it running, through the shutdown and the end-of-run
    checks. It is the plain run, digest for digest."""
    plain = run_scenario("mini-overlay", "inodegc")["digest"]
    first = []
    explore(make_target("mini-overlay", "inodegc"),
            DFSStrategy(max_depth=10, preemptions=1, time_mode=TimeMode(start=5_800_000)),
            budget=1, on_schedule=lambda o: first.append((o.policy.cut, o.digest)))
    assert first == [(False, plain)]


def test_forked_dfs_explores_what_dfs_explores_on_mini_overlay():
    from reclaimlab.explore.fork import ForkDFS

    target = make_target("mini-overlay", "passive-ref")
    plain, forked = (explore(target, cls(max_depth=10, preemptions=1,
                                         time_mode=TimeMode(start=5_800_000)))
                     for cls in (DFSStrategy, ForkDFS))
    assert plain.complete and plain.schedules > 1
    assert (forked.schedules, forked.states, forked.distinct_states, forked.complete) \
        == (plain.schedules, plain.states, plain.distinct_states, plain.complete)


# mini-overlay's own [explore] bounds (no choice before 5.8 ms, just before the plain schedule's
# first kswapd wake-up; one deviation from the default schedule), with a shallower depth to stay
# fast.
BOUNDS = ["--max-depth", "10"]


def test_sync_dfs_with_the_scenario_bounds_finds_a_shrunk_replayable_violation(tmp_path, capsys):
    import json

    from reclaimlab.explore.cli import main

    out = tmp_path / "sync.cex.json"
    assert main(["explore", "mini-overlay", "--design", "sync", "--json", "--quiet",
                 "--out", str(out)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["bounds"]["start_ns"] == 5_800_000 and result["bounds"]["preemptions"] == 1
    v = result["violation"]
    assert v is not None and v["kind"] == "nofail_in_reclaim"
    # the default schedule already gets there: kswapd prunes the overlay dentry and evicts the
    # unlinked ext4 inode, whose block preallocation discard loads a buddy page with NOFAIL
    assert v["preemptions"] == 0 and "kswapd" in v["finding"]["task"]
    assert "ext4_evict_inode" in v["finding"]["stack"]
    assert main(["replay", str(out), "--json"]) == 0
    run = json.loads(capsys.readouterr().out)
    assert run["digest"] == v["digest"] and run["replay"]["reproduced"]
    assert [w["kind"] for w in run["warnings"]][:1] == ["nofail_in_reclaim"]


@pytest.mark.parametrize("design", ["passive-ref", "inodegc"])
def test_deferred_designs_exhaust_the_same_bounds_without_violation(design, capsys):
    import json

    from reclaimlab.explore.cli import main

    assert main(["explore", "mini-overlay", "--design", design, *BOUNDS, "--json",
                 "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["bounds"]["max_depth"] == 10  # the flag overrides the scenario's [explore]
    assert result["bounds"]["start_ns"] == 5_800_000
    assert result["violation"] is None and result["complete"] is True
    assert result["schedules"] > 1 and result["distinct_states"] > 1
