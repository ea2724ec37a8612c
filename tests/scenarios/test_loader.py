"""Scenario files and --set overrides: what is accepted, and how mistakes are reported."""

from __future__ import annotations

import textwrap

import pytest

from reclaimlab.scenario.errors import ScenarioError
from reclaimlab.scenario.loader import builtin_names, load_scenario, parse_override
from reclaimlab.workload.specs import AnonHog, ContainerChurn

BASE = """\
    [machine]
    memory_mb = 512

    [[device]]
    name = "nvme0"

    [[fs]]
    type = "ext4"
    device = "nvme0"
    mountpoint = "/data"

    [[workload]]
    name = "unlinkers"
    kind = "container_churn"
    base = "/data/c"

    [[workload]]
    name = "hog"
    kind = "anon_hog"
    target_mb = 400
"""


@pytest.fixture
def scenario_file(tmp_path):
    def write(text: str = BASE, name: str = "s.toml"):
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return str(path)
    return write


def error_of(source: str, overrides=()) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        load_scenario(source, overrides)
    return info.value


def test_defaults_are_the_kernels(scenario_file):
    s = load_scenario(scenario_file()).scenario
    assert s.machine.page_size == 4096
    assert s.machine.vfs_cache_pressure == 100
    assert s.machine.watermark_scale_factor == 10
    assert s.machine.kernel_version == "6.12"
    assert s.run.hung_task_timeout_s == 120.0
    assert s.design.name == "native"
    assert s.design.inodegc_queue_depth == 32 and s.design.inodegc_max_backlog == 256
    assert s.fs[0].block_size == 4096 and s.fs[0].commit_s == 5.0


def test_workload_kinds_are_typed(scenario_file):
    s = load_scenario(scenario_file()).scenario
    assert isinstance(s.workload[0], ContainerChurn)
    assert isinstance(s.workload[1], AnonHog) and s.workload[1].target_mb == 400


@pytest.mark.parametrize("item, path, value", [
    ("machine.memory_mb=512", ["machine", "memory_mb"], 512),
    ("design.name=sync", ["design", "name"], "sync"),
    ('design.name="sync"', ["design", "name"], "sync"),
    ("workload.hog.cpus=[0, 1]", ["workload", "hog", "cpus"], [0, 1]),
    ("run.duration_ms=2.5", ["run", "duration_ms"], 2.5),
    ("fs.0.lazytime=true", ["fs", "0", "lazytime"], True),
])
def test_override_values_are_toml_scalars(item, path, value):
    assert parse_override(item) == (path, value)


def test_overrides_by_index_and_by_group_name(scenario_file):
    s = load_scenario(scenario_file(), ["fs.0.block_size=65536", "workload.unlinkers.tasks=8",
                                        "machine.memory_mb=1024", "design.name=passive-ref"])
    assert s.scenario.fs[0].block_size == 65536
    assert s.scenario.workload[0].tasks == 8
    assert s.scenario.machine.memory_mb == 1024
    assert s.scenario.design.name == "passive-ref"


def test_override_may_add_a_key_the_file_leaves_to_its_default(scenario_file):
    s = load_scenario(scenario_file(), ["run.seed=7"])
    assert s.scenario.run.seed == 7


def test_unknown_key_names_file_line_key_and_the_allowed_keys(scenario_file):
    path = scenario_file(BASE + "    bogus = 1\n")
    e = error_of(path)
    assert e.source == path and e.key == "workload.1.bogus" and e.line == 21
    assert "unknown key" in str(e) and "target_mb" in str(e)


def test_wrong_type_is_reported_with_the_value(scenario_file):
    e = error_of(scenario_file(BASE.replace("memory_mb = 512", 'memory_mb = "512"')))
    assert e.key == "machine.memory_mb" and e.line == 2
    assert "integer" in str(e) and "'512'" in str(e)


def test_impossible_values_are_refused(scenario_file):
    assert error_of(scenario_file(), ["fs.0.block_size=3000"]).key == "fs.0.block_size"
    assert error_of(scenario_file(), ["machine.page_size=8192"]).key == "machine.page_size"
    assert error_of(scenario_file(), ["run.duration_ms=-1"]).key == "run.duration_ms"
    assert error_of(scenario_file(), ["run.duration_ms=nan"]).key == "run.duration_ms"
    assert error_of(scenario_file(), ["design.name=lazy"]).key == "design.name"


def test_cross_references_are_checked(scenario_file):
    e = error_of(scenario_file(), ["fs.0.device=sda"])
    assert e.key == "fs.0.device" and "nvme0" in str(e)
    e = error_of(scenario_file(), ["workload.hog.cpus=[5]"])
    assert e.key == "workload.1.cpus" and "machine.cpus" in str(e)


def test_errors_from_an_override_name_the_override(scenario_file):
    e = error_of(scenario_file(), ["workload.unlinkers.tasks=0"])
    assert e.source == "--set workload.unlinkers.tasks=0" and e.key == "workload.0.tasks"


def test_unknown_kind_or_fs_type_lists_the_choices(scenario_file):
    e = error_of(scenario_file(), ["fs.0.type=zfs"])
    assert e.key == "fs.0.type" and "'ext4', 'xfs', 'overlay'" in str(e)
    e = error_of(scenario_file(), ["workload.hog.kind=fork_bomb"])
    assert e.key == "workload.1.kind" and "anon_hog" in str(e)


def test_bad_override_paths(scenario_file):
    assert "out of range" in str(error_of(scenario_file(), ["fs.3.block_size=4096"]))
    assert "no [[workload]] entry named 'nope'" in str(
        error_of(scenario_file(), ["workload.nope.tasks=2"]))
    assert "KEY=VALUE" in str(error_of(scenario_file(), ["machine.memory_mb"]))
    assert "not a table" in str(error_of(scenario_file(), ["machine.memory_mb.x=1"]))


def test_unknown_gfp_flag_is_refused(scenario_file):
    e = error_of(scenario_file(), ["workload.hog.gfp=GFP_KERNEL|__GFP_MAGIC"])
    assert e.key == "workload.1.gfp" and "__GFP_MAGIC" in str(e)


def test_missing_file_and_syntax_error(scenario_file, tmp_path):
    e = error_of(str(tmp_path / "nope.toml"))
    assert "no such file" in str(e) and "overlay-unlink" in str(e)
    e = error_of(scenario_file("[machine]\nmemory_mb = = 3\n"))
    assert e.line == 2 and "TOML syntax error" in str(e)


def test_required_keys(scenario_file):
    e = error_of(scenario_file(BASE.replace("    target_mb = 400\n", "")))
    assert e.key == "workload.1.target_mb" and "exactly one of target_mb and leave_available_mb" in str(e)


def test_every_builtin_loads():
    assert builtin_names() == sorted(["overlay-unlink", "nofail-reclaim", "bs-gt-ps",
                                      "xfs-reclaim-latency", "rm-rf", "mini-overlay"])
    for name in builtin_names():
        s = load_scenario(name).scenario
        assert s.description and s.workload and s.fs
