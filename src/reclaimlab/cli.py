"""The ``reclaimlab`` command line (interfaces.md "Commands").

Exit status: 0 on success; 1 when ``--check`` was given and the simulated system misbehaved
(a deadlock, a warning, a leaked inode, a broken invariant, or an outcome other than
"completed"); 2 on a user error, with one paragraph on stderr and no traceback. Output files
(``--trace``, ``--plot``) are written only after the runs succeeded, through a temporary file
renamed into place, so bad input never leaves a partial file behind.

``explore``, ``replay`` and ``sweep`` come from their own packages: each of
``reclaimlab.explore.cli`` and ``reclaimlab.sweep.cli`` that exists provides
``register(subparsers)``, adding sub-parsers whose ``func`` default is ``handler(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from reclaimlab.scenario.errors import ScenarioError
from reclaimlab.scenario.models import DESIGNS
from reclaimlab.vfs.designs import EVICT_DESIGNS

EXTENSIONS = ("reclaimlab.explore.cli", "reclaimlab.sweep.cli")

EXAMPLES = """\
examples:
  reclaimlab list
  reclaimlab run overlay-unlink --design sync
  reclaimlab run bs-gt-ps --set fs.0.block_size=65536 --check
  reclaimlab compare overlay-unlink --seeds 3
  reclaimlab compare overlay-unlink --designs sync,passive-ref --json
"""


class UserError(Exception):
    """Bad arguments found after parsing (exit 2)."""


# -- sub-commands -------------------------------------------------------------------------

def cmd_list(args: argparse.Namespace) -> int:
    from reclaimlab.scenario.loader import builtin_names, load_scenario

    scenarios = [{"name": n, "description": load_scenario(n).scenario.description}
                 for n in builtin_names()]
    designs = [{"name": d, "description": DESIGN_HELP[d]} for d in DESIGNS]
    if args.json:
        print(json.dumps({"scenarios": scenarios, "designs": designs}, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for title, rows in (("scenarios", scenarios), ("designs", designs)):
        table = Table(title=title, title_justify="left")
        table.add_column("name", style="bold")
        table.add_column("description")
        for row in rows:
            table.add_row(row["name"], row["description"])
        console.print(table)
    return 0


DESIGN_HELP = {d.name: f"{d.summary} — {d.source}" for d in EVICT_DESIGNS.values()}


def cmd_run(args: argparse.Namespace) -> int:
    from reclaimlab.scenario import simulate

    check_output_path(args.trace, "--trace")
    with Progress(args.scenario) as progress:
        run = simulate(args.scenario, args.design, args.seed, args.set,
                       trace=args.trace is not None, progress=progress.update)
    result = run.result
    if args.trace:
        write_atomically(args.trace, lambda tmp: Path(tmp).write_text(
            json.dumps(run.trace, separators=(",", ":"))))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        from reclaimlab.report.human import render_human

        print(render_human(result))
    return 1 if args.check and misbehaved(result) else 0


def cmd_compare(args: argparse.Namespace) -> int:
    from reclaimlab.scenario import load_scenario, run_scenario

    designs = parse_designs(args.designs)
    check_output_path(args.plot, "--plot")
    if args.seeds < 1:
        raise UserError("--seeds must be at least 1")
    first = args.seed if args.seed is not None else \
        load_scenario(args.scenario, args.set).scenario.run.seed
    runs = []
    for design in designs:
        for seed in range(first, first + args.seeds):
            with Progress(f"{args.scenario} {design} seed {seed}") as progress:
                runs.append(run_scenario(args.scenario, design, seed, args.set,
                                         progress=progress.update))
    if args.plot:
        from reclaimlab.report.plots import plot_latency_cdf

        write_atomically(args.plot, lambda tmp: plot_latency_cdf(runs, tmp))
    if args.json:
        print(json.dumps({"scenario": args.scenario, "runs": runs}, indent=2))
    else:
        from reclaimlab.report.compare import compare_report

        print(compare_report(runs))
    return 1 if args.check and any(misbehaved(r) for r in runs) else 0


def misbehaved(result: dict[str, Any]) -> bool:
    """What ``--check`` fails on: the simulated system did something a kernel must not."""
    return (result["outcome"] != "completed" or bool(result["warnings"])
            or bool(result["deadlocks"]) or result["inodes"]["leaked"] > 0
            or not result["invariants"]["ok"])


def parse_designs(text: str | None) -> list[str]:
    if text is None:
        return list(DESIGNS)
    designs = [d.strip() for d in text.split(",") if d.strip()]
    bad = [d for d in designs if d not in DESIGNS]
    if bad or not designs:
        raise UserError(f"--designs: unknown design {bad[0] if bad else '(empty)'!r}; "
                        f"expected a comma-separated list of {', '.join(DESIGNS)}")
    return list(dict.fromkeys(designs))


# -- output files and progress ------------------------------------------------------------

def check_output_path(path: str | None, option: str) -> None:
    """Refuse an output file whose directory does not exist before running anything."""
    if path is None:
        return
    parent = Path(path).resolve().parent
    if not parent.is_dir():
        raise UserError(f"{option} {path}: directory {parent} does not exist")
    if Path(path).is_dir():
        raise UserError(f"{option} {path}: is a directory, expected a file name")


def write_atomically(path: str, write: Callable[[str], None]) -> None:
    """Have ``write`` fill a temporary file (same directory and suffix), then rename it into
    place: a failure leaves no partial file behind."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.resolve().parent, prefix=f".{target.name}.",
                               suffix=target.suffix)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 is for the temporary name only
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Progress:
    """A rich progress bar on stderr for runs that take longer than a second of wall time."""

    DELAY_S = 1.0

    def __init__(self, label: str) -> None:
        self.label = label
        self.started = time.monotonic()
        self.bar: Any = None
        self.task_id: Any = None

    def __enter__(self) -> "Progress":
        return self

    def update(self, fraction: float) -> None:
        if self.bar is None:
            if time.monotonic() - self.started < self.DELAY_S or not sys.stderr.isatty():
                return
            from rich.console import Console
            from rich.progress import Progress as RichProgress

            self.bar = RichProgress(console=Console(stderr=True), transient=True)
            self.bar.start()
            self.task_id = self.bar.add_task(self.label, total=1.0)
        self.bar.update(self.task_id, completed=fraction)

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()


