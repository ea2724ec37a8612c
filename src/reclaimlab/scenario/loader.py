"""Loading scenarios: built-in names or TOML files, ``--set`` overrides, validation.

The raw TOML document is a tree of dicts and lists; overrides edit that tree by dotted path
before validation, so a ``--set`` value goes through exactly the checks a file value does.
Errors carry the file, the dotted key and the TOML line (found by a small scan of the text:
``tomllib`` does not keep positions).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

from pydantic import BaseModel, ValidationError

from reclaimlab.scenario.errors import ScenarioError
from reclaimlab.scenario.models import (Design, Device, Explore, Ext4Fs, Machine, OverlayFs, Run,
                                        Scenario, XfsFs)
from reclaimlab.workload import specs

ARRAY_TABLES = ("device", "fs", "workload")
FS_MODELS = {"ext4": Ext4Fs, "xfs": XfsFs, "overlay": OverlayFs}
WORKLOAD_MODELS = {m.model_fields["kind"].annotation.__args__[0]: m
                   for m in specs.WorkloadSpec.__origin__.__args__}


@dataclass
class LoadedScenario:
    """A validated scenario and where it came from."""

    name: str
    source: str
    scenario: Scenario
    overrides: list[str] = field(default_factory=list)


def builtin_dir() -> Path:
    return Path(str(resources.files("reclaimlab.scenario") / "builtin"))


def builtin_names() -> list[str]:
    return sorted(p.stem for p in builtin_dir().glob("*.toml"))


def load_scenario(source: str, overrides: Sequence[str] = ()) -> LoadedScenario:
    """Load a built-in name or a TOML path, apply ``--set`` overrides, validate."""
    path = builtin_dir() / f"{source}.toml"
    if source in builtin_names():
        name, label = source, f"built-in scenario '{source}'"
    else:
        path = Path(source)
        name, label = path.stem, str(path)
        if not path.is_file():
            raise ScenarioError(label, "no such file, and not a built-in scenario name "
                                f"(built-ins: {', '.join(builtin_names())})")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ScenarioError(label, f"cannot read the file ({e})") from None
    raw = parse_toml(text, label)
    touched = apply_overrides(raw, overrides)
    scenario = validate(raw, label, key_lines(text), touched)
    return LoadedScenario(name, label, scenario, list(overrides))


def parse_toml(text: str, label: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"\(at line (\d+), column \d+\)", str(e))
        line = int(m.group(1)) if m else None
        raise ScenarioError(label, f"TOML syntax error: {e}", line=line) from None


# -- overrides ---------------------------------------------------------------------------

def parse_override(item: str) -> tuple[list[str], Any]:
    """``"fs.0.block_size=65536"`` -> (["fs", "0", "block_size"], 65536).

    The value is read as a TOML value (``512``, ``true``, ``"x"``, ``[0, 1]``); text that is
    not valid TOML is taken as a bare string, so ``design.name=sync`` works unquoted."""
    key, sep, value = item.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(re.fullmatch(r"[A-Za-z0-9_-]+", p) for p in parts):
        raise ScenarioError(f"--set {item}", "expected KEY=VALUE with a dotted KEY such as "
                            "machine.memory_mb=512, fs.0.block_size=65536 or "
                            "workload.unlinkers.tasks=8")
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    return parts, parsed


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> dict[tuple, str]:
    """Apply each override in order; return {resolved key path: the --set text}."""
    touched: dict[tuple, str] = {}
    for item in overrides:
        parts, value = parse_override(item)
        touched[_set_path(raw, parts, value, f"--set {item}")] = item
    return touched


def _set_path(raw: dict[str, Any], parts: list[str], value: Any, where: str) -> tuple:
    """Store ``value`` at the dotted ``parts`` of the raw tree; return the resolved path."""
    key = ".".join(parts)
    node: Any = raw
    path: list[Any] = []
    for depth, part in enumerate(parts):
        at = ".".join(map(str, path))
        if isinstance(node, list):
            idx = _list_index(node, part, at, where)
            if depth == len(parts) - 1:
                raise ScenarioError(where, f"cannot replace the whole entry {at}.{idx}; set "
                                    "one of its keys", key=key)
            path.append(idx)
            node = node[idx]
            continue
        if not isinstance(node, dict):
            raise ScenarioError(where, f"'{at}' is a value, not a table", key=key)
        path.append(part)
        if depth == len(parts) - 1:
            node[part] = value
        elif part not in node and depth == 0 and part in ARRAY_TABLES:
            raise ScenarioError(where, f"the scenario has no [[{part}]] entries to override",
                                key=key)
        else:
            node = node.setdefault(part, {})
    return tuple(path)


def _list_index(node: list, part: str, at: str, where: str) -> int:
    """An array table entry by index (``fs.0``) or by its ``name`` (``workload.unlinkers``)."""
    if part.isdigit():
        idx = int(part)
        if idx >= len(node):
            raise ScenarioError(where, f"index {idx} is out of range: [[{at}]] has "
                                f"{len(node)} entries", key=at)
        return idx
    names = [e.get("name") if isinstance(e, dict) else None for e in node]
    if part not in names:
        known = ", ".join(repr(n) for n in names if n) or "none named"
        raise ScenarioError(where, f"no [[{at}]] entry named {part!r} (entries: {known})",
                            key=at)
    return names.index(part)


# -- validation --------------------------------------------------------------------------

def validate(raw: dict[str, Any], label: str, lines: dict[tuple, int] | None = None,
             touched: dict[tuple, str] | None = None) -> Scenario:
    """Validate the raw tree into a :class:`Scenario`, or raise one ScenarioError."""
    try:
        return Scenario.model_validate(raw)
    except ValidationError as e:
        errors = e.errors(include_url=False)
        raise _scenario_error(raw, errors[0], len(errors) - 1, label, lines or {},
                              touched or {}) from None


def _scenario_error(raw: dict, err: dict, more: int, label: str, lines: dict[tuple, int],
                    touched: dict[tuple, str]) -> ScenarioError:
    path = _raw_path(raw, err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    m = re.match(r"^([A-Za-z0-9_.]+): (.*)$", msg)
    if m and err["type"] == "value_error":  # our validators prefix the key they concern
        path += tuple(int(p) if p.isdigit() else p for p in m.group(1).split("."))
        msg = m.group(2)
    if err["type"] in ("union_tag_not_found", "union_tag_invalid"):
        path += (err["ctx"]["discriminator"].strip("'"),)
    msg = _explain(raw, err, path, msg)
    if more:
        msg += f" (and {more} more problem{'s' if more > 1 else ''})"
    key = ".".join(map(str, path)) or None
    for p in (path[:n] for n in range(len(path), 0, -1)):
        if p in touched:
            return ScenarioError(f"--set {touched[p]}", msg, key=key)
    line = next((lines[path[:n]] for n in range(len(path), 0, -1) if path[:n] in lines), None)
    return ScenarioError(label, msg, key=key, line=line)


def _raw_path(raw: Any, loc: tuple) -> tuple:
    """Pydantic's error location minus union tags, as a path into the raw document."""
    path: list[Any] = []
    node = raw
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        elif node is None or (isinstance(node, dict) and part in _model_fields(raw, path)):
            node = None  # a key the document lacks
        else:
            continue  # a union tag pydantic puts in the location
        path.append(part)
    return tuple(path)


