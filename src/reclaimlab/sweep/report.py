"""mmtests-style comparison of a sweep's designs, and its plots.

For every metric, design and axis point the runs over seeds are summarised as mmtests' compare
scripts do for kernels over iterations: the median, the 90th percentile and the spread (max - min,
also as a percentage of the median), with each design's median relative to the first design's.
Where the rows carry HdrHistograms, the histograms of all seeds are merged and the p99 of the
merged distribution is shown too (a percentile of the pooled allocations, not a median of
percentiles). Runs that raised are counted, never averaged.

Plots (matplotlib with the Agg backend, imported only when plotting): the p99 allocation latency
against each axis per design (median over seeds and the other axes, min-max band), and for two or
more axes a heatmap per design over the first two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from reclaimlab.report.compare import outcomes

P99 = "alloc_latency_ns.p99"
METRICS = (
    (P99, "allocation latency p99"),
    ("alloc_latency_ns.p999", "allocation latency p99.9"),
    ("direct_reclaim.p99_ns", "direct reclaim p99"),
    ("inodes.evicted_in_reclaim", "inodes evicted in reclaim"),
    ("inodes.deferred", "inodes deferred"),
)
HIST = "alloc_latency_hist"


@dataclass
class Summary:
    """One design at one axis point, over its seeds."""

    n: int
    median: float
    p90: float
    lo: float
    hi: float

    @property
    def spread_pct(self) -> float:
        return 100.0 * (self.hi - self.lo) / self.median if self.median else 0.0


def summarize(values: Sequence[float]) -> Summary | None:
    """Median, p90 and range of one cell; None when no run produced the metric."""
    vals = np.asarray([v for v in values if v is not None], dtype=float)
    if not len(vals):
        return None
    return Summary(len(vals), float(np.median(vals)), float(np.percentile(vals, 90)),
                   float(vals.min()), float(vals.max()))


def group(rows: list[dict], axis_keys: Sequence[str]) -> dict[tuple, dict[str, list[dict]]]:
    """Successful rows by axis point (sorted) and design (in order of appearance)."""
    groups: dict[tuple, dict[str, list[dict]]] = {}
    for row in rows:
        if row.get("error") is None:
            point = tuple(row.get(k) for k in axis_keys)
            groups.setdefault(point, {}).setdefault(row["design"], []).append(row)
    return dict(sorted(groups.items(), key=lambda kv: tuple(map(_sort_key, kv[0]))))


def merged_percentile(encoded: Sequence[str | None], percentile: float) -> float | None:
    """The percentile of the union of HdrHistograms (base64), None if there are none."""
    from hdrh.histogram import HdrHistogram
    hists = [HdrHistogram.decode(e) for e in encoded if e]
    if not hists:
        return None
    merged = hists[0]
    for h in hists[1:]:
        merged.add(h)
    return float(merged.get_value_at_percentile(percentile))


def designs_of(rows: list[dict], designs: Sequence[str] | None = None) -> list[str]:
    """The designs to compare, the sweep's order first (the first is the baseline)."""
    seen = list(designs or [])
    for row in rows:
        if row["design"] not in seen:
            seen.append(row["design"])
    return seen


