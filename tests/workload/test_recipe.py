"""Recipes: load-time validation (with the step's index) and what each step records."""

from __future__ import annotations

import pytest

from reclaimlab.scenario import ScenarioError, run_scenario
from reclaimlab.scenario.loader import load_scenario
from reclaimlab.workload.recipe import check_recipe_paths

HEAD = """
[machine]
memory_mb = 64
cpus = 1

[[device]]
name = "vda"
type = "ramdisk"

[[fs]]
type = "ext4"
device = "vda"
mountpoint = "/mnt"

[[workload]]
name = "r"
kind = "recipe"
"""


def scenario_file(tmp_path, steps: str, run: str = "duration_ms = 200.0") -> str:
    path = tmp_path / "recipe.toml"
    path.write_text(HEAD + steps + f"\n[run]\n{run}\n")
    return str(path)


def load_error(tmp_path, steps: str) -> ScenarioError:
    with pytest.raises(ScenarioError) as e:
        load_scenario(scenario_file(tmp_path, steps))
    return e.value


def test_unknown_step_is_rejected_with_its_index(tmp_path):
    err = load_error(tmp_path, """
[[workload.steps]]
op = "mkdir"
path = "/mnt/a"

[[workload.steps]]
op = "chmod"
path = "/mnt/a"
""")
    assert err.key == "workload.0.steps.1.op"
    assert "'chmod'" in str(err) and "mkdir" in str(err)


def test_undefined_loop_variable_is_rejected_with_its_index(tmp_path):
    err = load_error(tmp_path, """
[[workload.steps]]
op = "mkdir"
path = "/mnt/a"

[[workload.steps]]
op = "repeat"
var = "i"
count = 2
steps = [ { op = "create", path = "/mnt/a/f{i}" },
          { op = "unlink", path = "/mnt/a/r{round}_L{i}" } ]
""")
    assert err.key == "workload.0.steps.1.steps.1"
    assert "{round}" in str(err) and "no enclosing repeat" in str(err)


def test_loop_variables_of_enclosing_repeats_and_task_are_defined(tmp_path):
    loaded = load_scenario(scenario_file(tmp_path, """
[[workload.steps]]
op = "repeat"
var = "round"
count = 2
steps = [ { op = "repeat", var = "i", count = 2, steps = [
          { op = "create", path = "/mnt/t{task}_r{round}_L{i}" } ] } ]
"""))
    assert loaded.scenario.workload[0].steps[0].steps[0].var == "i"


def test_hog_without_a_stopping_condition_is_rejected(tmp_path):
    err = load_error(tmp_path, """
[[workload.steps]]
op = "sync"

[[workload.steps]]
op = "hog"
step_kb = 1024
""")
    assert err.key.startswith("workload.0.steps.1")
    assert "stopping condition" in str(err)


def test_handle_used_before_open_is_rejected(tmp_path):
    err = load_error(tmp_path, """
[[workload.steps]]
op = "close"
handle = "fd"
""")
    assert err.key == "workload.0.steps.0.handle"
    assert "'fd'" in str(err)


def test_hog_waiting_for_an_unsaved_value_is_rejected(tmp_path):
    err = load_error(tmp_path, """
[[workload.steps]]
op = "hog"
until_bfree = "base"
until_path = "/mnt"
""")
    assert err.key == "workload.0.steps.0.until_bfree"


def test_path_outside_every_mount_is_rejected_at_load_time_with_its_index(tmp_path):
    with pytest.raises(ScenarioError, match=r"line \d+, key 'workload\.0\.steps\.1\.steps\.0': "
                                            r".*'/data/f\{i\}' is outside every mount "
                                            r"\(mounts: /mnt\)"):
        load_scenario(scenario_file(tmp_path, """
[[workload.steps]]
op = "mkdir"
path = "/mnt/a"

[[workload.steps]]
op = "repeat"
var = "i"
count = 2
steps = [ { op = "create", path = "/data/f{i}" } ]
"""))