def _explain(raw: dict, err: dict, path: tuple, msg: str) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        allowed = sorted(_model_fields(raw, list(path[:-1])))
        if not allowed:
            return "unknown key (see docs/scenario.md for the keys of this table)"
        return f"unknown key; expected one of: {', '.join(allowed)}"
    if kind == "missing":
        return "required key is missing"
    if kind in ("union_tag_not_found", "union_tag_invalid"):
        tags = err["ctx"].get("expected_tags", "")
        if kind == "union_tag_not_found":
            return f"required key is missing; expected one of {tags}"
        return f"expected one of {tags} (got {raw_get(raw, path)!r})"
    value = err.get("input")
    if kind not in ("model_type", "list_type", "dict_type") and not isinstance(value, (dict, list)):
        return f"{msg} (got {value!r})"
    return f"{msg}"


def raw_get(raw: Any, path: tuple) -> Any:
    for part in path:
        raw = raw[part]
    return raw


def _model_fields(raw: dict, path: list) -> list[str]:
    """Keys allowed at ``path`` (a table of the scenario)."""
    model: type[BaseModel] | None = None
    if not path:
        model = Scenario
    elif len(path) == 1 and path[0] in ("machine", "design", "run", "explore"):
        model = {"machine": Machine, "design": Design, "run": Run, "explore": Explore}[path[0]]
    elif len(path) == 2 and path[0] in ARRAY_TABLES and isinstance(path[1], int):
        entry = raw[path[0]][path[1]]
        entry = entry if isinstance(entry, dict) else {}
        model = {"device": lambda: Device,
                 "fs": lambda: FS_MODELS.get(entry.get("type")),
                 "workload": lambda: WORKLOAD_MODELS.get(entry.get("kind"))}[path[0]]()
    return list(model.model_fields) if model else []


# -- TOML key -> line --------------------------------------------------------------------

def key_lines(text: str) -> dict[tuple, int]:
    """Map dotted key paths of a TOML text to their line numbers (tables and plain keys).

    Good enough for hand-written scenarios: ``[table]``, ``[[array]]`` and ``key = value`` at
    the start of a line; inline tables and multi-line values are attributed to their key."""
    lines: dict[tuple, int] = {}
    counts: dict[tuple, int] = {}
    prefix: tuple = ()
    for n, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if m := re.match(r"^\[\[\s*([A-Za-z0-9_.-]+)\s*\]\]", s):
            name = tuple(m.group(1).split("."))
            idx = counts.get(name, 0)
            counts[name] = idx + 1
            prefix = name + (idx,)
            lines.setdefault(name, n)
            lines[prefix] = n
        elif m := re.match(r"^\[\s*([A-Za-z0-9_.-]+)\s*\]", s):
            prefix = tuple(m.group(1).split("."))
            lines[prefix] = n
        elif m := re.match(r"^([A-Za-z0-9_.\"-]+)\s*=", s):
            lines[prefix + tuple(k.strip('"') for k in m.group(1).split("."))] = n
    return lines
