"""ChoicePolicy: one choose() for every decision, exact replay, abstract time."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from reclaimlab.explore import ChoicePolicy
from reclaimlab.explore.choice import ABSTRACT, TIMED, TimeMode
from reclaimlab.explore.strategies import RandomStrategy
from reclaimlab.explore.toys import TOYS, toy_target
from reclaimlab.sim import Simulation


def plain_digest(build) -> str:
    sim = Simulation()
    build(sim)
    sim.run()
    return sim.digest()


def test_default_choices_are_the_plain_run_in_both_time_modes():
    for name, build in TOYS.items():
        for mode in (TIMED, ABSTRACT):
            outcome = toy_target(name).run(ChoicePolicy(time_mode=mode))
            assert outcome.digest == plain_digest(build), (name, mode)
            assert set(outcome.policy.choices) == {0}


def test_abstract_time_offers_timer_choices_and_timed_mode_does_not():
    timed = toy_target("toy:abba").run(ChoicePolicy(time_mode=TIMED)).policy
    abstract = toy_target("toy:abba").run(ChoicePolicy(time_mode=ABSTRACT)).policy
    assert "timer" not in timed.kinds
    assert "timer" in abstract.kinds


def test_a_timer_reordering_exposes_the_planted_deadlock():
    outcome = toy_target("toy:abba").run(ChoicePolicy(prefix=[0, 1]))
    assert [p for p, _ in outcome.violations(["deadlock"])] == ["deadlock"]
    assert outcome.policy.choices[:2] == [0, 1]
    assert outcome.policy.labels and outcome.policy.labels[0][1] == "ba:2"


def test_out_of_range_prefix_entries_take_the_default():
    policy = toy_target("toy:ordered").run(ChoicePolicy(prefix=[7, 9])).policy
    assert policy.choices[:2] == [0, 0]


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), name=st.sampled_from(sorted(TOYS)))
def test_recorded_choices_replay_exactly(seed, name):
    target = toy_target(name)
    first = target.run(RandomStrategy(seed).next_policy())
    again = target.run(ChoicePolicy(prefix=first.policy.choices))
    assert again.digest == first.digest
    assert again.policy.choices == first.policy.choices
    assert [f.message for f in again.findings] == [f.message for f in first.findings]


def test_the_hung_task_watchdog_is_never_a_choice_point():
    from reclaimlab.explore import ModelTarget
    from reclaimlab.sim import Completion, complete, wait_for_completion

    done = []

    def waiter(c):
        yield from wait_for_completion(c)  # D: arms the hung-task watchdog

    def completer(c):
        yield 1_000_000
        complete(c)
        done.append(True)

    def build(sim):
        c = Completion("c")
        sim.spawn(waiter(c), "waiter")
        sim.spawn(completer(c), "completer")

    outcome = ModelTarget("watchdog", build).run(ChoicePolicy())
    assert done and "timer" not in outcome.policy.kinds


def test_a_window_limits_timer_choices_to_events_due_close_together():
    # toy:abba's two wake-ups are 1 ms apart: a 0.5 ms window never offers the reordering
    narrow = toy_target("toy:abba").run(ChoicePolicy(time_mode=TimeMode(window=500_000)))
    wide = toy_target("toy:abba").run(ChoicePolicy(time_mode=TimeMode(window=1_000_000)))
    assert narrow.policy.kinds.count("timer") < wide.policy.kinds.count("timer")
    found = toy_target("toy:abba").run(ChoicePolicy(prefix=[0, 1],
                                                    time_mode=TimeMode(window=1_000_000)))
    assert found.violations(["deadlock"])


def test_no_choice_point_before_the_start_time():
    late = toy_target("toy:abba").run(ChoicePolicy(time_mode=TimeMode(start=1_500_000)))
    early = toy_target("toy:abba").run(ChoicePolicy(time_mode=TimeMode()))
    assert 0 < len(late.policy.choices) < len(early.policy.choices)
    assert late.digest == early.digest  # the defaults are the same schedule


def test_abandoned_runs_are_unwound_as_their_tasks(monkeypatch):
    import gc
    import sys

    from reclaimlab.explore import ModelTarget, explore
    from reclaimlab.explore.strategies import DFSStrategy
    from reclaimlab.sim import current, mutex_lock, mutex_unlock, Mutex

    seen, unwound = [], []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append(str(u.exc_value)))

    def stubborn(m):
        yield from mutex_lock(m)
        try:
            yield 10**12  # never reached: the run stops at the other task's deadlock
        finally:
            unwound.append(current().comm)
            mutex_unlock(m)
            yield 1  # releasing something with a yield in finally

    def build(sim):
        m = Mutex("m")
        sim.spawn(stubborn(m), "stubborn")

    explore(ModelTarget("stubborn", build, until=5), DFSStrategy(), budget=3)
    gc.collect()
    assert unwound == ["stubborn"] and seen == []
