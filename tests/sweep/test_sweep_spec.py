"""Sweep files: validation with errors naming file and key, and the run matrix they expand to."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reclaimlab.sweep.spec import (SweepError, check_configs, format_value, load_sweep,
                                   sweep_from_dict)

BASE = {"base": "overlay-unlink"}


def test_matrix_is_designs_times_seeds_times_product_of_axes():
    sweep = sweep_from_dict({**BASE, "designs": ["sync", "inodegc", "passive-ref"], "seeds": 4,
                             "axes": {"machine.memory_mb": [256, 512, 1024],
                                      "workload.unlinkers.tasks": [1, 8]}})
    runs = sweep.matrix()
    assert len(runs) == 3 * 4 * 3 * 2
    assert len({r.key for r in runs}) == len(runs)
    assert {r.seed for r in runs} == {0, 1, 2, 3}
    assert {r.design for r in runs} == {"sync", "inodegc", "passive-ref"}
    assert {dict(r.config)["machine.memory_mb"] for r in runs} == {256, 512, 1024}


def test_seed_list_is_taken_as_given():
    runs = sweep_from_dict({**BASE, "designs": ["sync"], "seeds": [7, 3]}).matrix()
    assert [r.seed for r in runs] == [7, 3]


def test_default_is_the_four_interface_designs_one_seed_no_axes():
    runs = sweep_from_dict(BASE).matrix()
    assert [r.design for r in runs] == ["native", "sync", "inodegc", "passive-ref"]
    assert [r.seed for r in runs] == [0, 0, 0, 0]
    assert runs[0].overrides() == []


def test_any_design_of_the_registry_may_be_swept():
    from reclaimlab.vfs.designs import DESIGN_NAMES
    runs = sweep_from_dict({**BASE, "designs": list(DESIGN_NAMES)}).matrix()
    assert [r.design for r in runs] == list(DESIGN_NAMES)
    with pytest.raises(SweepError, match="designs"):
        sweep_from_dict({**BASE, "designs": ["inline"]})


def test_range_includes_stop_and_float_steps_do_not_drift():
    sweep = sweep_from_dict({**BASE, "designs": ["sync"], "axes": {
        "machine.memory_mb": {"start": 256, "stop": 1024, "step": 256},
        "design.x": {"start": 0.1, "stop": 0.3, "step": 0.1},
        "run.duration_ms": {"start": 30, "stop": 10, "step": -10}}})
    values = {k: sorted({dict(r.config)[k] for r in sweep.matrix()}) for k in sweep.axis_keys}
    assert values == {"machine.memory_mb": [256, 512, 768, 1024], "design.x": [0.1, 0.2, 0.3],
                      "run.duration_ms": [10, 20, 30]}


def test_config_hash_covers_overrides_not_design_or_seed():
    sweep = sweep_from_dict({**BASE, "designs": ["sync", "inodegc"], "seeds": 2,
                             "axes": {"machine.memory_mb": [256, 512]}})
    by_hash: dict[str, set] = {}
    for r in sweep.matrix():
        by_hash.setdefault(r.config_hash, set()).add(dict(r.config)["machine.memory_mb"])
    assert sorted(by_hash.values(), key=min) == [{256}, {512}]


def test_config_hash_does_not_depend_on_key_order():
    a = sweep_from_dict({**BASE, "axes": {"a.x": [1], "b.y": [2]}}).matrix()[0]
    b = sweep_from_dict({**BASE, "axes": {"b.y": [2], "a.x": [1]}}).matrix()[0]
    assert a.config_hash == b.config_hash


def test_fixed_keys_are_overrides_of_every_run():
    runs = sweep_from_dict({**BASE, "designs": ["sync"], "set": {"machine.cpus": 4},
                            "axes": {"machine.memory_mb": [256, 512]}}).matrix()
    assert [r.overrides() for r in runs] == [["machine.cpus=4", "machine.memory_mb=256"],
                                             ["machine.cpus=4", "machine.memory_mb=512"]]


def test_sample_is_a_seeded_subset_in_matrix_order():
    spec = {**BASE, "seeds": 10, "axes": {"machine.memory_mb": [256, 512, 1024]}}
    full = sweep_from_dict(spec).matrix()
    sample = sweep_from_dict({**spec, "sample": {"n": 20, "seed": 5}}).matrix()
    again = sweep_from_dict({**spec, "sample": {"n": 20, "seed": 5}}).matrix()
    other = sweep_from_dict({**spec, "sample": {"n": 20, "seed": 6}}).matrix()
    assert len(sample) == 20 and sample == again and sample != other
    positions = [full.index(r) for r in sample]
    assert positions == sorted(positions)


def test_base_path_is_relative_to_the_sweep_file_and_hashed_by_content(write_sweep, tmp_path):
    scenario = tmp_path / "mine.toml"
    scenario.write_text("[machine]\nmemory_mb = 512\n")
    path = write_sweep('base = "mine.toml"\ndesigns = ["sync"]\n')
    first = load_sweep(path).matrix()[0]
    assert first.scenario == str(scenario)
    scenario.write_text("[machine]\nmemory_mb = 1024\n")
    assert load_sweep(path).matrix()[0].config_hash != first.config_hash


@pytest.mark.parametrize("text, key, words", [
    ('base = "x"\nseeds = 0\n', "'seeds'", "positive count"),
    ('base = "x"\nseeds = [1, 1]\n', "'seeds'", "must not repeat"),
    ('base = "x"\ndesigns = ["bogus"]\n', "'designs.0'", "'native'"),
    ('base = "x"\n[axes]\n"machine.memory_mb" = {start = 1, stop = 5, step = 0}\n',
     '\'axes."machine.memory_mb"\'', "step must not be 0"),
    ('base = "x"\n[axes]\n"machine.memory_mb" = {start = 1, stop = 5}\n',
     '\'axes."machine.memory_mb".step\'', "Field required"),
    ('base = "x"\n[axes]\n"machine.memory_mb" = {start = 5, stop = 1, step = 1}\n',
     '\'axes."machine.memory_mb"\'', "never gets from"),
    ('base = "x"\n[axes]\n"machine.memory_mb" = []\n', '\'axes."machine.memory_mb"\'',
     "at least 1"),
    ('base = "x"\n[axes]\n"machine.memory_mb" = [1, 1]\n', '\'axes."machine.memory_mb"\'',
     "must not repeat"),
    ('base = "x"\n[axes]\n"machine.memory_mb" = [1, [2]]\n', '\'axes."machine.memory_mb".1\'',
     "boolean, number or string"),
    ('base = "x"\n[axes]\n"bad key" = [1]\n', "'axes'", "dotted scenario key"),
    ('base = "x"\n[axes]\nseed = [1]\n', "'axes'", "result column"),
    ('base = "x"\naxez = 1\n', "'axez'", "Extra inputs"),
    ('seeds = 1\n', "'base'", "Field required"),
    ('base = "missing.toml"\n', "'base'", "cannot read scenario file"),
])
def test_errors_name_the_file_and_the_key(write_sweep, text, key, words):
    path = write_sweep(text)
    with pytest.raises(SweepError) as info:
        load_sweep(path)
    message = str(info.value)
    assert str(path) in message and key in message and words in message


def test_toml_syntax_error_names_the_file(write_sweep):
    path = write_sweep("base = \n")
    with pytest.raises(SweepError, match="not valid TOML"):
        load_sweep(path)


def test_a_matrix_too_large_is_refused_before_expansion():
    with pytest.raises(SweepError, match="at most"):
        sweep_from_dict({**BASE, "seeds": 1000, "axes": {
            "a.x": {"start": 0, "stop": 999, "step": 1},
            "b.y": {"start": 0, "stop": 9, "step": 1}}})


@given(st.one_of(st.booleans(), st.integers(-(2**63), 2**63 - 1),
                 st.floats(allow_nan=False), st.text(st.characters(blacklist_categories=("Cs",)))))
def test_override_values_read_back_as_toml_with_their_type(value):
    parsed = tomllib.loads(f"v = {format_value(value)}")["v"]
    assert parsed == value and type(parsed) is type(value)


@given(st.lists(st.sampled_from(["sync", "inodegc", "passive-ref", "native"]), min_size=1,
                max_size=4, unique=True),
       st.integers(1, 4),
       st.dictionaries(st.sampled_from(["machine.memory_mb", "machine.cpus", "fs.0.block_size"]),
                       st.lists(st.integers(1, 10_000), min_size=1, max_size=4, unique=True),
                       max_size=3))
def test_every_matrix_point_is_one_distinct_run(designs, seeds, axes):
    runs = sweep_from_dict({**BASE, "designs": designs, "seeds": seeds, "axes": axes}).matrix()
    expected = len(designs) * seeds
    for values in axes.values():
        expected *= len(values)
    assert len(runs) == expected == len({r.key for r in runs})
    points = {tuple(sorted(r.config)) for r in runs}
    assert len(points) == expected // (len(designs) * seeds)
    assert len({r.config_hash for r in runs}) == len(points)


def test_the_shipped_example_sweep_loads_with_its_scenario_beside_it():
    sweep = load_sweep(Path(__file__).resolve().parents[2] / "examples" / "sweep-sustained.toml")
    check_configs(sweep)
    assert len(sweep.matrix()) == 3 * 3 * 2 * 2 * 3 * 2