def test_paths_under_a_mount_step_are_accepted(tmp_path):
    loaded = load_scenario(scenario_file(tmp_path, """
[[workload.steps]]
op = "mount"
fstype = "overlay"
target = "/ovl"
lowerdir = "/mnt/lower"
upperdir = "/mnt/upper"
workdir = "/mnt/work"

[[workload.steps]]
op = "stat"
path = "/ovl/x"
"""))
    check_recipe_paths(loaded.scenario)


def test_sysctl_out_of_range_is_rejected(tmp_path):
    err = load_error(tmp_path, """
[[workload.steps]]
op = "sysctl"
name = "vm.watermark_scale_factor"
value = 5000
""")
    assert err.key == "workload.0.steps.0.value"


# -- running ---------------------------------------------------------------------------

STEPS = """
[[workload.steps]]
op = "statfs"
path = "/mnt"
save = "empty"

[[workload.steps]]
op = "repeat"
var = "i"
count = 3
steps = [ { op = "mkdir", path = "/mnt/d{i}" },
          { op = "create", path = "/mnt/d{i}/f", size = 40960 } ]

[[workload.steps]]
op = "open"
path = "/mnt/d0/f"
handle = "held"

[[workload.steps]]
op = "append"
handle = "held"
size = 4096

[[workload.steps]]
op = "stat"
path = "/mnt/d0/f"

[[workload.steps]]
op = "rename"
old = "/mnt/d1/f"
new = "/mnt/d1/g"

[[workload.steps]]
op = "stat"
path = "/mnt/d1/f"
expect_error = "ENOENT"

[[workload.steps]]
op = "read"
path = "/mnt/d1/g"

[[workload.steps]]
op = "setxattr"
path = "/mnt/d1/g"
name = "user.k"
size = 32

[[workload.steps]]
op = "getxattr"
path = "/mnt/d1/g"
name = "user.k"

[[workload.steps]]
op = "sync"

[[workload.steps]]
op = "statfs"
path = "/mnt"

[[workload.steps]]
op = "unlink"
path = "/mnt/d2/f"

[[workload.steps]]
op = "rmdir"
path = "/mnt/d2"

[[workload.steps]]
op = "unlink"
path = "/mnt/nothing"

[[workload.steps]]
op = "sysctl"
name = "vm.min_free_kbytes"
value = 4096

[[workload.steps]]
op = "drop_caches"
mode = 3

[[workload.steps]]
op = "sleep"
ms = 5.0

[[workload.steps]]
op = "close"
handle = "held"
"""


@pytest.fixture(scope="module")
def steps_run(tmp_path_factory):
    path = scenario_file(tmp_path_factory.mktemp("recipe"), STEPS)
    return run_scenario(path, design="sync")


def by_op(result, op):
    return [s for s in result["recipe"][0]["steps"] if s["op"] == op]


def test_every_step_is_recorded_in_order_with_its_loop_variables(steps_run):
    log = steps_run["recipe"][0]
    assert log["task"] == "r-0" and log["completed"]
    indexes = [s["index"] for s in log["steps"]]
    assert indexes[:7] == ["0", "1.0", "1.1", "1.0", "1.1", "1.0", "1.1"]
    assert [s["loop"] for s in log["steps"][1:7:2]] == [{"i": 0}, {"i": 1}, {"i": 2}]
    starts = [s["start_ns"] for s in log["steps"]]
    assert starts == sorted(starts)
    assert all(s["ns"] >= 0 for s in log["steps"])


def test_values_read_are_recorded(steps_run):
    assert [s["value"] for s in by_op(steps_run, "create")] == [40960] * 3
    assert by_op(steps_run, "append")[0]["value"] == 4096
    assert by_op(steps_run, "stat")[0]["value"]["size"] == 45056   # appended at the end
    assert by_op(steps_run, "read")[0]["value"] == 40960
    assert by_op(steps_run, "getxattr")[0]["value"] == 32
    empty, after = [s["value"] for s in by_op(steps_run, "statfs")]
    assert empty - after >= 3 * 10   # three synced 40 KiB files hold >= 30 blocks


