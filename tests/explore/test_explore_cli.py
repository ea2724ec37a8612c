"""``reclaimlab explore`` / ``replay``: results, files and exit codes as interfaces.md."""

from __future__ import annotations

import json

from reclaimlab.explore.cli import main


def run_json(capsys, argv):
    rc = main(argv)
    return rc, json.loads(capsys.readouterr().out)


def test_explore_finds_saves_and_replay_reproduces(tmp_path, capsys):
    out = tmp_path / "abba.cex.json"
    rc, result = run_json(capsys, ["explore", "toy:abba", "--property", "deadlock", "--json",
                                   "--out", str(out), "--check"])
    assert rc == 1
    v = result["violation"]
    assert v["kind"] == "deadlock" and v["schedule_file"] == str(out) and out.exists()
    assert v["finding"]["cycle"] and v["preemptions"] == 1
    assert set(result) >= {"scenario", "design", "strategy", "schedules", "distinct_states",
                           "wall_s", "complete", "violation"}
    rc, run = run_json(capsys, ["replay", str(out), "--json"])
    assert rc == 0
    assert run["digest"] == v["digest"] and run["outcome"] == "deadlock"
    assert run["replay"]["reproduced"] is True


def test_human_report_prints_splat_timeline_and_progress(tmp_path, capsys):
    out = tmp_path / "abba.cex.json"
    assert main(["explore", "toy:abba", "--property", "deadlock", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "circular wait" in captured.out and "interleaving" in captured.out
    assert ">> choice: ba:2 runs next" in captured.out
    assert "distinct states found" in captured.err and "states left on queue" in captured.err


def test_exhausted_correct_model_reports_coverage(capsys):
    rc, result = run_json(capsys, ["explore", "toy:ordered", "--json", "--quiet", "--check"])
    assert rc == 0
    assert result["violation"] is None and result["complete"] is True
    assert result["schedules"] > 1 and result["distinct_states"] > 1


def test_user_errors_exit_2_with_one_line(tmp_path, capsys):
    assert main(["explore", "toy:abba", "--property", "nonsense"]) == 2
    assert "unknown property 'nonsense'" in capsys.readouterr().err
    assert main(["explore", "mini-overlay"]) == 2
    assert "--design is required" in capsys.readouterr().err
    assert main(["replay", str(tmp_path / "missing.json")]) == 2
    assert "missing.json" in capsys.readouterr().err
    assert main(["explore", "toy:abba", "--budget", "0"]) == 2


def test_time_mode_flags_shape_the_search_and_are_reported(capsys):
    rc, narrow = run_json(capsys, ["explore", "toy:abba", "--property", "deadlock", "--json",
                                   "--quiet", "--window", "100000"])
    assert narrow["violation"] is None and narrow["complete"] is True
    assert narrow["bounds"]["window_ns"] == 100000
    rc, timed = run_json(capsys, ["explore", "toy:abba-instant", "--property", "deadlock",
                                  "--json", "--quiet", "--timed", "--fork", "--out",
                                  "/dev/null"])
    assert timed["violation"]["choices"] == [1]
    assert timed["bounds"]["abstract_time"] is False and timed["bounds"]["fork"] is True
    assert main(["explore", "toy:abba", "--timed", "--window", "5"]) == 2
