"""Shared pieces of the sweep tests: a sweep-file writer and the stand-in runner's location."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import reclaimlab

HERE = Path(__file__).parent
SRC = Path(reclaimlab.__file__).parent.parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "dask: starts a Dask LocalCluster (finishes in < 60 s)")


@pytest.fixture
def write_sweep(tmp_path: Path):
    """Write a sweep file from TOML text and return its path."""
    def write(text: str, name: str = "sweep.toml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path
    return write


def subprocess_env() -> dict[str, str]:
    """The environment a child Python needs to import reclaimlab and the fake runner."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), str(HERE), env.get("PYTHONPATH", "")])
    return env