def test_errors_are_returned_to_the_step_and_expected_ones_marked(steps_run):
    stat_gone = by_op(steps_run, "stat")[1]
    assert stat_gone["error"] == "ENOENT" and stat_gone["expected"]
    unlinks = by_op(steps_run, "unlink")
    assert unlinks[0]["error"] is None
    assert unlinks[1]["error"] == "ENOENT" and not unlinks[1]["expected"]
    assert steps_run["workloads"]["r"]["errors"] == {"ENOENT": 1}


def test_a_recipe_run_is_deterministic(steps_run, tmp_path):
    again = run_scenario(scenario_file(tmp_path, STEPS), design="sync")
    assert again["digest"] == steps_run["digest"]
    assert again["recipe"] == steps_run["recipe"]


def test_sysctl_recomputes_the_watermarks(tmp_path):
    from reclaimlab.scenario import machine as m

    loaded = load_scenario(scenario_file(tmp_path, """
[[workload.steps]]
op = "sysctl"
name = "vm.min_free_kbytes"
value = 8192

[[workload.steps]]
op = "sysctl"
name = "vm.watermark_scale_factor"
value = 1000

[[workload.steps]]
op = "sysctl"
name = "vm.vfs_cache_pressure"
value = 500
"""))
    built = m.build_machine(loaded.scenario, "sync", 0)
    before = list(built.sim.pgdat.zone.watermark)
    m.run_machine(built)
    wmin, low, high = built.sim.pgdat.zone.watermark
    assert wmin == 8192 // 4 and wmin != before[0]
    assert low - wmin == high - low == built.sim.pgdat.zone.managed_pages * 1000 // 10000
    assert built.sim.vfs.config.vfs_cache_pressure == 500


def test_hung_task_timeout_sysctl_reaches_khungtaskd(tmp_path):
    from reclaimlab.scenario import machine as m

    loaded = load_scenario(scenario_file(tmp_path, """
[[workload.steps]]
op = "sysctl"
name = "kernel.hung_task_timeout_secs"
value = 7
"""))
    built = m.build_machine(loaded.scenario, "sync", 0)
    m.run_machine(built)
    assert built.checks.hung_task.timeout_ns == 7 * 10**9


def test_hog_stops_at_its_step_limit(tmp_path):
    result = run_scenario(scenario_file(tmp_path, """
[[workload.steps]]
op = "hog"
step_kb = 256
max_steps = 8
"""), design="sync")
    hog = by_op(result, "hog")[0]["value"]
    assert hog["stopped_by"] == "max_steps" and hog["steps"] == 8
    assert hog["peak_pages"] == 8 * 64


def test_mount_and_layer_address_the_real_upper_file(tmp_path):
    result = run_scenario(scenario_file(tmp_path, """
[[workload.steps]]
op = "mkdir"
path = "/mnt/ovl/lower"
parents = true

[[workload.steps]]
op = "repeat"
var = "d"
count = 3
steps = [ { op = "mkdir", path = "/mnt/ovl/d{d}" } ]

[[workload.steps]]
op = "mount"
fstype = "overlay"
target = "/mnt/ovl/d2"
lowerdir = "/mnt/ovl/lower"
upperdir = "/mnt/ovl/d0"
workdir = "/mnt/ovl/d1"

[[workload.steps]]
op = "create"
path = "/mnt/ovl/d2/x"
size = 4096

[[workload.steps]]
op = "stat"
path = "/mnt/ovl/d0/x"

[[workload.steps]]
op = "unlink"
path = "/mnt/ovl/d2/x"
layer = "upper"

[[workload.steps]]
op = "stat"
path = "/mnt/ovl/d0/x"
expect_error = "ENOENT"

[[workload.steps]]
op = "umount"
target = "/mnt/ovl/d2"
"""), design="sync")
    steps = result["recipe"][0]["steps"]
    assert [s["error"] for s in steps] == [None] * 8 + ["ENOENT", None]
    assert steps[6]["value"]["size"] == 4096


