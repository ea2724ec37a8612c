"""Running the matrix: one small executor interface, a process pool and a Dask backend.

An executor takes the runs still missing and yields their rows as they finish, in completion
order; :func:`run_sweep` commits each row to the store the moment it arrives. Every run is an
independent, deterministic function of its :class:`RunSpec`, so which engine ran it (and in which
order) changes nothing in its row except the host time ``wall_s``.

- :class:`LocalExecutor`: the standard library's ``ProcessPoolExecutor`` with a ``forkserver``
  context (workers are forked from a clean single-threaded server, not from a parent that runs a
  progress-bar thread). At most two runs per worker are in flight, so an interruption leaves
  little unstarted work queued. A worker that dies (OOM-killed, segfault) breaks the pool: the pool
  is rebuilt and the runs that were in flight are rerun one at a time, so that a run which kills
  its worker again, alone, is recorded with an error instead of being retried forever. When
  workers die before any run has ever finished, the workers themselves are broken: that is a
  :class:`SweepError`, and no run is blamed.
- :class:`DaskExecutor`: ``dask.distributed``; connects to ``scheduler`` when given, else starts a
  ``LocalCluster`` of single-threaded worker processes. Imported lazily (optional extra).

A runner is ``runner(scenario, design, seed, overrides) -> run result``; the default is
:func:`reclaimlab.scenario.run_scenario`. A run that raises becomes a row with ``error`` set.
"""

from __future__ import annotations

import multiprocessing
import os
import traceback
from collections import deque
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Protocol

from reclaimlab.sweep.spec import RunSpec, Sweep, SweepError
from reclaimlab.sweep.store import DuckDBStore, ParquetStore, make_row

Runner = Callable[[str, "str | None", "int | None", list[str]], dict]
Rows = Generator[dict[str, Any], None, None]
MAX_KILLERS = 3  # workers dying one after another with no run ever finishing: give up


def default_runner(scenario: str, design: str | None, seed: int | None,
                   overrides: list[str]) -> dict:
    """The simulator itself: :func:`reclaimlab.scenario.run_scenario`."""
    from reclaimlab.scenario import run_scenario
    return run_scenario(scenario, design, seed, overrides)


def execute_run(run: RunSpec, runner: Runner = default_runner) -> dict[str, Any]:
    """Run one matrix point (in a worker) and return its row; an exception becomes ``error``."""
    try:
        result = runner(run.scenario, run.design, run.seed, run.overrides())
        if not isinstance(result, dict):
            raise TypeError(f"the runner returned {type(result).__name__}, not a run result dict")
    except Exception as exc:  # a raising run is recorded, not lost
        return make_row(run, None, error=describe_error(exc))
    return make_row(run, result)


def describe_error(exc: BaseException) -> str:
    """``Type: message`` and the innermost frame, enough to find the bug from the row."""
    where = traceback.extract_tb(exc.__traceback__)
    text = "".join(traceback.format_exception_only(exc)).strip()
    if where:
        last = where[-1]
        text += f" (at {last.filename}:{last.lineno} in {last.name})"
    return text


