"""The mmtests-style comparison and the plots."""

from __future__ import annotations

from rich.console import Console

from fakerunner import fake_run
from reclaimlab.sweep.executor import execute_run
from reclaimlab.sweep.report import (axis_curve, comparison_tables, growth_table, merged_percentile,
                                     print_report, summarize, write_plots)
from reclaimlab.sweep.spec import sweep_from_dict

DESIGNS = ["sync", "inodegc", "passive-ref"]


def sweep_rows(axes: dict, seeds: int = 3) -> list[dict]:
    sweep = sweep_from_dict({"base": "overlay-unlink", "designs": DESIGNS, "seeds": seeds,
                             "axes": axes})
    return [execute_run(r, fake_run) for r in sweep.matrix()]


def render(renderable) -> str:
    console = Console(width=200, record=True, file=open("/dev/null", "w"))
    console.print(renderable)
    return console.export_text()


def test_summary_is_median_p90_and_range_over_seeds():
    s = summarize([10, 20, 30, 40, None])
    assert (s.n, s.median, s.lo, s.hi) == (4, 25.0, 10.0, 40.0)
    assert s.p90 == 37.0 and s.spread_pct == 120.0
    assert summarize([None]) is None


def test_merged_percentile_pools_the_histograms_of_all_seeds():
    rows = sweep_rows({"machine.memory_mb": [256]})
    sync = [r["alloc_latency_hist"] for r in rows if r["design"] == "sync"]
    merged = merged_percentile(sync, 100.0)
    assert abs(merged - max(r["alloc_latency_ns.max"] for r in rows if r["design"] == "sync")) < 20
    assert merged_percentile([None, None], 99.0) is None


def test_p99_table_compares_designs_per_axis_point_relative_to_the_first():
    rows = sweep_rows({"machine.memory_mb": [256, 1024]})
    (p99, *_) = comparison_tables(rows, ["machine.memory_mb"], DESIGNS)
    text = render(p99)
    assert "alloc_latency_ns.p99" in text
    assert all(d in text for d in DESIGNS)
    assert text.count("median") == 2 and text.count("spread") == 2 and "merged p99" in text
    # inodegc's median at 256 MB is well below sync's, shown relative to sync (the baseline).
    assert "(-70." in text


def test_a_point_where_runs_hung_or_were_oom_killed_says_so():
    rows = sweep_rows({"machine.memory_mb": [256, 1024]})
    for r in rows:
        if r["machine.memory_mb"] == 256 and r["design"] == "inodegc":
            r["outcome"] = "hung" if r["seed"] else "oom"
    text = render(comparison_tables(rows, ["machine.memory_mb"], DESIGNS)[0])
    assert text.count("ended") == 1                  # only at 256 MB
    ended = next(line for line in text.splitlines() if "ended" in line)
    assert "hung 2, oom 1" in ended and ended.count("completed") == 2


def test_growth_shows_sync_p99_moving_most_along_the_memory_axis():
    rows = sweep_rows({"machine.memory_mb": [256, 512, 1024]})
    curves = {d: axis_curve(rows, "machine.memory_mb", d) for d in DESIGNS}
    shrink = {d: c[256].median / c[1024].median for d, c in curves.items()}
    assert shrink["sync"] > shrink["inodegc"] > 1
    text = render(growth_table(rows, ["machine.memory_mb"], DESIGNS))
    assert "256 -> 1024" in text


def test_failed_runs_are_counted_not_summarised():
    rows = sweep_rows({"machine.memory_mb": [256], "fake.fail": [False, True]}, seeds=2)
    console = Console(width=200, record=True, file=open("/dev/null", "w"))
    print_report(rows, ["machine.memory_mb", "fake.fail"], DESIGNS, console)
    text = console.export_text()
    assert "12 runs, 6 failed (sync: 2, inodegc: 2, passive-ref: 2)" in text
    assert "True" not in text.split("p99 growth")[0]


def test_plots_per_axis_and_a_heatmap_for_two_axes(tmp_path):
    rows = sweep_rows({"machine.memory_mb": [256, 512], "workload.kind": ["a", "b"]}, seeds=2)
    paths = write_plots(rows, ["machine.memory_mb", "workload.kind"], tmp_path / "s", DESIGNS)
    names = sorted(p.name for p in paths)
    assert names == ["s-p99-heatmap.png", "s-p99-machine.memory_mb.png", "s-p99-workload.kind.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)
    one_axis = write_plots(rows, ["machine.memory_mb"], tmp_path / "t", DESIGNS)
    assert [p.name for p in one_axis] == ["t-p99-machine.memory_mb.png"]
