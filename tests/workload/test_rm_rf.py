"""``rm_rf``: the removal's op times, and ``sync_after`` timing ``rm -rf && sync``."""

from __future__ import annotations

from reclaimlab.scenario import machine as m
from reclaimlab.scenario.loader import load_scenario

SMALL = ["workload.removers.depth=2", "workload.removers.files_per_dir=8",
         "workload.removers.start_ms=1", "workload.hog.leave_available_mb=200",
         "run.duration_ms=200"]


class EvictionTimes:
    def __init__(self) -> None:
        self.times: list[int] = []
        self.sim = None

    def event(self, kind, task, obj, info) -> None:
        if kind == "inode_evicted" and obj.i_nlink == 0:  # a removed inode, not unmount's
            self.times.append(self.sim.now)


def removal(design: str, sync_after: bool) -> tuple[dict, list[int]]:
    sc = load_scenario("rm-rf", SMALL + [f"workload.removers.sync_after={str(sync_after).lower()}"])
    seen = EvictionTimes()
    built = m.build_machine(sc.scenario, design, 0, observers=[seen])
    seen.sim = built.sim
    m.run_machine(built)
    result = m.collect(built, "rm-rf", 0, 0.0)
    built.sim.close()
    return result["workloads"]["removers"], seen.times


def test_sync_after_times_the_removal_until_deferred_evictions_are_done():
    plain, evictions = removal("inodegc", sync_after=False)
    synced, evictions_synced = removal("inodegc", sync_after=True)
    # without the sync, rm -rf returns while inodegc workers still inactivate its inodes
    assert max(evictions) > plain["last_op_ns"]
    # with it, the measured removal covers every eviction the removal caused
    removed = [t for t in evictions_synced if t >= synced["first_op_ns"]]
    assert len(removed) >= synced["ops"] // 2 and max(removed) <= synced["last_op_ns"]
    assert synced["ops"] == plain["ops"] + synced["tasks"]  # one sync per remover
