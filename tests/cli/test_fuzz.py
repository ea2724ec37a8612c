"""Fuzzing the loader: whatever TOML document and --set values a user gives, the answer is a
validated scenario or one ScenarioError with a message -- never another exception."""

from __future__ import annotations

import json
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reclaimlab.cli import main
from reclaimlab.scenario.errors import ScenarioError
from reclaimlab.scenario.loader import load_scenario

KEYS = ["machine", "device", "fs", "design", "workload", "run", "memory_mb", "cpus", "name",
        "type", "mountpoint", "block_size", "kind", "tasks", "target_mb", "dir", "base",
        "duration_ms", "seed", "page_size", "lazytime", "tunables", "gfp", "cpus", "bogus"]
SCALARS = st.one_of(
    st.integers(min_value=-2**63, max_value=2**63 - 1), st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["ext4", "xfs", "overlay", "nvme0", "/data", "anon_hog", "sync", "rm_rf",
                     "GFP_KERNEL|__GFP_NOFAIL", "4096", ""]),
    st.text(max_size=8))
KEY = st.one_of(st.sampled_from(KEYS), st.text(string.ascii_letters + "_-", min_size=1,
                                                    max_size=6))


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if v != v:
            return "nan"
        if v in (float("inf"), float("-inf")):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + "}"


def toml_document(doc: dict) -> str:
    """Tables as [k] / [[k]] headers, everything else inline."""
    lines = [f"{json.dumps(k)} = {toml_value(v)}" for k, v in doc.items()
             if not isinstance(v, dict) and not (isinstance(v, list) and v
                                                 and all(isinstance(x, dict) for x in v))]
    for k, v in doc.items():
        if isinstance(v, dict):
            lines += [f"[{json.dumps(k)}]"] + [f"{json.dumps(a)} = {toml_value(b)}"
                                                for a, b in v.items()]
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for entry in v:
                lines += [f"[[{json.dumps(k)}]]"] + [f"{json.dumps(a)} = {toml_value(b)}"
                                                      for a, b in entry.items()]
    return "\n".join(lines) + "\n"


VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(KEY, inner, max_size=4)), max_leaves=12)
DOCUMENTS = st.dictionaries(KEY, st.one_of(
    VALUES, st.dictionaries(KEY, VALUES, max_size=6),
    st.lists(st.dictionaries(KEY, VALUES, max_size=6), min_size=1, max_size=3)), max_size=6)
OVERRIDES = st.lists(st.one_of(
    st.text(max_size=30),
    st.builds(lambda k, v: f"{k}={v}",
              st.lists(st.one_of(KEY, st.integers(0, 3).map(str)), min_size=1, max_size=4)
              .map(".".join),
              st.one_of(SCALARS.map(toml_value), st.text(max_size=10)))), max_size=3)

VALID = """\
[[device]]
name = "nvme0"
[[fs]]
type = "ext4"
device = "nvme0"
mountpoint = "/data"
[[workload]]
name = "hog"
kind = "anon_hog"
target_mb = 100
"""


def only_scenario_errors(path: str, overrides: list[str]) -> None:
    try:
        load_scenario(path, overrides)
    except ScenarioError as e:
        assert str(e).strip() and "Traceback" not in str(e)


FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@FUZZ
@given(doc=DOCUMENTS, overrides=OVERRIDES)
def test_random_documents_and_overrides(tmp_path, doc, overrides):
    path = tmp_path / "fuzz.toml"
    path.write_text(toml_document(doc))
    only_scenario_errors(str(path), overrides)


@FUZZ
@given(text=st.text(max_size=200))
def test_random_text_is_a_syntax_error_or_a_scenario(tmp_path, text):
    path = tmp_path / "fuzz.toml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    only_scenario_errors(str(path), [])


@FUZZ
@given(overrides=OVERRIDES)
def test_random_overrides_on_a_valid_scenario(tmp_path, overrides):
    path = tmp_path / "s.toml"
    path.write_text(VALID)
    only_scenario_errors(str(path), overrides)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=DOCUMENTS)
def test_cli_exit_2_and_no_output_file_for_bad_input(tmp_path, capsys, doc):
    path = tmp_path / "fuzz.toml"
    path.write_text(toml_document(doc))
    trace = tmp_path / "trace.json"
    try:
        load_scenario(str(path))
    except ScenarioError:
        assert main(["run", str(path), "--trace", str(trace)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("reclaimlab run: ") and "Traceback" not in err
        assert list(tmp_path.iterdir()) == [path]
