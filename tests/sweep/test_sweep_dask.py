"""The Dask engine gives the same rows as the local process pool."""

from __future__ import annotations

import time

import pytest

import fakerunner
from reclaimlab.sweep.executor import LocalExecutor, make_executor, run_sweep
from reclaimlab.sweep.spec import sweep_from_dict
from reclaimlab.sweep.store import open_store, read_rows

pytest.importorskip("dask.distributed")


def rows_by_key(path) -> dict[tuple, dict]:
    """Rows by key, without the host time (the one field an engine may change)."""
    return {(r["config_hash"], r["design"], r["seed"]):
            {k: v for k, v in r.items() if k != "wall_s"} for r in read_rows(path)}


@pytest.mark.dask
def test_dask_local_cluster_rows_equal_local_pool_rows(tmp_path):
    import cloudpickle
    cloudpickle.register_pickle_by_value(fakerunner)  # the workers cannot import tests/
    start = time.monotonic()
    sweep = sweep_from_dict({"base": "overlay-unlink",
                             "designs": ["sync", "inodegc", "passive-ref"], "seeds": 3,
                             "axes": {"machine.memory_mb": [256, 512], "fake.fail": [False, True]}})
    for engine, out in (("dask", tmp_path / "dask.parquet"), ("local", tmp_path / "local.parquet")):
        executor = make_executor(engine, workers=2)
        store = open_store(out)
        try:
            outcome = run_sweep(sweep, store, executor, fakerunner.fake_run)
        finally:
            store.close()
            executor.close()
        assert outcome.ran == 36 and outcome.failed == 18
    dask_rows = rows_by_key(tmp_path / "dask.parquet")
    local_rows = rows_by_key(tmp_path / "local.parquet")
    assert len(dask_rows) == 36
    assert dask_rows == local_rows
    assert time.monotonic() - start < 60


def test_scheduler_without_dask_engine_is_a_user_error():
    from reclaimlab.sweep.spec import SweepError
    with pytest.raises(SweepError, match="--scheduler needs --engine dask"):
        make_executor("local", 2, "tcp://127.0.0.1:8786")
    executor = make_executor("local", 1)
    assert isinstance(executor, LocalExecutor) and executor.workers == 1
    executor.close()