def comparison_tables(rows: list[dict], axis_keys: Sequence[str],
                      designs: Sequence[str] | None = None) -> list[Table]:
    """One rich table per metric present: rows are axis point x statistic, columns designs."""
    designs = designs_of(rows, designs)
    groups = group(rows, axis_keys)
    tables = []
    for metric, title in METRICS:
        if not any(row.get(metric) is not None for row in rows):
            continue
        table = Table(title=f"{title} ({metric})", title_justify="left")
        for key in axis_keys:
            table.add_column(key, justify="right")
        table.add_column("stat")
        for d in designs:
            table.add_column(d, justify="right")
        for point, by_design in groups.items():
            cells = {d: summarize([r.get(metric) for r in by_design.get(d, [])]) for d in designs}
            base = cells[designs[0]]
            labels = [_fmt_axis(v) for v in point]
            for stat in ("median", "p90", "spread"):
                table.add_row(*labels, stat, _cell(cells[designs[0]], None, stat, metric),
                              *(_cell(cells[d], base, stat, metric) for d in designs[1:]))
                labels = [""] * len(point)
            ended = {d: outcomes(by_design.get(d, [])) for d in designs}
            if any(e != "completed" for e in ended.values()):   # hung or OOM runs are in the stats
                table.add_row(*labels, "ended", *(ended[d] for d in designs))
            if metric == P99 and any(r.get(HIST) for rs in by_design.values() for r in rs):
                merged = {d: merged_percentile([r.get(HIST) for r in by_design.get(d, [])], 99.0)
                          for d in designs}
                table.add_row(*labels, "merged p99",
                              *(_fmt(merged[d], metric) if merged[d] is not None else "-"
                                for d in designs))
            table.add_section()
        tables.append(table)
    return tables


def growth_table(rows: list[dict], axis_keys: Sequence[str],
                 designs: Sequence[str] | None = None) -> Table | None:
    """How much each design's median p99 changes from one end of each axis to the other."""
    designs = designs_of(rows, designs)
    table = Table(title="p99 growth along each axis (median at last value / at first value)",
                  title_justify="left")
    table.add_column("axis")
    table.add_column("from -> to")
    for d in designs:
        table.add_column(d, justify="right")
    for key in axis_keys:
        curves = {d: axis_curve(rows, key, d) for d in designs}
        xs = sorted({x for c in curves.values() for x in c}, key=_sort_key)
        if len(xs) < 2:
            continue
        ratios = [_ratio(curves[d].get(xs[-1]), curves[d].get(xs[0])) for d in designs]
        table.add_row(key, f"{_fmt_axis(xs[0])} -> {_fmt_axis(xs[-1])}", *ratios)
    return table if table.row_count else None


def axis_curve(rows: list[dict], key: str, design: str, metric: str = P99) -> dict[Any, Summary]:
    """Summary of ``metric`` per value of one axis for one design, over seeds and other axes."""
    by_x: dict[Any, list] = {}
    for row in rows:
        if row["design"] == design and row.get("error") is None:
            by_x.setdefault(row.get(key), []).append(row.get(metric))
    cells = {x: summarize(v) for x, v in by_x.items()}
    return {x: s for x, s in sorted(cells.items(), key=lambda kv: _sort_key(kv[0])) if s}


def failures_line(rows: list[dict]) -> str:
    """``N runs, M failed (design: count, ...)``."""
    failed: dict[str, int] = {}
    for row in rows:
        if row.get("error") is not None:
            failed[row["design"]] = failed.get(row["design"], 0) + 1
    detail = ", ".join(f"{d}: {n}" for d, n in failed.items())
    return f"{len(rows)} runs, {sum(failed.values())} failed" + (f" ({detail})" if detail else "")


def print_report(rows: list[dict], axis_keys: Sequence[str], designs: Sequence[str] | None = None,
                 console: Console | None = None) -> None:
    """The comparison tables, the growth summary and the failure count."""
    console = console or Console()
    console.print(failures_line(rows))
    for table in comparison_tables(rows, axis_keys, designs):
        console.print(table)
    growth = growth_table(rows, axis_keys, designs)
    if growth is not None:
        console.print(growth)


