"""``reclaimlab sweep SWEEP.toml [--engine local|dask] [--scheduler ADDRESS] [--workers N]
[--out FILE] [--report]``.

:func:`register` adds the subcommand to the main parser (its ``func`` default takes the parsed
arguments and returns the exit status); :func:`main` runs it stand-alone. Exit status: 0 when
the sweep finished (runs that raised are recorded in the store and counted, not fatal), 2 on a
user error (one paragraph on stderr, no traceback), 130 when interrupted -- every row finished
by then is stored, and the same command resumes.
"""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

from reclaimlab.sweep.executor import Runner, default_runner, make_executor, run_sweep
from reclaimlab.sweep.spec import Sweep, SweepError, check_configs, load_sweep
from reclaimlab.sweep.store import open_store, read_rows

DESCRIPTION = ("Run a parameter sweep: designs x seeds x the product of the axes of SWEEP.toml, "
               "one row per run in DuckDB or Parquet (by the --out suffix). Re-running the same "
               "command runs only the rows still missing.")


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``sweep`` to the main command's subparsers."""
    parser = subparsers.add_parser("sweep", help="a parameter sweep into DuckDB or Parquet",
                                   description=DESCRIPTION)
    add_arguments(parser)
    parser.set_defaults(func=run_command)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sweep_file", metavar="SWEEP.toml", help="the sweep file")
    parser.add_argument("--engine", choices=("local", "dask"), default="local",
                        help="local process pool (default) or Dask distributed")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="Dask scheduler to connect to (default: start a LocalCluster)")
    parser.add_argument("--workers", type=_positive, metavar="N",
                        help="worker processes (default: all CPUs)")
    parser.add_argument("--out", metavar="FILE",
                        help="results, .duckdb or .parquet (default: SWEEP.duckdb here)")
    parser.add_argument("--report", action="store_true",
                        help="print the design comparison and write plots next to --out")


def main(argv: list[str] | None = None, runner: Runner | None = None) -> int:
    """``reclaimlab sweep`` on its own; ``runner`` replaces the simulator (tests, benchmarks)."""
    parser = argparse.ArgumentParser(prog="reclaimlab sweep", description=DESCRIPTION)
    add_arguments(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed the usage error
        return int(exc.code or 0)
    return run_command(args, runner)


def run_command(args: argparse.Namespace, runner: Runner | None = None) -> int:
    """Run (or resume) the sweep, then optionally report; the exit status."""
    err = Console(stderr=True)
    store = executor = None
    try:
        sweep = load_sweep(args.sweep_file)
        if runner is None:
            runner = default_runner
            check_configs(sweep)
        out = Path(args.out or Path(args.sweep_file).stem + ".duckdb")
        executor = make_executor(args.engine, args.workers, args.scheduler)
        store = open_store(out)
        with _sigterm_as_interrupt():
            outcome = _run_with_progress(sweep, store, executor, runner, err)
    except SweepError as exc:
        err.print(f"reclaimlab sweep: error: {exc}", markup=False, highlight=False,
                  soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err.print("reclaimlab sweep: interrupted; every finished run is stored, "
                  "run the same command again to resume", markup=False, soft_wrap=True)
        return 130
    finally:
        if executor is not None:
            executor.close()
        if store is not None:
            store.close()
    err.print(f"{outcome.ran} runs done, {outcome.failed} failed, {outcome.skipped} already "
              f"stored; results in {out}", markup=False, highlight=False, soft_wrap=True)
    if args.report:
        _report(sweep, out)
    return 0


def _run_with_progress(sweep: Sweep, store, executor, runner: Runner, console: Console):
    """The sweep under a progress bar: runs done, failures, elapsed time, ETA."""
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("[red]{task.fields[failed]} failed"), TimeElapsedColumn(),
                        TextColumn("ETA"), TimeRemainingColumn(), console=console)
    state: dict[str, Any] = {"failed": 0}

    def on_start(total: int, missing: int) -> None:
        what = "sweep" if missing == total else f"sweep ({total - missing} of {total} stored)"
        state["task"] = progress.add_task(what, total=missing, failed=0)

    def on_row(row: dict) -> None:
        state["failed"] += row["error"] is not None
        progress.update(state["task"], advance=1, failed=state["failed"])

    with progress:
        return run_sweep(sweep, store, executor, runner, on_row=on_row, on_start=on_start)


def _report(sweep: Sweep, out: Path) -> None:
    from reclaimlab.sweep.report import print_report, write_plots
    rows = read_rows(out)
    print_report(rows, sweep.axis_keys, sweep.spec.designs)
    prefix = out.with_suffix("")
    for path in write_plots(rows, sweep.axis_keys, prefix, sweep.spec.designs):
        print(f"wrote {path}")


class _sigterm_as_interrupt:
    """SIGTERM unwinds like Ctrl-C, so the store is closed (and Parquet compacted) on the way."""

    def __enter__(self) -> None:
        self.old = None
        if threading.current_thread() is threading.main_thread():
            self.old = signal.signal(signal.SIGTERM, self._raise)

    @staticmethod
    def _raise(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    def __exit__(self, *exc: Any) -> None:
        if self.old is not None:
            signal.signal(signal.SIGTERM, self.old)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value
