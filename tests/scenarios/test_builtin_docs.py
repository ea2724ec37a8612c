"""Built-in scenarios say what they reproduce; the reference page documents every key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from reclaimlab.scenario import models
from reclaimlab.scenario.loader import builtin_dir, builtin_names
from reclaimlab.workload import specs

ROOT = Path(__file__).resolve().parents[2]
VALIDATION_CASES = {"overlay-unlink": ["W1", "D1"], "nofail-reclaim": ["W2/W4"],
                    "bs-gt-ps": ["bs>PS"], "xfs-reclaim-latency": ["L1", "L2"],
                    "rm-rf": ["T1", "T2"], "mini-overlay": ["W1"]}


@pytest.mark.parametrize("name", sorted(VALIDATION_CASES))
def test_builtin_opens_with_a_comment_citing_its_validation_case(name):
    text = (builtin_dir() / f"{name}.toml").read_text()
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    assert header.startswith(f"# {name}")
    assert "validation.md" in header and "What to expect" in header
    for case in VALIDATION_CASES[name]:
        assert case in header


def test_builtins_never_describe_an_outcome_as_configuration():
    """Scenario keys describe machines and workloads; outcomes appear only in comments."""
    for name in builtin_names():
        body = [line for line in (builtin_dir() / f"{name}.toml").read_text().splitlines()
                if not line.startswith("#")]
        assert not any(re.search(r"nofail|lockdep|warn|deadlock|evict", line) for line in body
                       if not line.startswith("description")), name


def all_models() -> list[type[BaseModel]]:
    return [models.Machine, models.Device, models.Ext4Fs, models.XfsFs, models.OverlayFs,
            models.Design, models.Run, *specs.WorkloadSpec.__origin__.__args__]


def test_reference_page_documents_every_key():
    doc = (ROOT / "docs" / "scenario.md").read_text()
    for model in all_models():
        for key in model.model_fields:
            assert f"`{key}`" in doc, f"{model.__name__}.{key} is not in docs/scenario.md"
    for model in specs.WorkloadSpec.__origin__.__args__:
        assert f"`{model.model_fields['kind'].annotation.__args__[0]}`" in doc
