"""Must-show: lockdep reports validation.md's D1 chain (syzbot 1422c4a798761a48ea4f) on the
overlay + ext4-like workload under ``sync``, whether or not the run itself deadlocks."""

from reclaimlab.scenario import run_scenario

# a shorter run of the built-in scenario: the D1 edges appear within the first few hundred ms
OVERRIDES = ["run.duration_ms=500"]


def test_d1_chain_through_fs_reclaim_is_reported_on_overlay_over_ext4_under_sync():
    result = run_scenario("overlay-unlink", "sync", 1, OVERRIDES)
    circular = [w for w in result["warnings"] if w["kind"] == "lockdep_circular"]
    assert circular, result["dmesg"][:2000]
    lines = [line.split("] ", 1)[1] for line in result["dmesg"].splitlines()]
    chains = [lines[i + 1] for i, line in enumerate(lines) if line == "Chain exists of:"]
    assert "  fs_reclaim --> jbd2_handle --> &ei->xattr_sem" in chains, chains
