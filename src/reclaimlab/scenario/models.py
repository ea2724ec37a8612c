"""Typed scenario: ``[machine]``, ``[[device]]``, ``[[fs]]``, ``[design]``, ``[[workload]]``, ``[run]``.

Every default is the kernel's (or mkfs's) default where one exists; docs/scenario.md cites the
source of each. Models forbid unknown keys and are strict about types (TOML already gives typed
values, so ``"512"`` for an integer is a mistake worth reporting, not something to coerce).
Workload kinds live in :mod:`reclaimlab.workload.specs`; this module only gathers them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from reclaimlab.vfs.designs import DESIGN_NAMES as DESIGNS  # the one registry of designs
from reclaimlab.workload.specs import WorkloadSpec

NAME_RE = r"^[A-Za-z][A-Za-z0-9_-]*$"


class Strict(BaseModel):
    """Base of all scenario models: unknown keys and loose types are errors."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def _power_of_two(value: int, lo: int, hi: int) -> int:
    if value < lo or value > hi or value & (value - 1):
        raise ValueError(f"a power of two between {lo} and {hi}")
    return value


class Machine(Strict):
    """The simulated box: one NUMA node, one zone (``ZONE_NORMAL``)."""

    memory_mb: int = Field(1024, ge=16, le=65536)
    page_size: int = 4096
    cpus: int = Field(2, ge=1, le=256)
    swap_mb: int = Field(0, ge=0)
    kernel_version: str = Field("6.12", pattern=r"^[0-9]+\.[0-9]+$")
    vfs_cache_pressure: int = Field(100, ge=0, le=10000)
    watermark_scale_factor: int = Field(10, ge=1, le=3000)
    min_free_kbytes: int | None = Field(None, ge=128, le=262144)
    dirty_writeback_centisecs: int = Field(500, ge=1, le=360000)
    dirty_expire_centisecs: int = Field(3000, ge=1, le=360000)
    lock_spin_on_owner: bool = True

    @field_validator("page_size")
    @classmethod
    def _page_size(cls, v: int) -> int:
        if v not in (4096, 16384, 65536):
            raise ValueError("one of 4096, 16384, 65536 (the page sizes Linux supports on x86-64/arm64)")
        return v