# -- the parser ---------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="reclaimlab", formatter_class=fmt, epilog=EXAMPLES,
        description="A deterministic laboratory for Linux memory reclaim and inode eviction: "
                    "run a scenario under an eviction design and read what the kernel would "
                    "have printed.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("list", help="built-in scenarios and designs", formatter_class=fmt,
                       epilog="example:\n  reclaimlab list --json")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("run", help="one simulation", formatter_class=fmt,
                       epilog="examples:\n  reclaimlab run overlay-unlink --design sync\n"
                              "  reclaimlab run my.toml --set machine.memory_mb=512 --json")
    add_scenario_args(p)
    p.add_argument("--design", choices=DESIGNS, help="eviction design (default: the scenario's)")
    p.add_argument("--seed", type=int, help="random seed (default: the scenario's run.seed)")
    p.add_argument("--trace", metavar="FILE",
                   help="write a Perfetto-loadable trace (Chrome trace-event JSON)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("compare", help="one scenario under several designs and seeds",
                       formatter_class=fmt,
                       epilog="examples:\n  reclaimlab compare overlay-unlink --seeds 3\n"
                              "  reclaimlab compare rm-rf --designs sync,inodegc --plot cdf.png")
    add_scenario_args(p)
    p.add_argument("--designs", metavar="D1,D2,...",
                   help=f"designs to compare (default: all of {','.join(DESIGNS)})")
    p.add_argument("--seeds", type=int, default=1, metavar="N", help="seeds per design")
    p.add_argument("--seed", type=int, help="first seed (default: the scenario's run.seed)")
    p.add_argument("--plot", metavar="FILE", help="write a PNG: allocation-latency CDF per design")
    p.set_defaults(func=cmd_compare)

    for name in EXTENSIONS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name is not None and name.startswith(e.name):
                continue
            raise
        module.register(sub)
    return parser


def add_scenario_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("scenario", metavar="SCENARIO", help="a built-in name or a TOML file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a scenario key by dotted path, e.g. machine.memory_mb=512, "
                        "fs.0.block_size=65536, workload.unlinkers.tasks=8")
    p.add_argument("--json", action="store_true", help="print the run result(s) as JSON")
    p.add_argument("--check", action="store_true",
                   help="exit 1 if the simulated system misbehaved (deadlock, warning, leak)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ScenarioError, UserError) as e:
        print(f"reclaimlab {args.command}: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
