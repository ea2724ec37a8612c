"""One registry of designs (vfs/designs.py) that the CLI, the scenario validation, the VFS
configuration and the documentation all read."""

from __future__ import annotations

import json
import re
from dataclasses import fields
from pathlib import Path

import pytest

from reclaimlab.cli import main
from reclaimlab.scenario import ScenarioError, load_scenario
from reclaimlab.scenario.models import DESIGNS as SCENARIO_DESIGNS
from reclaimlab.scenario.models import Design
from reclaimlab.vfs.designs import DESIGN_NAMES, EVICT_DESIGNS
from reclaimlab.vfs.state import DESIGNS as VFS_DESIGNS
from reclaimlab.vfs.state import VfsConfig

ROOT = Path(__file__).resolve().parents[2]
PROPOSED = ("evict-async", "deferred-reclaim", "skip-unlinked", "split-evict", "nofail-drop")
KNOBS = ("evict_async_delay_jiffies", "split_evict_delay_jiffies",
         "deferred_reclaim_delay_jiffies", "deferred_reclaim_list_limit",
         "deferred_reclaim_throttle_factor")


def test_every_proposed_design_is_registered_with_its_source():
    for name in PROPOSED:
        d = EVICT_DESIGNS[name]
        assert d.summary and d.mechanism and d.source
    assert "Z_RZFrlPArdj9d-5@dread.disaster.area" in EVICT_DESIGNS["evict-async"].source
    assert "20260429174850.18223-1-jack@suse.cz" in EVICT_DESIGNS["deferred-reclaim"].source


def test_the_cli_the_scenarios_and_the_vfs_read_the_registry():
    assert SCENARIO_DESIGNS == VFS_DESIGNS == DESIGN_NAMES


def test_list_shows_every_design_with_description_and_source(capsys):
    assert main(["list", "--json"]) == 0
    listed = {d["name"]: d["description"] for d in json.loads(capsys.readouterr().out)["designs"]}
    assert list(listed) == list(DESIGN_NAMES)
    for name, d in EVICT_DESIGNS.items():
        assert d.summary in listed[name] and d.source in listed[name]


@pytest.mark.parametrize("name", PROPOSED)
def test_scenarios_and_the_vfs_accept_each_design(name):
    assert load_scenario("overlay-unlink", [f"design.name={name}"]).scenario.design.name == name
    assert VfsConfig(design=name).design == name


def test_an_unknown_design_is_a_user_error():
    with pytest.raises(ScenarioError):
        load_scenario("overlay-unlink", ["design.name=evict-later"])
    with pytest.raises(ValueError):
        VfsConfig(design="evict-later")
    assert main(["compare", "overlay-unlink", "--designs", "sync,evict-later"]) == 2


def test_run_and_compare_offer_every_design():
    from reclaimlab.cli import build_parser, parse_designs
    assert parse_designs(",".join(PROPOSED)) == list(PROPOSED)
    run = build_parser()._subparsers._group_actions[0].choices["run"]
    design = next(a for a in run._actions if a.dest == "design")
    assert tuple(design.choices) == DESIGN_NAMES


def test_knob_defaults_agree_and_are_documented():
    vfs_defaults = {f.name: f.default for f in fields(VfsConfig)}
    scenario_doc = (ROOT / "docs" / "scenario.md").read_text()
    readme = (ROOT / "README.md").read_text()
    for knob in KNOBS:
        assert Design.model_fields[knob].default == vfs_defaults[knob]
        assert f"`{knob}`" in scenario_doc and f"`{knob}`" in readme


def test_negative_knobs_are_rejected():
    with pytest.raises(ValueError):
        VfsConfig(deferred_reclaim_list_limit=-1)
    with pytest.raises(ScenarioError):
        load_scenario("overlay-unlink", ["design.deferred_reclaim_throttle_factor=-1.0"])


def test_designs_doc_has_a_generated_table_and_a_section_per_design():
    doc = (ROOT / "docs" / "designs.md").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "docs/designs.md" in readme
    for name in DESIGN_NAMES:
        block = re.search(rf"<!-- BEGIN GENERATED: design {re.escape(name)} -->\n(.*?)"
                          rf"<!-- END GENERATED: design {re.escape(name)} -->", doc, re.S)
        assert block is not None, name
        assert "| scenario |" in block.group(1), f"{name}: table not generated"
        assert f"`{name}`" in readme
    for name in PROPOSED:
        assert re.search(rf"^## `{re.escape(name)}`", doc, re.M), name
        assert EVICT_DESIGNS[name].source.split(",")[0] in doc