class Device(Strict):
    """A block device: a preset (``type``) whose service-time parameters each key may override
    (None keeps the preset's; see ``reclaimlab.block.device.PRESETS``)."""

    name: str = Field(pattern=NAME_RE)
    type: Literal["ramdisk", "nvme", "ssd", "hdd"] = "nvme"
    size_mb: int = Field(16384, ge=16, le=1 << 30)
    read_latency_us: float | None = Field(None, gt=0, le=1e6)
    write_latency_us: float | None = Field(None, gt=0, le=1e6)
    flush_us: float | None = Field(None, ge=0, le=1e7)
    bandwidth_mb_s: float | None = Field(None, gt=0, le=1e6)
    channels: int | None = Field(None, ge=1, le=1024)
    queue_depth: int | None = Field(None, ge=1, le=4096)
    dist: Literal["fixed", "uniform", "exponential", "lognormal"] | None = None

    def model_overrides(self) -> dict[str, int | str]:
        """Keyword overrides of the preset's ``DeviceModel`` for the keys that were set."""
        us = 1000
        out: dict[str, int | str] = {}
        if self.read_latency_us is not None:
            out["read_random_ns"] = int(self.read_latency_us * us)
        if self.write_latency_us is not None:
            out["write_random_ns"] = int(self.write_latency_us * us)
        if self.flush_us is not None:
            out["flush_ns"] = int(self.flush_us * us)
        if self.bandwidth_mb_s is not None:
            out["bandwidth_bytes_per_s"] = int(self.bandwidth_mb_s * 2**20)
        for key in ("channels", "queue_depth", "dist"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out


Tunable = int | float | bool | str


class FsBase(Strict):
    """Keys shared by every filesystem entry."""

    mountpoint: str = Field(pattern=r"^/[^\s]*$")
    lazytime: bool = False
    tunables: dict[str, Tunable] = Field(default_factory=dict)


class BlockFs(FsBase):
    """A filesystem on a block device."""

    device: str = Field(pattern=NAME_RE)
    block_size: int = 4096
    journal_mb: int = Field(64, ge=1, le=2048)

    @field_validator("block_size")
    @classmethod
    def _block_size(cls, v: int) -> int:
        return _power_of_two(v, 1024, 65536)


class Ext4Fs(BlockFs):
    """ext4-like: inline eviction natively, jbd2 journal."""

    type: Literal["ext4"]
    commit_s: float = Field(5.0, gt=0)


class XfsFs(BlockFs):
    """XFS-like: background inodegc natively, delayed logging."""

    type: Literal["xfs"]
    blocking_reclaim: bool = False


class OverlayFs(FsBase):
    """A static overlay mount (containers may also mount their own, see container_churn)."""

    type: Literal["overlay"]
    lowerdir: str = Field(pattern=r"^/[^\s]*$")
    upperdir: str = Field(pattern=r"^/[^\s]*$")
    workdir: str = Field(pattern=r"^/[^\s]*$")


FsSpec = Annotated[Ext4Fs | XfsFs | OverlayFs, Field(discriminator="type")]


class Design(Strict):
    """The eviction architecture and its knobs (the VFS owns the switch)."""

    name: Literal[DESIGNS] = "native"  # type: ignore[valid-type]
    inodegc_delay_jiffies: int = Field(1, ge=0, le=1000)
    inodegc_queue_depth: int = Field(32, ge=1, le=65536)
    inodegc_max_backlog: int = Field(256, ge=1, le=1 << 20)
    inodegc_shrinker_throttle: bool = True
    inodegc_backlog_throttle: bool = True
    inodegc_worker_nofs: bool = True
    passive_ref_max_backlog: int = Field(256, ge=1, le=1 << 20)
    passive_ref_throttle: bool = True
    passive_ref_exempt_reclaim: bool = True
    evict_async_delay_jiffies: int = Field(0, ge=0, le=1000)
    split_evict_delay_jiffies: int = Field(0, ge=0, le=1000)
    deferred_reclaim_delay_jiffies: int = Field(0, ge=0, le=1000)
    deferred_reclaim_list_limit: int = Field(256, ge=0, le=1 << 20)
    deferred_reclaim_throttle_factor: float = Field(1.0, ge=0, le=1000)

    def design_knobs(self) -> dict[str, int | float]:
        """The ``vfs.designs`` designs' keyword arguments of ``VfsConfig``."""
        return {k: getattr(self, k) for k in (
            "evict_async_delay_jiffies", "split_evict_delay_jiffies",
            "deferred_reclaim_delay_jiffies", "deferred_reclaim_list_limit",
            "deferred_reclaim_throttle_factor")}

    def inodegc_config(self) -> dict[str, int | bool]:
        """Keyword arguments of ``reclaimlab.fs.inodegc.InodegcConfig``."""
        return {"delay_jiffies": self.inodegc_delay_jiffies,
                "queue_depth": self.inodegc_queue_depth,
                "max_backlog": self.inodegc_max_backlog,
                "shrinker_throttle": self.inodegc_shrinker_throttle,
                "backlog_throttle": self.inodegc_backlog_throttle,
                "worker_nofs": self.inodegc_worker_nofs}


class Run(Strict):
    """How long and with which seed; detector thresholds."""

    duration_ms: float = Field(2000.0, gt=0, le=3_600_000)
    seed: int = Field(0, ge=0, le=2**63 - 1)
    hung_task_timeout_s: float = Field(120.0, gt=0)
    hung_task_panic: bool = False
    max_events: int = Field(20_000_000, ge=1000)
    shutdown_grace_ms: float = Field(1000.0, ge=0, le=3_600_000)


class Explore(Strict):
    """The exploration bounds this configuration is meant for: ``reclaimlab explore``'s
    defaults for it (its ``--start``, ``--max-depth``, ``--preemptions`` override them)."""

    start_ms: float = Field(0.0, ge=0)
    max_depth: int = Field(50, ge=1)
    preemptions: int = Field(2, ge=0)


class Scenario(Strict):
    """A whole scenario file."""

    description: str = ""
    machine: Machine = Field(default_factory=Machine)
    device: list[Device] = Field(default_factory=list)
    fs: list[FsSpec] = Field(default_factory=list)
    design: Design = Field(default_factory=Design)
    workload: list[WorkloadSpec] = Field(default_factory=list)
    run: Run = Field(default_factory=Run)
    explore: Explore = Field(default_factory=Explore)

    @model_validator(mode="after")
    def _cross_references(self) -> "Scenario":
        _unique("device", [d.name for d in self.device])
        _unique("fs", [f.mountpoint for f in self.fs], what="mountpoint")
        _unique("workload", [w.name for w in self.workload if w.name])
        devices = {d.name for d in self.device}
        for i, fs in enumerate(self.fs):
            if isinstance(fs, BlockFs) and fs.device not in devices:
                raise ValueError(f"fs.{i}.device: no [[device]] named {fs.device!r}"
                                 f" (have: {', '.join(sorted(devices)) or 'none'})")
        for i, w in enumerate(self.workload):
            bad = [c for c in w.cpus or [] if c >= self.machine.cpus]
            if bad:
                raise ValueError(f"workload.{i}.cpus: CPU {bad[0]} does not exist"
                                 f" (machine.cpus = {self.machine.cpus})")
        from reclaimlab.workload.recipe import check_recipe_paths

        check_recipe_paths(self)
        return self


def _unique(table: str, names: list[str], what: str = "name") -> None:
    seen: set[str] = set()
    for i, n in enumerate(names):
        if n in seen:
            raise ValueError(f"{table}.{i}.{what}: {n!r} is used twice")
        seen.add(n)
