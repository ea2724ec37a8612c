"""The results store: one row per run, committed row by row, never duplicated, resumable."""

from __future__ import annotations

import json

import pytest

from fakerunner import fake_run
from reclaimlab.sweep.spec import SweepError, sweep_from_dict
from reclaimlab.sweep.store import ParquetStore, make_row, open_store, read_rows


def runs(n_mem: int = 2, seeds: int = 2, extra: dict | None = None):
    axes = {"machine.memory_mb": [256 * (i + 1) for i in range(n_mem)], **(extra or {})}
    return sweep_from_dict({"base": "overlay-unlink", "designs": ["sync", "inodegc"],
                            "seeds": seeds, "axes": axes}).matrix()


def row_of(run):
    return make_row(run, fake_run(run.scenario, run.design, run.seed, run.overrides()))


def test_row_has_key_axes_flattened_result_histogram_and_no_error():
    run = runs()[0]
    row = row_of(run)
    assert (row["config_hash"], row["design"], row["seed"]) == run.key
    assert row["machine.memory_mb"] == 256
    assert row["alloc_latency_ns.p99"] > 0 and row["inodes.evicted_in_reclaim"] == 1
    assert row["warnings"] == "[]" and json.loads(row["invariants.violations"]) == []
    assert row["alloc_latency_hist"].startswith("HISTF")
    assert row["error"] is None
    assert list(row)[:5] == ["config_hash", "design", "seed", "scenario", "machine.memory_mb"]


def test_a_raising_run_is_a_row_with_its_error_and_null_fields():
    row = make_row(runs()[0], None, error="ValueError: boom")
    assert row["error"] == "ValueError: boom"
    assert row["alloc_latency_hist"] is None and "digest" not in row


@pytest.mark.parametrize("suffix", [".duckdb", ".parquet"])
def test_rows_round_trip_and_duplicates_are_refused(tmp_path, suffix):
    out = tmp_path / f"r{suffix}"
    store = open_store(out)
    rows = [row_of(r) for r in runs()]
    assert all(store.add(r) for r in rows)
    assert not store.add(rows[0])
    assert store.keys() == {r.key for r in runs()}
    store.close()
    back = read_rows(out)
    assert len(back) == len(rows)
    assert sorted(back, key=lambda r: (r["config_hash"], r["design"], r["seed"])) == \
        sorted(rows, key=lambda r: (r["config_hash"], r["design"], r["seed"]))


def test_error_rows_keep_every_declared_column_null(tmp_path):
    store = open_store(tmp_path / "r.duckdb")
    store.add(make_row(runs()[0], None, error="RuntimeError: x"))
    store.close()
    (row,) = read_rows(tmp_path / "r.duckdb")
    assert row["error"] == "RuntimeError: x"
    assert row["alloc_latency_ns.p99"] is None and row["alloc_latency_hist"] is None


def test_schema_grows_with_new_fields_and_widens_instead_of_truncating(tmp_path):
    first, second = runs(n_mem=1, seeds=1)[:2]
    store = open_store(tmp_path / "r.duckdb")
    a = row_of(first)
    store.add(a)
    b = row_of(second)
    b["alloc_latency_ns.p99"] = 1234.5  # an integer column receives a float
    b["extra.value"] = 0.25
    store.add(b)
    store.close()
    rows = {r["design"]: r for r in read_rows(tmp_path / "r.duckdb")}
    assert rows[second.design]["alloc_latency_ns.p99"] == 1234.5
    assert rows[second.design]["extra.value"] == 0.25
    assert rows[first.design]["extra.value"] is None
    assert rows[first.design]["alloc_latency_ns.p99"] == a["alloc_latency_ns.p99"]


def test_parquet_close_compacts_atomically_and_drops_the_journal(tmp_path):
    out = tmp_path / "r.parquet"
    store = ParquetStore(out)
    store.add(row_of(runs()[0]))
    assert store.journal.exists() and not out.exists()
    store.close()
    assert out.exists() and not store.journal.exists()
    assert not (tmp_path / "r.parquet.tmp").exists()


def test_parquet_resumes_from_the_journal_of_an_interrupted_sweep(tmp_path):
    out = tmp_path / "r.parquet"
    all_runs = runs()
    store = ParquetStore(out)
    for run in all_runs[:2]:
        store.add(row_of(run))
    store.close()  # a complete earlier sweep: 2 rows in the Parquet file
    store = ParquetStore(out)
    store.add(row_of(all_runs[2]))
    store.db.close()  # killed before compaction: the Parquet file is stale, the journal is not
    assert len(read_rows(out)) == 2
    store = ParquetStore(out)
    assert store.keys() == {r.key for r in all_runs[:3]}
    store.close()
    assert {(r["config_hash"], r["design"], r["seed"]) for r in read_rows(out)} == \
        {r.key for r in all_runs[:3]}


def test_unknown_suffix_is_a_user_error(tmp_path):
    with pytest.raises(SweepError, match=".duckdb or .parquet"):
        open_store(tmp_path / "r.csv")
