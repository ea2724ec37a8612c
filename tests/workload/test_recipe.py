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
steps = [ { op = "create", path = "/mnt/a/f{i}" }, { op = "unlink", path = "/mnt/a/r{round}_L{i}" } ]
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


def test_path_outside_every_mount_is_rejected_with_its_index(tmp_path):
    loaded = load_scenario(scenario_file(tmp_path, """
[[workload.steps]]
op = "mkdir"
path = "/mnt/a"

[[workload.steps]]
op = "repeat"
var = "i"
count = 2
steps = [ { op = "create", path = "/data/f{i}" } ]
"""))
    with pytest.raises(ValueError, match=r"workload\.0\.steps\.1\.steps\.0: .*'/data/f\{i\}' "
                                         r"is outside every mount \(mounts: /mnt\)"):
        check_recipe_paths(loaded.scenario)


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
    creates = [s for s in by_op(steps_run, "create")]
    assert [s["value"] for s in creates] == [40960] * 3
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
