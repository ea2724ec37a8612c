"""Parameter sweeps: a sweep file's run matrix, run on a process pool or Dask, into DuckDB/Parquet.

``spec`` reads sweep files and expands the matrix, ``executor`` runs it (one interface, a local
process pool and a Dask backend), ``store`` keeps one row per run transactionally and resumably,
``report`` compares designs mmtests-style, ``cli`` is ``reclaimlab sweep``. docs/sweep.md is the
user's guide.
"""

from reclaimlab.sweep.executor import (DaskExecutor, Executor, LocalExecutor, SweepOutcome,
                                       default_runner, execute_run, make_executor, run_sweep)
from reclaimlab.sweep.spec import RunSpec, Sweep, SweepError, SweepSpec, load_sweep, sweep_from_dict
from reclaimlab.sweep.store import DuckDBStore, ParquetStore, make_row, open_store, read_rows

__all__ = [
    "DaskExecutor", "DuckDBStore", "Executor", "LocalExecutor", "ParquetStore", "RunSpec",
    "Sweep", "SweepError", "SweepOutcome", "SweepSpec", "default_runner", "execute_run",
    "load_sweep", "make_executor", "make_row", "open_store", "read_rows", "run_sweep",
    "sweep_from_dict",
]