def test_unknown_key_of_a_nested_step_names_the_keys_it_takes(tmp_path):
    err = load_error(tmp_path, """
[[workload.steps]]
op = "repeat"
var = "i"
count = 1
steps = [ { op = "create", path = "/mnt/f{i}", sise = 4096 } ]
""")
    assert err.key == "workload.0.steps.0.steps.0.sise"
    assert "'create' step" in str(err) and "size" in str(err)


def test_tasks_run_the_recipe_concurrently_in_their_own_paths(tmp_path):
    text = HEAD.replace('name = "r"', 'name = "r"\ntasks = 2') + """
[[workload.steps]]
op = "mkdir"
path = "/mnt/t{task}"

[[workload.steps]]
op = "create"
path = "/mnt/t{task}/f"
size = 8192
fsync = true

[[workload.steps]]
op = "stat"
path = "/mnt/t{task}/f"

[run]
duration_ms = 200.0
"""
    path = tmp_path / "two.toml"
    path.write_text(text)
    result = run_scenario(str(path), design="sync")
    logs = sorted(result["recipe"], key=lambda log: log["task"])
    assert [log["task"] for log in logs] == ["r-0", "r-1"]
    assert all(s["error"] is None for log in logs for s in log["steps"])
    inos = {log["steps"][2]["value"]["ino"] for log in logs}
    assert len(inos) == 2


def test_block_filesystem_mounted_mid_run(tmp_path):
    text = HEAD.replace('[[fs]]', '[[device]]\nname = "vdb"\ntype = "ramdisk"\n\n[[fs]]', 1) + """
[[workload.steps]]
op = "mount"
fstype = "ext4"
source = "vdb"
target = "/second"

[[workload.steps]]
op = "statfs"
path = "/second"

[[workload.steps]]
op = "create"
path = "/second/g"
size = 4096
fsync = true

[[workload.steps]]
op = "statfs"
path = "/second"

[[workload.steps]]
op = "umount"
target = "/second"

[[workload.steps]]
op = "stat"
path = "/second/g"
expect_error = "ENOENT"

[run]
duration_ms = 200.0
"""
    path = tmp_path / "second.toml"
    path.write_text(text)
    check_recipe_paths(load_scenario(str(path)).scenario)
    steps = run_scenario(str(path), design="sync")["recipe"][0]["steps"]
    assert [s["error"] for s in steps] == [None] * 5 + ["ENOENT"]
    assert steps[1]["value"] - steps[3]["value"] == 1      # one 4 KiB block


class Stuck(Exception):
    """The simulation made no progress within the host-time guard."""


def host_time_guard(seconds: int):
    """Turn a simulation stuck in one event (no virtual time passing) into a test failure."""
    import signal

    def stuck(*_):
        raise Stuck(f"no progress within {seconds} s of host time")

    signal.signal(signal.SIGALRM, stuck)
    signal.alarm(seconds)
    return lambda: signal.alarm(0)


def test_drop_caches_evicts_in_the_writers_context(tmp_path):
    from reclaimlab.scenario import machine as m

    loaded = load_scenario(scenario_file(tmp_path, """
[[workload.steps]]
op = "repeat"
var = "i"
count = 64
steps = [ { op = "create", path = "/mnt/f{i}", size = 4096 } ]

[[workload.steps]]
op = "sync"

[[workload.steps]]
op = "drop_caches"
mode = 2
"""))
    built = m.build_machine(loaded.scenario, "sync", 0)
    evicted_by: list[str] = []

    class Evictions:
        def event(self, kind, task, obj, info):
            if kind == "inode_evicted":
                evicted_by.append(task.comm if task is not None else "")

    built.sim.add_observer(Evictions())
    cancel = host_time_guard(10)
    try:
        m.run_machine(built)
    finally:
        cancel()
    assert evicted_by.count("r-0") >= 64         # the writer itself, before shutdown
    assert "kswapd0" not in evicted_by