def default_workers() -> int:
    """All CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class Executor(Protocol):
    """What :func:`run_sweep` needs from an engine."""

    def map_runs(self, runs: Sequence[RunSpec], runner: Runner) -> Rows:
        """Run each run once (``execute_run``); yield its row as it finishes. Closing the
        generator early cancels what has not started."""

    def close(self) -> None:
        """Stop the workers."""


class LocalExecutor:
    """A process pool on this machine (``--workers N``)."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or default_workers()
        self.pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        context = multiprocessing.get_context("forkserver")
        return ProcessPoolExecutor(self.workers, mp_context=context)

    def map_runs(self, runs: Sequence[RunSpec], runner: Runner) -> Rows:
        """Keep ``2 * workers`` runs in flight; after a breakage, isolate the suspects."""
        todo = deque(runs)
        suspects: deque[RunSpec] = deque()  # in flight when a worker died: rerun one at a time
        inflight: dict[Future, RunSpec] = {}
        alone: RunSpec | None = None  # the suspect running by itself, if any
        killers: list[RunSpec] = []  # died alone; recorded once some run has worked
        worked = False
        stalls = 0  # pools in a row that broke before taking a single run
        while todo or suspects or inflight:
            if suspects and not inflight:
                alone = suspects.popleft()
                if not self._submit(inflight, alone, runner):
                    suspects.appendleft(alone)
                    alone = None
            while not suspects and alone is None and todo and len(inflight) < 2 * self.workers:
                run = todo.popleft()
                if not self._submit(inflight, run, runner):
                    todo.appendleft(run)
                    break
            if not inflight:  # the pool broke before taking anything
                stalls += 1
                if stalls >= MAX_KILLERS:
                    raise SweepError("cannot start worker processes: the pool broke "
                                     f"{stalls} times in a row before taking a run")
                self._restart_pool()
                continue
            stalls = 0
            done, _ = wait(inflight, return_when=FIRST_COMPLETED)
            lost = []
            for fut in done:
                run = inflight.pop(fut)
                try:
                    row = fut.result()
                except BrokenProcessPool:
                    lost.append(run)
                    continue
                alone = None if run is alone else alone
                worked = True
                yield row
            if lost:
                lost.extend(inflight.values())
                inflight.clear()
                self._restart_pool()
                if alone is not None:
                    killers.append(alone)
                    alone = None
                else:
                    suspects.extend(lost)
            if killers and (worked or len(killers) >= MAX_KILLERS):
                yield from self._killer_rows(killers, worked)
        yield from self._killer_rows(killers, worked)

    @staticmethod
    def _killer_rows(killers: list[RunSpec], worked: bool) -> Rows:
        """Rows for runs that killed their worker, unless no run has worked at all: then it
        is the workers that cannot run, which is not the runs' fault."""
        if killers and not worked:
            raise SweepError(f"{len(killers)} worker processes in a row died before any run "
                             "finished; the workers cannot start or are being killed")
        for run in killers:
            yield make_row(run, None, error="the worker process died running this run")
        killers.clear()

    def _submit(self, inflight: dict[Future, RunSpec], run: RunSpec, runner: Runner) -> bool:
        """Queue one run; False when the pool has just broken (the caller keeps the run).

        A submit racing with the pool's breakage can also fail with ``OSError: handle is
        closed`` from inside ``ProcessPoolExecutor`` while it starts a worker."""
        try:
            inflight[self.pool.submit(execute_run, run, runner)] = run
        except (BrokenProcessPool, OSError):
            return False
        return True

    def _restart_pool(self) -> None:
        """A worker died (killed, crashed): the pool is unusable, start a fresh one."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = self._new_pool()

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


class DaskExecutor:
    """Dask distributed: an existing cluster at ``scheduler``, else a LocalCluster."""

    def __init__(self, scheduler: str | None = None, workers: int | None = None) -> None:
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:
            raise SweepError("--engine dask needs dask.distributed: "
                             "pip install 'reclaimlab[dask]'") from None
        self.cluster = None
        try:
            if scheduler:
                self.client = Client(scheduler, timeout="10s")
            else:
                self.cluster = LocalCluster(n_workers=workers or default_workers(),
                                            threads_per_worker=1, processes=True,
                                            dashboard_address=None)
                self.client = Client(self.cluster)
        except OSError as exc:
            raise SweepError(f"--scheduler {scheduler}: cannot connect: {exc}") from None

    def map_runs(self, runs: Sequence[RunSpec], runner: Runner) -> Rows:
        from dask.distributed import as_completed
        futures = self.client.map(execute_run, runs, runner=runner, pure=False)
        by_future = dict(zip(futures, runs))
        try:
            for fut in as_completed(futures):
                try:
                    row = fut.result()
                except Exception as exc:  # KilledWorker and friends: the run never returned
                    row = make_row(by_future[fut], None, error=describe_error(exc))
                fut.release()
                yield row
        finally:
            self.client.cancel(futures)

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def make_executor(engine: str = "local", workers: int | None = None,
                  scheduler: str | None = None) -> LocalExecutor | DaskExecutor:
    """The executor for ``--engine``."""
    if engine == "local":
        if scheduler:
            raise SweepError("--scheduler needs --engine dask")
        return LocalExecutor(workers)
    if engine == "dask":
        return DaskExecutor(scheduler, workers)
    raise SweepError(f"--engine {engine}: expected local or dask")


@dataclass
class SweepOutcome:
    """What a sweep invocation did."""

    total: int  # runs in the matrix
    skipped: int  # already in the store (resumed)
    ran: int  # rows committed now
    failed: int  # of those, rows with an error


def run_sweep(sweep: Sweep, store: DuckDBStore | ParquetStore, executor: Executor,
              runner: Runner = default_runner,
              on_row: Callable[[dict[str, Any]], None] | None = None,
              on_start: Callable[[int, int], None] | None = None) -> SweepOutcome:
    """Run the runs missing from ``store`` and commit each row as it arrives.

    ``on_start(total, missing)`` is called once before running, ``on_row(row)`` after each commit.
    """
    matrix = sweep.matrix()
    have = store.keys()
    missing = [r for r in matrix if r.key not in have]
    if on_start:
        on_start(len(matrix), len(missing))
    outcome = SweepOutcome(len(matrix), len(matrix) - len(missing), 0, 0)
    rows = executor.map_runs(missing, runner)
    try:
        for row in rows:
            if store.add(row):
                outcome.ran += 1
                outcome.failed += row["error"] is not None
                if on_row:
                    on_row(row)
    finally:
        rows.close()  # an interruption cancels what is still queued
    return outcome
