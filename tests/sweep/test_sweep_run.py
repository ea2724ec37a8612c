"""Running a sweep: every run gives one row, raising runs are recorded, interruptions resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import subprocess_env
from fakerunner import fake_run
from reclaimlab.sweep.executor import LocalExecutor, execute_run, run_sweep
from reclaimlab.sweep.spec import load_sweep, sweep_from_dict
from reclaimlab.sweep.store import open_store, read_rows


def key(row: dict) -> tuple:
    return (row["config_hash"], row["design"], row["seed"])


@pytest.fixture(scope="module")
def pool():
    executor = LocalExecutor(2)
    yield executor
    executor.close()


def sweep_of(axes: dict, seeds: int = 2):
    return sweep_from_dict({"base": "overlay-unlink", "designs": ["sync", "inodegc"],
                            "seeds": seeds, "axes": axes})


def test_execute_run_turns_an_exception_into_the_rows_error():
    run = sweep_of({"fake.fail": [True]}).matrix()[0]
    row = execute_run(run, fake_run)
    assert row["error"].startswith("ValueError: injected failure for seed 0")
    assert "fakerunner.py" in row["error"] and key(row) == run.key


def test_execute_run_rejects_a_result_that_is_not_a_dict():
    run = sweep_of({}).matrix()[0]
    row = execute_run(run, lambda *args: None)
    assert row["error"].startswith("TypeError: the runner returned NoneType")


def test_local_pool_stores_one_row_per_run_with_failures_recorded(tmp_path, pool):
    sweep = sweep_of({"machine.memory_mb": [256, 512], "fake.fail": [False, True]})
    store = open_store(tmp_path / "r.duckdb")
    outcome = run_sweep(sweep, store, pool, fake_run)
    store.close()
    rows = read_rows(tmp_path / "r.duckdb")
    assert (outcome.total, outcome.ran, outcome.failed, outcome.skipped) == (16, 16, 8, 0)
    assert sorted(map(key, rows)) == sorted(r.key for r in sweep.matrix())
    assert all((r["error"] is None) == (r["fake.fail"] is False) for r in rows)


def test_rows_equal_the_inline_rows_whichever_worker_ran_them(tmp_path, pool):
    sweep = sweep_of({"machine.memory_mb": [256, 512, 1024]}, seeds=3)
    store = open_store(tmp_path / "r.duckdb")
    run_sweep(sweep, store, pool, fake_run)
    store.close()
    inline = {r.key: execute_run(r, fake_run) for r in sweep.matrix()}
    for row in read_rows(tmp_path / "r.duckdb"):
        expect = inline[key(row)]
        assert {k: v for k, v in row.items() if k != "wall_s"} == \
            {k: v for k, v in expect.items() if k != "wall_s"}


def test_rerun_runs_only_what_is_missing(tmp_path, pool):
    small = sweep_of({"machine.memory_mb": [256]})
    big = sweep_of({"machine.memory_mb": [256, 512]})
    store = open_store(tmp_path / "r.parquet")
    assert run_sweep(small, store, pool, fake_run).ran == 4
    store.close()
    store = open_store(tmp_path / "r.parquet")
    outcome = run_sweep(big, store, pool, fake_run)
    store.close()
    assert (outcome.skipped, outcome.ran) == (4, 4)
    assert len(read_rows(tmp_path / "r.parquet")) == 8


def test_a_run_that_kills_its_worker_is_recorded_and_the_others_complete(tmp_path):
    sweep = sweep_of({"machine.memory_mb": [256, 512], "fake.exit": [False, True]}, seeds=1)
    store = open_store(tmp_path / "r.duckdb")
    executor = LocalExecutor(2)
    try:
        outcome = run_sweep(sweep, store, executor, fake_run)
    finally:
        executor.close()
        store.close()
    rows = read_rows(tmp_path / "r.duckdb")
    assert outcome.ran == len(rows) == 8
    died = [r for r in rows if r["error"]]
    assert {r["fake.exit"] for r in died} == {True} and len(died) == 4
    assert all("worker process died" in r["error"] for r in died)


SWEEP = """
base = "overlay-unlink"
designs = ["sync", "inodegc", "passive-ref"]
seeds = 4
[axes]
"machine.memory_mb" = [256, 512, 1024]
"fake.sleep_ms" = [60]
"""


def start_sweep(sweep_file: Path, out: Path, markers: Path) -> subprocess.Popen:
    code = ("import sys; from fakerunner import fake_run; from reclaimlab.sweep.cli import main; "
            "sys.exit(main(sys.argv[1:], runner=fake_run))")
    env = {**subprocess_env(), "FAKE_MARKER_DIR": str(markers)}
    return subprocess.Popen([sys.executable, "-c", code, str(sweep_file), "--out", str(out),
                             "--workers", "2"], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.parametrize("suffix", [".duckdb", ".parquet"])
def test_killed_sweep_resumes_to_exactly_one_row_per_run(tmp_path, write_sweep, suffix):
    sweep_file = write_sweep(SWEEP)
    out, markers = tmp_path / f"r{suffix}", tmp_path / "markers"
    markers.mkdir()
    proc = start_sweep(sweep_file, out, markers)
    deadline = time.monotonic() + 30
    while len(os.listdir(markers)) < 14 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, proc.stderr.read().decode()
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its workers, with no chance to clean up
    proc.wait()
    proc.stderr.close()
    total = len(load_sweep(sweep_file).matrix())

    store = open_store(out)
    finished = len(store.keys())
    store.close()
    assert 0 < finished < total
    started_before = len(os.listdir(markers))

    proc = start_sweep(sweep_file, out, markers)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    rows = read_rows(out)
    assert len(rows) == total and len(set(map(key, rows))) == total
    assert {key(r) for r in rows} == {r.key for r in load_sweep(sweep_file).matrix()}
    # The second invocation ran only the missing runs (and nothing twice).
    assert len(os.listdir(markers)) - started_before == total - finished


def test_sigterm_stops_cleanly_with_the_finished_rows_compacted(tmp_path, write_sweep):
    sweep_file = write_sweep(SWEEP)
    out, markers = tmp_path / "r.parquet", tmp_path / "markers"
    markers.mkdir()
    proc = start_sweep(sweep_file, out, markers)
    deadline = time.monotonic() + 30
    while len(os.listdir(markers)) < 14 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err.decode()
    assert b"resume" in err
    assert not Path(f"{out}.journal.duckdb").exists()
    rows = read_rows(out)
    assert 0 < len(rows) < len(load_sweep(sweep_file).matrix())
    assert len(set(map(key, rows))) == len(rows)
