"""Sweep files and the run matrix they describe.

A sweep file (TOML, interfaces.md "Sweep file") names a base scenario, the designs, the seeds and
*axes*: dotted scenario keys, spelled as for ``--set``, each with a list of values or an inclusive
range ``{start, stop, step}``. The run matrix is designs x seeds x the product of the axes,
optionally cut down to a seeded random sample. Like desmod's factorial sweeps, the same dotted
key names the knob in the scenario, in ``--set``, in the sweep file and in the result columns.

Each matrix point is a :class:`RunSpec`; its *config hash* covers the base scenario and every
override (not the design nor the seed), so ``(config_hash, design, seed)`` identifies a run across
invocations -- the key the results store resumes by.

Every problem in a sweep file is a :class:`SweepError` naming the file and the key.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (AfterValidator, BaseModel, ConfigDict, Discriminator, Field, PositiveInt,
                      StrictFloat, StrictInt, Tag, ValidationError, field_validator,
                      model_validator)

from reclaimlab.vfs.designs import DESIGN_NAMES

# The interface's four designs are the default; any design of the registry may be named.
DEFAULT_DESIGNS = ("native", "sync", "inodegc", "passive-ref")
KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$")
# Row columns the store writes itself; an axis may not shadow them.
RESERVED_KEYS = ("config_hash", "design", "seed", "scenario", "error")
MAX_RUNS = 1_000_000


def _scalar(value: Any) -> Any:
    if not isinstance(value, (bool, int, float, str)):
        raise ValueError(f"expected a boolean, number or string, not {type(value).__name__}")
    return value


def _seeds(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if (isinstance(value, list) and value and all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value)):
        return value
    raise ValueError("expected a positive count N (seeds 0..N-1) or a non-empty list of "
                     "seeds >= 0")


# A value a --set key can take; one clear message instead of one per union branch.
Scalar = Annotated[Any, AfterValidator(_scalar)]


class SweepError(Exception):
    """A sweep file or option the user must fix; the CLI prints it and exits 2."""


class Strict(BaseModel):
    """Unknown keys are mistakes worth reporting."""

    model_config = ConfigDict(extra="forbid")


class AxisRange(Strict):
    """``{start, stop, step}``: ``start, start+step, ...`` up to and including ``stop``."""

    start: StrictInt | StrictFloat
    stop: StrictInt | StrictFloat
    step: StrictInt | StrictFloat

    @model_validator(mode="after")
    def _direction(self) -> "AxisRange":
        if self.step == 0:
            raise ValueError("step must not be 0")
        if (self.stop - self.start) * self.step < 0:
            raise ValueError(f"step {self.step} never gets from {self.start} to {self.stop}")
        if self.count() > MAX_RUNS:
            raise ValueError(f"{self.count()} values; at most {MAX_RUNS}")
        return self

    def count(self) -> int:
        # The epsilon keeps 0.1-steps from losing their last value to rounding.
        return math.floor((self.stop - self.start) / self.step + 1e-9) + 1

    def values(self) -> list[int | float]:
        """The values, computed by index so float steps do not accumulate error."""
        whole = all(isinstance(v, int) for v in (self.start, self.stop, self.step))
        vals = [self.start + i * self.step for i in range(self.count())]
        return vals if whole else [round(v, 12) for v in vals]


def _axis_kind(value: object) -> str:
    return "range" if isinstance(value, dict) else "list"


def _distinct(values: list) -> list:
    if len({json.dumps(v) for v in values}) != len(values):
        raise ValueError("values must not repeat (a repeated run would be one row)")
    return values


AxisValues = Annotated[
    Annotated[list[Scalar], Field(min_length=1), AfterValidator(_distinct), Tag("list")]
    | Annotated[AxisRange, Tag("range")],
    Discriminator(_axis_kind),
]


class Sample(Strict):
    """Run only ``n`` points of the matrix, drawn with ``random.Random(seed)``."""

    n: PositiveInt
    seed: StrictInt = 0


class SweepSpec(Strict):
    """A sweep file, validated."""

    base: str = Field(min_length=1)
    designs: list[Literal[DESIGN_NAMES]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: list(DEFAULT_DESIGNS), min_length=1)
    seeds: Annotated[Any, AfterValidator(_seeds)] = 1
    axes: dict[str, AxisValues] = Field(default_factory=dict)
    fixed: dict[str, Scalar] = Field(default_factory=dict, alias="set")
    sample: Sample | None = None

    @field_validator("designs", "seeds")
    @classmethod
    def _no_repeats(cls, v: object) -> object:
        if isinstance(v, list) and len(set(v)) != len(v):
            raise ValueError("values must not repeat (a repeated run would be one row)")
        return v

    @field_validator("axes", "fixed")
    @classmethod
    def _dotted_keys(cls, v: dict) -> dict:
        for key in v:
            if not KEY_RE.match(key):
                raise ValueError(f"{key!r} is not a dotted scenario key like machine.memory_mb")
            if key in RESERVED_KEYS:
                raise ValueError(f"{key!r} is a result column; choose it with its own sweep key")
        return v

    @model_validator(mode="after")
    def _axes_apart_from_fixed(self) -> "SweepSpec":
        both = sorted(set(self.axes) & set(self.fixed))
        if both:
            raise ValueError(f"{both[0]!r} is both an axis and in [set]")
        return self

    def seed_list(self) -> list[int]:
        """``seeds = N`` means seeds 0..N-1 (0 is the scenario's default seed)."""
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)


