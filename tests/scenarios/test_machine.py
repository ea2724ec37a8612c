"""The machine builder: what a scenario turns into, and how a run starts and ends."""

from __future__ import annotations

import textwrap
from collections import Counter

import pytest

from reclaimlab.scenario import load_scenario, run_scenario
from reclaimlab.scenario.machine import build_machine, mount_options, run_machine
from reclaimlab.sim import NSEC_PER_MSEC, Completion, wait_for_completion

SMALL = """\
    description = "a small ext4 machine"
    [machine]
    memory_mb = 64
    cpus = 2
    [[device]]
    name = "nvme0"
    size_mb = 1024
    [[fs]]
    type = "ext4"
    device = "nvme0"
    mountpoint = "/data"
    journal_mb = 8
    [[workload]]
    name = "churn"
    kind = "create_unlink"
    dir = "/data/w"
    tasks = 2
    files_per_dir = 4
    think_us = 200.0
    [[workload]]
    name = "late"
    kind = "periodic"
    op = "statfs"
    path = "/data"
    interval_ms = 2.0
    start_ms = 10.0
    stop_ms = 20.0
    [run]
    duration_ms = 25.0
"""


@pytest.fixture
def small(tmp_path):
    path = tmp_path / "small.toml"
    path.write_text(textwrap.dedent(SMALL))
    return str(path)


def test_machine_matches_the_scenario(small):
    sc = load_scenario(small).scenario
    m = build_machine(sc, "passive-ref", seed=3)
    assert m.sim.ncpus == 2 and m.sim.seed == 3
    assert m.sim.pgdat.nr_pages == 64 * 256
    assert m.sim.vfs.design == "passive-ref"
    assert m.sim.disks["nvme0"].nr_sectors == 1024 * 2048
    assert m.stop_ns == 25 * NSEC_PER_MSEC
    assert list(m.groups) == ["churn", "late"]


def test_mount_options_carry_the_fs_keys():
    sc = load_scenario("bs-gt-ps", ["fs.0.tunables={mb_prealloc_blocks = 64}"]).scenario
    opts = mount_options(sc.fs[0])
    assert opts["block_size"] == 16384 and opts["journal_mb"] == 64
    assert opts["tunables"] == {"mb_prealloc_blocks": 64} and opts["lazytime"] is False


def test_run_mounts_works_stops_and_unmounts(small):
    sc = load_scenario(small).scenario
    m = build_machine(sc, "sync", seed=0)
    run_machine(m)
    assert all(t.state == "X" for t in m.workload_tasks)
    assert m.shutdown_task is not None and m.shutdown_task.state == "X"
    assert m.sim.vfs.mounts == {}
    churn, late = m.groups["churn"], m.groups["late"]
    assert churn.ops > 0 and churn.errors == {}
    assert 10 * NSEC_PER_MSEC <= late.first_op_ns and late.last_op_ns <= 20 * NSEC_PER_MSEC
    assert late.ops == 4  # at 12, 14, 16 and 18 ms: the one due at 20 ms is at the stop time


def test_result_has_the_contract_fields_and_workload_counters(small):
    r = run_scenario(small, "inodegc", 1)
    assert (r["scenario"], r["design"], r["seed"]) == ("small", "inodegc", 1)
    assert r["outcome"] == "completed" and r["inodes"]["leaked"] == 0
    assert r["invariants"]["ok"], r["invariants"]["violations"][:3]
    assert r["workloads"]["churn"]["tasks"] == 2 and r["workloads"]["churn"]["ops"] > 0


def test_same_inputs_same_digest_and_the_seed_matters(small):
    a = run_scenario(small, "sync", 0)
    b = run_scenario(small, "sync", 0)
    assert a["digest"] == b["digest"] and a["events"] == b["events"]
    assert run_scenario(small, "sync", 0, ["workload.churn.tasks=3"])["digest"] != a["digest"]


def test_event_budget_ends_the_run_as_timeout(small):
    r = run_scenario(small, "sync", 0, ["run.max_events=1000"])
    assert r["outcome"] == "timeout"


def test_design_knobs_reach_the_inodegc_machinery(small):
    sc = load_scenario(small, ["design.inodegc_max_backlog=7",
                               "design.inodegc_delay_jiffies=3"]).scenario
    m = build_machine(sc, "inodegc", seed=0)
    m.sim.run(until=NSEC_PER_MSEC)  # init has mounted /data
    (sb,) = m.sim.vfs.super_blocks
    config = sb.s_fs_info.s_inodegc.config
    assert (config.max_backlog, config.delay_jiffies) == (7, 3)


class DirLocks:
    """How often each task takes each directory's i_rwsem for writing."""

    def __init__(self) -> None:
        self.by_task: dict[str, Counter] = {}

    def event(self, kind, task, obj, info) -> None:
        if kind == "lock_acquire" and not info["read"] and "i_mutex_dir_key" in obj.name:
            self.by_task.setdefault(task.comm, Counter())[id(obj)] += 1

    def working_dir(self, comm: str) -> int:
        """The directory the task creates and unlinks in (not the ancestors mkdir -p took)."""
        return self.by_task[comm].most_common(1)[0][0]


@pytest.mark.parametrize("shared", [False, True])
def test_create_unlink_shared_dir_puts_every_task_in_one_directory(small, shared):
    sc = load_scenario(small, [f"workload.churn.shared_dir={str(shared).lower()}"]).scenario
    seen = DirLocks()
    m = build_machine(sc, "sync", seed=0, observers=[seen])
    run_machine(m)
    m.sim.close()
    assert m.groups["churn"].errors == {}  # the tasks' file names never collide
    # aim7's shape: both contend on the same directory lock
    assert (seen.working_dir("churn-0") == seen.working_dir("churn-1")) == shared


@pytest.mark.parametrize("panic", [True, False])
def test_hung_task_panic_ends_the_run_at_the_first_report(small, panic):
    sc = load_scenario(small, ["run.hung_task_timeout_s=0.005",
                               f"run.hung_task_panic={'true' if panic else 'false'}"]).scenario
    m = build_machine(sc, "sync", seed=0)
    never = Completion()

    def stuck():
        yield from wait_for_completion(never)

    m.sim.spawn(stuck(), "stuck")
    run_machine(m)
    reports = [f for f in m.checks.findings if f.kind == "hung_task"]
    assert reports and reports[0].task.startswith("stuck:")
    if panic:
        assert m.sim.now < 6 * NSEC_PER_MSEC and m.shutdown_task is None
    else:
        assert m.sim.now >= 25 * NSEC_PER_MSEC and m.shutdown_task.state == "X"
