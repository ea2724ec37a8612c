"""compare-kernels style tables, bpftrace log2 histograms, PNG plots."""

from reclaimlab.report import compare_report, compare_table, log2_histogram
from reclaimlab.report.plots import plot_free_pages, plot_latency_cdf, plot_queue_depth
from reclaimlab.report import attach_observers, finish_run
from reclaimlab.sim import Simulation

from .model import synthetic_workload


def fake_run(design, seed, p50, log2):
    return {
        "scenario": "s", "design": design, "seed": seed, "outcome": "completed",
        "sim_time_ns": 1000, "events": 10, "wall_s": 0.1, "digest": "x", "warnings": [],
        "deadlocks": [],
        "alloc_latency_ns": {"count": 4, "p50": p50, "p90": p50, "p99": p50, "p999": p50,
                             "max": p50},
        "direct_reclaim": {"count": 0, "total_ns": 0, "p99_ns": 0, "max_ns": 0},
        "inodes": {"evicted": 0, "evicted_in_reclaim": 0, "deferred": 0, "leaked": 0},
        "invariants": {"ok": True, "violations": []},
        "alloc_latency_log2": log2,
        "alloc_latency_cdf": [[p50 // 2, 0.0], [p50, 0.5], [p50 * 2, 1.0]],
    }


def test_compare_table_means_per_design_and_delta_against_the_first():
    runs = [fake_run("sync", 1, 1000, [0]), fake_run("sync", 2, 3000, [0]),
            fake_run("inodegc", 1, 1000, [0])]
    table = compare_table(runs)
    header, *rows = table.splitlines()
    assert header.split() == ["sync", "inodegc"]
    p50 = next(r for r in rows if "alloc latency p50" in r)
    assert p50.startswith("Amean  alloc latency p50 (ns)")
    assert "2000.00 (   0.00%)" in p50 and "1000.00 ( -50.00%)" in p50
    assert rows[0].split() == ["Outcome", "completed", "completed"]


def test_compare_table_says_how_each_design_s_runs_ended():
    hung = dict(fake_run("inodegc", 2, 500, [0]), outcome="hung")
    runs = [fake_run("sync", 1, 1000, [0]), fake_run("inodegc", 1, 1000, [0]), hung,
            dict(fake_run("inodegc", 3, 500, [0]), outcome="hung")]
    outcome_row = compare_table(runs).splitlines()[1]
    assert outcome_row.startswith("Outcome")
    assert outcome_row.endswith("hung 2, completed 1")
    assert outcome_row.split()[1] == "completed"


def test_log2_histogram_in_bpftrace_layout():
    text = log2_histogram("alloc_latency_ns[sync]", [0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4])
    lines = text.splitlines()
    assert lines[0] == "@alloc_latency_ns[sync]:"
    assert lines[1].startswith("[1]") and lines[1].endswith("|@@@@@@@@@@@@@" + " " * 39 + "|")
    assert lines[-1].startswith("[1K, 2K)") and "       4 |" + "@" * 52 + "|" in lines[-1]
    assert len(lines) == 12


def test_compare_report_has_a_histogram_per_design():
    runs = [fake_run("sync", 1, 100, [0, 2]), fake_run("passive-ref", 1, 100, [0, 0, 3])]
    text = compare_report(runs)
    assert "@alloc_latency_ns[sync]:" in text and "@alloc_latency_ns[passive-ref]:" in text


def test_plots_are_pngs(tmp_path):
    sim = Simulation(seed=2, ncpus=2)
    synthetic_workload(sim)
    obs = attach_observers(sim)
    sim.run()
    result = finish_run(sim, obs, "synthetic", "inodegc", 2, 0.0)
    paths = [tmp_path / n for n in ("cdf.png", "free.png", "queue.png")]
    plot_latency_cdf([result, fake_run("sync", 1, 300, [])], str(paths[0]))
    plot_free_pages(obs.metrics, str(paths[1]))
    plot_queue_depth(obs.metrics, str(paths[2]))
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
