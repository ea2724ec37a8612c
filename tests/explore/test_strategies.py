"""random, pct and dfs: the planted deadlock is found, the correct variant is exhausted."""

from __future__ import annotations

from itertools import permutations

import pytest

from reclaimlab.explore import DFSStrategy, explore, make_strategy
from reclaimlab.explore.choice import TIMED
from reclaimlab.explore.toys import toy_target


def test_plain_run_of_the_planted_deadlock_does_not_deadlock():
    stats = explore(toy_target("toy:abba"), make_strategy("dfs", time_mode=TIMED),
                    properties=["deadlock"])
    assert stats.found is None and stats.complete


def test_dfs_finds_the_planted_deadlock():
    stats = explore(toy_target("toy:abba"), make_strategy("dfs"), properties=["deadlock"])
    assert stats.found is not None and stats.found.prop == "deadlock"
    assert stats.found.finding.data["kind"] == "cycle"


def test_pct_finds_the_planted_deadlock():
    for seed in range(3):
        stats = explore(toy_target("toy:abba"), make_strategy("pct", seed=seed), budget=200,
                        properties=["deadlock"])
        assert stats.found is not None, seed


def test_random_and_pct_find_the_same_instant_deadlock_in_timed_mode():
    for name in ("random", "pct"):
        stats = explore(toy_target("toy:abba-instant"),
                        make_strategy(name, seed=1, time_mode=TIMED), budget=200,
                        properties=["deadlock"])
        assert stats.found is not None, name


def test_dfs_exhausts_the_correct_variant():
    stats = explore(toy_target("toy:ordered"), make_strategy("dfs"), properties=["deadlock"])
    assert stats.found is None
    assert stats.complete
    assert stats.schedules > 1 and stats.distinct_states > 1


def test_dfs_enumerates_every_order_of_independent_tasks(three_racers):
    digests = []
    strategy = DFSStrategy(preemptions=10, time_mode=TIMED, state_hashing=False)
    stats = explore(three_racers, strategy, on_schedule=lambda o: digests.append(o.digest))
    assert stats.complete and stats.schedules == len(list(permutations(range(3))))
    assert len(set(digests)) == stats.schedules  # every schedule a different interleaving


def test_preemption_and_depth_bounds_prune_the_tree(three_racers):
    target = three_racers
    one = explore(target, DFSStrategy(preemptions=1, time_mode=TIMED, state_hashing=False))
    assert one.complete and one.schedules == 4  # (0,0) (1,0) (2,0) (0,1)
    shallow = explore(target, DFSStrategy(max_depth=1, preemptions=10, time_mode=TIMED,
                                          state_hashing=False))
    assert shallow.complete and shallow.schedules == 3


def test_state_hashing_cuts_revisits_without_losing_the_bug():
    for name in ("toy:ordered", "toy:abba"):
        hashed = explore(toy_target(name), DFSStrategy(preemptions=3), properties=["deadlock"])
        full = explore(toy_target(name), DFSStrategy(preemptions=3, state_hashing=False),
                       properties=["deadlock"])
        assert (hashed.found is None) == (full.found is None)
        assert hashed.schedules <= full.schedules
    assert hashed.found is not None  # toy:abba


def test_budget_ends_an_unfinished_search_incomplete():
    stats = explore(toy_target("toy:ordered"), DFSStrategy(preemptions=3, state_hashing=False),
                    budget=2)
    assert stats.schedules == 2 and not stats.complete


def test_forked_dfs_covers_exactly_what_dfs_covers(three_racers):
    from reclaimlab.explore.fork import ForkDFS

    for target in (toy_target("toy:ordered"), toy_target("toy:abba"), three_racers):
        for hashing in (True, False):
            plain = explore(target, DFSStrategy(preemptions=3, state_hashing=hashing),
                            properties=["deadlock"])
            forked = explore(target, ForkDFS(preemptions=3, state_hashing=hashing),
                             properties=["deadlock"])
            assert (forked.schedules, forked.states, forked.distinct_states, forked.complete) \
                == (plain.schedules, plain.states, plain.distinct_states, plain.complete)
            assert (forked.found is None) == (plain.found is None)
            if plain.found is not None:
                assert forked.found.outcome.digest == plain.found.outcome.digest


