"""Shrinking keeps the violation and removes what it does not need; replay is exact."""

from __future__ import annotations

import json

import pytest

from reclaimlab.explore import Counterexample, replay, shrink
from reclaimlab.explore.shrink import normalize, run_choices, sort_key
from reclaimlab.explore.toys import toy_target


def test_normalize_strips_trailing_defaults_only():
    assert normalize([0, 1, 0, 2, 0, 0]) == [0, 1, 0, 2]
    assert normalize([0, 0]) == []


def test_fewer_deviations_sort_first_then_shorter():
    assert sort_key([0, 0, 0, 1]) < sort_key([1, 1])
    assert sort_key([1]) < sort_key([0, 1])


def test_shrink_removes_needless_deviations_and_stays_minimal():
    target = toy_target("toy:abba")
    noisy = [1, 0, 1, 1]  # three deviations; the deadlock needs one timer reordering only
    assert run_choices(target, noisy, "deadlock").violations(["deadlock"])
    choices, outcome, runs = shrink(target, noisy, "deadlock")
    assert outcome.violations(["deadlock"])
    assert sum(1 for c in choices if c) == 1
    for i, c in enumerate(choices):  # 1-minimal: undoing any deviation loses the deadlock
        if c:
            fewer = choices[:i] + [0] + choices[i + 1:]
            assert not run_choices(target, fewer, "deadlock").violations(["deadlock"])
    assert runs <= 300


def test_shrink_refuses_a_list_that_does_not_fail():
    with pytest.raises(ValueError):
        shrink(toy_target("toy:ordered"), [0, 1], "deadlock")


def test_counterexample_file_replays_same_finding_and_digest(tmp_path):
    target = toy_target("toy:abba")
    choices, outcome, _ = shrink(target, [1, 1, 0, 1], "deadlock")
    cex = Counterexample("toy:abba", "model", 0, choices, "deadlock", "deadlock",
                         outcome.digest)
    path = tmp_path / "abba.cex.json"
    cex.save(path)
    loaded = Counterexample.load(path)
    assert loaded == cex
    again = replay(loaded)
    assert again.digest == cex.digest
    assert [f.kind for _, f in again.violations(["deadlock"])] == ["deadlock"]
    assert json.loads(path.read_text())["expected"] == {"kind": "deadlock",
                                                       "digest": outcome.digest}


def test_a_file_that_is_not_a_counterexample_is_refused(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"scenario": "toy:abba"}))
    with pytest.raises(ValueError, match="not a reclaimlab counterexample"):
        Counterexample.load(path)
    path.write_text("{")
    with pytest.raises(ValueError, match="not JSON"):
        Counterexample.load(path)


def test_timeline_puts_the_named_tasks_first_and_marks_choices():
    from reclaimlab.explore.replay import render_timeline

    rows = [(0, "a:1", "spawn"), (0, "b:2", "spawn"), (1000, "c:3", "lock X"),
            (2000, "b:2", "waits on mutex X")]
    text = render_timeline(rows, [(1000, "c:3", "task")], focus=["b:2", "b:2"], max_tasks=2)
    header, *lines = text.splitlines()
    assert header.split() == ["time(us)", "b:2", "a:1"]
    assert any(">> choice: c:3 runs next (task)" in line for line in lines)
    assert not any("lock X" in line for line in lines)  # c:3 is not shown
