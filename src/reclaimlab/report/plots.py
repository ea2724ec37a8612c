"""PNG plots (matplotlib, Agg backend, imported only when a plot is drawn).

- ``plot_latency_cdf(runs, path)``: allocation latency CDF per design (log x axis), from the run
  results' ``alloc_latency_cdf``;
- ``plot_free_pages(metrics, path)``: free pages of the zone against its min/low/high
  watermarks over virtual time;
- ``plot_queue_depth(metrics, path)``: inodegc / deferred-eviction queue depths over time.
"""

from __future__ import annotations

from typing import Any

from reclaimlab.sim import NSEC_PER_SEC


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_latency_cdf(runs: list[dict[str, Any]], path: str, title: str | None = None) -> None:
    """One CDF line per run (labelled by design, and seed when a design has several)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    designs = [r["design"] for r in runs]
    for r in runs:
        points = r.get("alloc_latency_cdf") or []
        if not points:
            continue
        label = r["design"]
        if designs.count(label) > 1:
            label += f" seed {r['seed']}"
        ax.step([max(ns, 1) for ns, _ in points], [p for _, p in points], where="post",
                label=label)
    ax.set_xscale("log")
    ax.set_xlabel("allocation latency (ns, virtual time)")
    ax.set_ylabel("fraction of allocations")
    ax.set_title(title or f"{runs[0]['scenario'] if runs else ''}: allocation latency CDF")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=100, bbox_inches="tight", format="png")
    plt.close(fig)


def plot_free_pages(metrics: Any, path: str) -> None:
    """Free pages (step line) with the min/low/high watermarks over time."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 5))
    if metrics.free_pages:
        ax.step([t / NSEC_PER_SEC for t, _ in metrics.free_pages],
                [n for _, n in metrics.free_pages], where="post", label="free pages")
    end = metrics.sim.now / NSEC_PER_SEC
    for i, name in enumerate(("min", "low", "high"), start=1):
        if metrics.watermarks:
            xs = [t / NSEC_PER_SEC for t, *_ in metrics.watermarks] + [end]
            ys = [w[i] for w in metrics.watermarks] + [metrics.watermarks[-1][i]]
            ax.step(xs, ys, where="post", linestyle="--", label=f"{name} watermark")
    ax.set_xlabel("virtual time (s)")
    ax.set_ylabel("pages")
    ax.set_title("Free pages against the watermarks")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=100, bbox_inches="tight", format="png")
    plt.close(fig)


def plot_queue_depth(metrics: Any, path: str) -> None:
    """Each reported queue's depth over time."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 5))
    for name, series in metrics.queue_depth.items():
        ax.step([t / NSEC_PER_SEC for t, _ in series], [d for _, d in series], where="post",
                label=name)
    ax.set_xlabel("virtual time (s)")
    ax.set_ylabel("queued inodes")
    ax.set_title("Deferred-eviction queue depth")
    ax.grid(True, alpha=0.3)
    if metrics.queue_depth:
        ax.legend()
    fig.savefig(path, dpi=100, bbox_inches="tight", format="png")
    plt.close(fig)
