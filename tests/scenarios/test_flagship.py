"""The flagship comparison (issue 6, "Must show"): `reclaimlab compare overlay-unlink --seeds 3`.

Under `sync` the overlay dentry reclaim runs ext4 eviction inside reclaim: allocator warnings
(`nofail_in_reclaim`), a lockdep cycle (`lockdep_circular`) and inodes evicted in reclaim.
Under `inodegc` and `passive-ref` eviction stays out of reclaim: no allocator warnings, no inodes
evicted in reclaim. `passive-ref` is lockdep-clean too; `inodegc` is not: its throttle flushes
the worker from reclaim (`fs_reclaim --> (work_completion)`), and the worker takes the journal, so
lockdep closes D1's chain through the worker. No inode leaks anywhere. All of it emerges from
the models: the scenario only describes the workload.
"""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor

import pytest

from reclaimlab.cli import main
from reclaimlab.scenario import run_scenario

DESIGNS = ("sync", "inodegc", "passive-ref")
SEEDS = (0, 1, 2)


def _run(args):
    return run_scenario("overlay-unlink", *args)


@pytest.fixture(scope="module")
def runs():
    jobs = [(d, s) for d in DESIGNS for s in SEEDS]
    with ProcessPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(_run, jobs))
    return {job: r for job, r in zip(jobs, results)}


def kinds(result):
    return {w["kind"] for w in result["warnings"]}


@pytest.mark.parametrize("seed", SEEDS)
def test_sync_evicts_in_reclaim_and_closes_a_lockdep_cycle(runs, seed):
    r = runs["sync", seed]
    assert "lockdep_circular" in kinds(r)
    assert r["inodes"]["evicted_in_reclaim"] > 0


@pytest.mark.parametrize("seed", SEEDS)
def test_sync_warns_nofail_in_reclaim(runs, seed):
    assert "nofail_in_reclaim" in kinds(runs["sync", seed])


@pytest.mark.parametrize("design", ["inodegc", "passive-ref"])
@pytest.mark.parametrize("seed", SEEDS)
def test_deferred_designs_keep_eviction_out_of_reclaim(runs, design, seed):
    r = runs[design, seed]
    assert "nofail_in_reclaim" not in kinds(r)
    assert r["inodes"]["evicted_in_reclaim"] == 0
    assert r["inodes"]["deferred"] > 0


@pytest.mark.parametrize("seed", SEEDS)
def test_passive_ref_closes_no_lockdep_cycle(runs, seed):
    assert "lockdep_circular" not in kinds(runs["passive-ref", seed])


@pytest.mark.parametrize("seed", SEEDS)
def test_inodegc_throttle_closes_the_d1_chain_through_its_worker(runs, seed):
    """kswapd flushes the inodegc work from reclaim (the shrinker throttle); the work starts
    journal handles; a handle holder takes xattr_sem, which is held across GFP_KERNEL
    allocations: the cycle lockdep's workqueue annotations report (cf. Wu Guanghao's
    fs_reclaim --> (work_completion)(&gc->work) report on XFS)."""
    [cycle] = [w for w in runs["inodegc", seed]["warnings"] if w["kind"] == "lockdep_circular"]
    assert "(work_completion)(xfs_inodegc_worker)" in cycle["message"]
    assert {"flush_delayed_work", "xfs_inodegc_queue"} <= set(cycle["stack"])


def test_inodegc_without_its_throttle_is_lockdep_clean():
    r = run_scenario("overlay-unlink", "inodegc", 0, ["design.inodegc_shrinker_throttle=false",
                                                      "design.inodegc_backlog_throttle=false"])
    assert "lockdep_circular" not in kinds(r)
    assert r["inodes"]["evicted_in_reclaim"] == 0 and r["inodes"]["leaked"] == 0


def test_nothing_leaks(runs):
    for key, r in runs.items():
        assert r["inodes"]["leaked"] == 0, key
        assert r["invariants"]["ok"], (key, r["invariants"]["violations"][:3])
        assert r["outcome"] == "completed", key


@pytest.mark.xfail(strict=False, reason="the p99 (~850 slowest of ~85k allocations, mostly the "
                   "hog's fill) is run-queue waiting common to all designs; sync's evictions in "
                   "kswapd cost CPU only and kswapd stays ahead (README, model limits); "
                   "under sustained pressure sync's tail is the longest only where the deferred "
                   "designs hang or are OOM-killed (examples/sweep-sustained.toml)")
def test_sync_has_the_longest_allocation_tail(runs):
    def p99(design):
        return sum(runs[design, s]["alloc_latency_ns"]["p99"] for s in SEEDS) / len(SEEDS)

    assert p99("sync") > p99("inodegc")
    assert p99("sync") > p99("passive-ref")


def test_the_same_run_gives_the_same_digest(runs):
    again = run_scenario("overlay-unlink", "sync", 0)
    assert again["digest"] == runs["sync", 0]["digest"]
    assert again["events"] == runs["sync", 0]["events"]


def test_compare_json_matches_the_contract(capsys):
    assert main(["compare", "mini-overlay", "--designs", "sync,passive-ref", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["scenario"] == "mini-overlay"
    assert [r["design"] for r in out["runs"]] == ["sync", "passive-ref"]
    for r in out["runs"]:
        for key in ("scenario", "design", "seed", "outcome", "sim_time_ns", "events", "wall_s",
                    "digest", "warnings", "deadlocks", "alloc_latency_ns", "direct_reclaim",
                    "inodes", "invariants"):
            assert key in r