def test_forked_dfs_stops_at_the_budget(three_racers):
    from reclaimlab.explore.fork import ForkDFS

    stats = explore(three_racers, ForkDFS(preemptions=10, state_hashing=False), budget=4)
    assert stats.schedules == 4 and not stats.complete


def test_a_model_crash_under_some_schedule_is_a_violation_found_shrunk_and_replayed():
    from reclaimlab.explore import Counterexample, ModelTarget, replay, shrink
    from reclaimlab.explore.fork import ForkDFS
    from reclaimlab.sim import Run

    def crash_if_late(state):
        yield Run(1)
        if state:
            raise ValueError("boom in the model")
        state.append(1)

    def build(sim):
        state = []
        sim.spawn(crash_if_late(state), "a")
        sim.spawn(crash_if_late(state), "b")

    target = ModelTarget("crash", build)
    for strategy in (DFSStrategy(time_mode=TIMED), ForkDFS(time_mode=TIMED)):
        stats = explore(target, strategy)
        assert stats.found is not None and stats.found.prop == "model_error"
        finding = stats.found.finding
        assert "boom in the model" in finding.message and "crash_if_late" in finding.stack
    choices, outcome, _ = shrink(target, stats.found.outcome.policy.choices, "model_error",
                                 time_mode=TIMED)
    cex = Counterexample("crash", "model", 0, choices, "model_error", "model_error",
                         outcome.digest, abstract_time=False)
    again = replay(cex, target=target)
    assert again.digest == outcome.digest and again.result["outcome"] == "error"


def test_symmetry_tries_one_of_identical_ready_tasks():
    from reclaimlab.explore import ModelTarget
    from reclaimlab.sim import Run

    def worker():
        yield Run(1000)

    def build(sim):
        for i in range(4):
            sim.spawn(worker(), f"kworker/{i}")

    target = ModelTarget("pool", build)
    reduced = explore(target, DFSStrategy(preemptions=10, time_mode=TIMED, state_hashing=False))
    full = explore(target, DFSStrategy(preemptions=10, time_mode=TIMED, state_hashing=False,
                                       symmetry=False))
    assert reduced.complete and full.complete
    assert (reduced.schedules, full.schedules) == (1, 24)


def test_pct_reorders_timed_events_only_at_change_points():
    from reclaimlab.explore.strategies import PCTStrategy

    strategy = PCTStrategy(seed=3, depth=3)
    target = toy_target("toy:ordered")
    for _ in range(30):
        policy = strategy.next_policy()
        outcome = target.run(policy)
        strategy.record(policy, outcome)
        timer_deviations = [c for c, k in zip(policy.choices, policy.kinds) if k == "timer" and c]
        assert len(timer_deviations) <= strategy.depth - 1


def test_bounds_left_are_compared_as_a_front_not_a_pairwise_maximum():
    from reclaimlab.explore.strategies import covers, remaining, with_bounds

    front = with_bounds(with_bounds((), (1, 10)), (2, 5))
    assert set(front) == {(1, 10), (2, 5)}  # neither covers the other
    assert covers(front, (1, 7)) and covers(front, (2, 5))
    assert not covers(front, (2, 10))  # no visit had both
    assert with_bounds(front, (2, 10)) == ((2, 10),)
    # once either bound is spent the rest of the run is the default: one and the same future
    assert remaining(0, 40) == remaining(3, 0) == remaining(0, -2) == (0, 0)
    assert covers(((0, 0),), remaining(0, 40))


def test_a_model_that_drifts_between_runs_stops_dfs_with_an_error_not_a_finding():
    from reclaimlab.explore import ModelTarget
    from reclaimlab.explore.strategies import NondeterminismError
    from reclaimlab.sim import Run

    def worker():
        yield Run(1000)

    runs = []

    def build(sim):  # one more task ready at once on each run: state kept across runs
        runs.append(1)
        for i in range(1 + len(runs)):
            sim.spawn(worker(), f"t{i}")

    with pytest.raises(NondeterminismError):
        explore(ModelTarget("drift", build),
                DFSStrategy(time_mode=TIMED, state_hashing=False, symmetry=False))
