"""Must-show: lockdep reports validation.md's D1 cycle (syzbot 1422c4a798761a48ea4f:
``fs_reclaim --> jbd2_handle --> &ei->xattr_sem``) on the overlay + ext4-like workload under
``sync``, whether or not the run itself deadlocks.

lockdep reports a cycle at the acquisition that closes it, so which edge closes it — and thus
the "Chain exists of:" line — depends on the order the workload happens to create the edges
(syzbot saw the unlink's allocation under xattr_sem close it; here kswapd's journal start may).
What must hold is the cycle itself: through fs_reclaim, then the journal handle, then xattr_sem.
"""

from reclaimlab.scenario import run_scenario

# a shorter run of the built-in scenario: the D1 edges all appear in its first 200 ms
OVERRIDES = ["run.duration_ms=200"]
D1 = ("fs_reclaim", "jbd2_handle", "&ei->xattr_sem")


def in_cyclic_order(cycle: list[str], classes: tuple[str, ...]) -> bool:
    """Whether ``classes`` all lie on ``cycle``, in this order going around it."""
    if not all(c in cycle for c in classes):
        return False
    start = cycle.index(classes[0])
    around = cycle[start:] + cycle[:start]
    positions = [around.index(c) for c in classes]
    return positions == sorted(positions)


def test_in_cyclic_order():
    assert in_cyclic_order(["jbd2_handle", "&ei->xattr_sem", "fs_reclaim", "sb_internal"], D1)
    assert not in_cyclic_order(["jbd2_handle", "fs_reclaim", "&ei->xattr_sem"], D1)
    assert not in_cyclic_order(["jbd2_handle", "fs_reclaim"], D1)


def test_d1_cycle_through_fs_reclaim_is_reported_on_overlay_over_ext4_under_sync():
    result = run_scenario("overlay-unlink", "sync", 1, OVERRIDES)
    cycles = []
    for w in result["warnings"]:
        if w["kind"] == "lockdep_circular":
            # "possible circular locking dependency: A --> B --> C --> A (…)"
            chain = w["message"].split(": ", 1)[1].split(" (", 1)[0].split(" --> ")
            cycles.append(chain[:-1])
    assert any(in_cyclic_order(c, D1) for c in cycles), cycles
    lines = [line.split("] ", 1)[1] for line in result["dmesg"].splitlines()]
    assert "WARNING: possible circular locking dependency detected" in lines
    assert any(line.startswith("Chain exists of:") for line in lines)