def write_plots(rows: list[dict], axis_keys: Sequence[str], prefix: str | Path,
                designs: Sequence[str] | None = None) -> list[Path]:
    """p99 against each axis per design, and a heatmap over the first two axes; the PNG paths."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    designs = designs_of(rows, designs)
    paths = []
    for key in axis_keys:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for d in designs:
            curve = axis_curve(rows, key, d)
            if not curve:
                continue
            xs = _plot_xs(list(curve))
            ax.plot(xs, [s.median / 1e3 for s in curve.values()], marker="o", label=d)
            ax.fill_between(xs, [s.lo / 1e3 for s in curve.values()],
                            [s.hi / 1e3 for s in curve.values()], alpha=0.2)
        _label_axis(ax, key, list(axis_curve(rows, key, designs[0]) or {}))
        ax.set_ylabel("allocation latency p99 (µs), median over seeds")
        ax.set_title(f"p99 allocation latency against {key}")
        ax.legend()
        paths.append(_save(fig, Path(f"{prefix}-p99-{key}.png")))
    if len(axis_keys) >= 2:
        paths.append(_heatmap(rows, axis_keys[0], axis_keys[1], designs,
                              Path(f"{prefix}-p99-heatmap.png")))
    return paths


def _heatmap(rows: list[dict], xkey: str, ykey: str, designs: Sequence[str], path: Path) -> Path:
    """One panel per design: median p99 over (xkey, ykey), one shared colour scale."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    xs = sorted({r.get(xkey) for r in rows}, key=_sort_key)
    ys = sorted({r.get(ykey) for r in rows}, key=_sort_key)
    grids = {}
    for d in designs:
        grid = np.full((len(ys), len(xs)), np.nan)
        for (x, y), vals in _cells(rows, d, xkey, ykey).items():
            s = summarize(vals)
            if s:
                grid[ys.index(y), xs.index(x)] = s.median / 1e3
        grids[d] = grid
    finite = np.concatenate([g[np.isfinite(g)] for g in grids.values()] or [np.array([])])
    norm = LogNorm(finite.min(), finite.max()) if len(finite) and finite.min() > 0 else None
    fig, axes = plt.subplots(1, len(designs), figsize=(4.5 * len(designs), 4), squeeze=False)
    for ax, d in zip(axes[0], designs):
        im = ax.imshow(grids[d], origin="lower", aspect="auto", norm=norm, cmap="viridis")
        ax.set_xticks(range(len(xs)), [_fmt_axis(x) for x in xs], rotation=45)
        ax.set_yticks(range(len(ys)), [_fmt_axis(y) for y in ys])
        ax.set_xlabel(xkey)
        ax.set_title(d)
    axes[0][0].set_ylabel(ykey)
    fig.colorbar(im, ax=axes[0].tolist(), label="p99 allocation latency (µs), median")
    return _save(fig, path)


def _cells(rows: list[dict], design: str, xkey: str, ykey: str) -> dict[tuple, list]:
    cells: dict[tuple, list] = {}
    for row in rows:
        if row["design"] == design and row.get("error") is None:
            cells.setdefault((row.get(xkey), row.get(ykey)), []).append(row.get(P99))
    return cells


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _numeric(values: list) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _plot_xs(values: list) -> list:
    """Numbers plot at their value, anything else at its index."""
    return values if _numeric(values) else list(range(len(values)))


def _label_axis(ax, key: str, values: list) -> None:
    ax.set_xlabel(key)
    if not _numeric(values):
        ax.set_xticks(range(len(values)), [_fmt_axis(v) for v in values])


def _cell(s: Summary | None, base: Summary | None, stat: str, metric: str) -> str:
    if s is None:
        return "-"
    if stat == "spread":
        return f"{_fmt(s.hi - s.lo, metric)} ({s.spread_pct:.1f}%)"
    value = s.median if stat == "median" else s.p90
    ref = None if base is None else (base.median if stat == "median" else base.p90)
    rel = f" ({100.0 * (value - ref) / ref:+.1f}%)" if ref else ""
    return _fmt(value, metric) + rel


def _fmt(value: float, metric: str) -> str:
    """Latencies in human units (ns, µs, ms, s); counts as numbers."""
    if not metric.endswith("_ns") and not metric.startswith("alloc_latency_ns."):
        return f"{value:g}"
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.2f}{unit}"
    return f"{value:.0f}ns"


def _fmt_axis(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _ratio(last: Summary | None, first: Summary | None) -> str:
    if last is None or first is None or not first.median:
        return "-"
    return f"x{last.median / first.median:.2f}"


def _sort_key(value: Any) -> tuple:
    """Numbers before strings, None last, so mixed axes still sort."""
    if value is None:
        return (2, "")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value)
    return (1, str(value))