def axis_values(values: list | AxisRange) -> list:
    """The concrete values of one axis."""
    return values.values() if isinstance(values, AxisRange) else list(values)


@dataclass(frozen=True)
class RunSpec:
    """One point of the run matrix: what a worker needs to run it and what keys its row."""

    scenario: str
    design: str
    seed: int
    config: tuple[tuple[str, Scalar], ...]
    config_hash: str

    @property
    def key(self) -> tuple[str, str, int]:
        """The identity a results store resumes by."""
        return (self.config_hash, self.design, self.seed)

    def overrides(self) -> list[str]:
        """The ``--set KEY=VALUE`` strings for ``run_scenario``."""
        return [f"{k}={format_value(v)}" for k, v in self.config]


def format_value(value: Scalar) -> str:
    """A value as a TOML literal, which is how ``--set`` reads it back with its type intact
    (a string ``"512"`` stays a string, quoted)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):  # a JSON string is a TOML basic string, but for a raw DEL
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    return repr(value)


@dataclass(frozen=True)
class Sweep:
    """A loaded sweep file: the validated spec and where it came from."""

    spec: SweepSpec
    source: str
    scenario: str  # the base as run_scenario takes it: a built-in name or an absolute path
    base_id: str  # what the config hash says about the base: its name or its file's sha256

    @property
    def axis_keys(self) -> list[str]:
        return list(self.spec.axes)

    def matrix(self) -> list[RunSpec]:
        """All runs, axis points outermost, then designs, then seeds; sampled if asked."""
        spec = self.spec
        points = itertools.product(*(axis_values(v) for v in spec.axes.values()))
        runs = []
        for point in points:
            config = tuple(spec.fixed.items()) + tuple(zip(spec.axes, point))
            chash = config_hash(self.base_id, config)
            for design in spec.designs:
                runs.extend(RunSpec(self.scenario, design, seed, config, chash)
                            for seed in spec.seed_list())
        if spec.sample is not None and spec.sample.n < len(runs):
            picked = sorted(random.Random(spec.sample.seed).sample(range(len(runs)), spec.sample.n))
            runs = [runs[i] for i in picked]
        return runs


def config_hash(base_id: str, config: tuple[tuple[str, Scalar], ...]) -> str:
    """sha256 of the base and the overrides, independent of their order; 16 hex digits."""
    canon = json.dumps({"base": base_id, "set": sorted(config)}, sort_keys=True)
    return hashlib.sha256(canon.encode()).hexdigest()[:16]


def load_sweep(path: str | Path) -> Sweep:
    """Read and validate a sweep file; raise :class:`SweepError` naming the file and key."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise SweepError(f"{path}: cannot read the sweep file: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SweepError(f"{path}: not valid TOML: {exc}") from None
    return sweep_from_dict(data, str(path), path.parent)


def sweep_from_dict(data: dict, source: str = "<sweep>", root: Path = Path(".")) -> Sweep:
    """Validate a parsed sweep; a ``base`` that looks like a path is relative to ``root``."""
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as exc:
        raise SweepError(_explain(source, exc)) from None
    scenario, base_id = _resolve_base(spec.base, source, root)
    sweep = Sweep(spec, source, scenario, base_id)
    total = _matrix_size(spec)
    if total > MAX_RUNS:
        raise SweepError(f"{source}: the run matrix has {total} runs; at most {MAX_RUNS}")
    return sweep


def check_configs(sweep: Sweep) -> None:
    """Have the scenario loader validate every distinct configuration before any run starts,
    so that a misspelt axis key is one user error, not a table of failed runs."""
    from reclaimlab.scenario.errors import ScenarioError
    from reclaimlab.scenario.loader import load_scenario
    seen: set[str] = set()
    for run in sweep.matrix():
        if run.config_hash not in seen:
            seen.add(run.config_hash)
            try:
                load_scenario(run.scenario, run.overrides())
            except ScenarioError as exc:
                raise SweepError(f"{sweep.source}: {exc}") from None


def _matrix_size(spec: SweepSpec) -> int:
    size = len(spec.designs) * len(spec.seed_list())
    for values in spec.axes.values():
        size *= values.count() if isinstance(values, AxisRange) else len(values)
    return size


def _resolve_base(base: str, source: str, root: Path) -> tuple[str, str]:
    """A built-in name stays a name; a path becomes absolute and is hashed by its content."""
    if "/" not in base and not base.endswith(".toml"):
        return base, base
    path = (root / base).resolve()
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise SweepError(f"{source}, key 'base': cannot read scenario file {path}: "
                         f"{exc.strerror}") from None
    return str(path), "sha256:" + hashlib.sha256(content).hexdigest()


def _explain(source: str, exc: ValidationError) -> str:
    """One line per problem: ``FILE, key 'axes."machine.memory_mb".step': message``."""
    lines = []
    for err in exc.errors():
        # Drop union-branch tags so the key reads as the user wrote it.
        parts = [p for p in err["loc"] if p not in ("list", "range")]
        key = ".".join(f'"{p}"' if isinstance(p, str) and "." in p else str(p) for p in parts)
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{source}, key '{key}': {msg}" if key else f"{source}: {msg}")
    return "\n".join(lines)
