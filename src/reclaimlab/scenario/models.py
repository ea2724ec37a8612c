"""Typed scenario: ``[machine]``, ``[[device]]``, ``[[fs]]``, ``[design]``, ``[[workload]]``, ``[run]``.

Every default is the kernel's (or mkfs's) default where one exists; docs/scenario.md cites the
source of each. Models forbid unknown keys and are strict about types (TOML already gives typed
values, so ``"512"`` for an integer is a mistake worth reporting, not something to coerce).
Workload kinds live in :mod:`reclaimlab.workload.specs`; this module only gathers them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from reclaimlab.workload.specs import WorkloadSpec

DESIGNS = ("native", "sync", "inodegc", "passive-ref")
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

    memory_mb: int = Field(1024, ge=16, le=1 << 20)
    page_size: int = 4096
    cpus: int = Field(2, ge=1, le=256)
    swap_mb: int = Field(0, ge=0)
    kernel_version: str = Field("6.12", pattern=r"^[0-9]+\.[0-9]+$")
    vfs_cache_pressure: int = Field(100, ge=0, le=10000)
    watermark_scale_factor: int = Field(10, ge=1, le=3000)
    min_free_kbytes: int | None = Field(None, ge=128, le=262144)
    max_order: int = Field(10, ge=3, le=12)

    @field_validator("page_size")
    @classmethod
    def _page_size(cls, v: int) -> int:
        if v not in (4096, 16384, 65536):
            raise ValueError("one of 4096, 16384, 65536 (the page sizes Linux supports on x86-64/arm64)")
        return v

    @property
    def kernel_at_least_6_12(self) -> bool:
        """True when NOFAIL sanity checks sit at slow-path entry (903edea6c53f, 6.12-rc1)."""
        major, minor = (int(x) for x in self.kernel_version.split("."))
        return (major, minor) >= (6, 12)


DEVICE_LATENCY_US = {"ramdisk": 2.0, "nvme": 50.0, "ssd": 150.0, "hdd": 7000.0}
DEVICE_BANDWIDTH_MB_S = {"ramdisk": 20000.0, "nvme": 3000.0, "ssd": 500.0, "hdd": 150.0}


class Device(Strict):
    """A block device; service time = latency + size / bandwidth (kernel-semantics §10)."""

    name: str = Field(pattern=NAME_RE)
    type: Literal["ramdisk", "nvme", "ssd", "hdd"] = "nvme"
    size_mb: int = Field(16384, ge=16)
    latency_us: float | None = Field(None, gt=0)
    bandwidth_mb_s: float | None = Field(None, gt=0)
    queue_depth: int = Field(32, ge=1, le=4096)

    @property
    def service_latency_us(self) -> float:
        return self.latency_us if self.latency_us is not None else DEVICE_LATENCY_US[self.type]

    @property
    def service_bandwidth_mb_s(self) -> float:
        if self.bandwidth_mb_s is not None:
            return self.bandwidth_mb_s
        return DEVICE_BANDWIDTH_MB_S[self.type]


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

    name: Literal["native", "sync", "inodegc", "passive-ref"] = "native"
    inodegc_delay_jiffies: int = Field(1, ge=0, le=1000)
    inodegc_queue_depth: int = Field(32, ge=1, le=65536)
    inodegc_max_backlog: int = Field(256, ge=1, le=1 << 20)
    passive_ref_max_backlog: int = Field(256, ge=1, le=1 << 20)


class Run(Strict):
    """How long and with which seed; detector thresholds."""

    duration_ms: float = Field(2000.0, gt=0, le=3_600_000)
    seed: int = Field(0, ge=0, le=2**63 - 1)
    hung_task_timeout_s: float = Field(120.0, gt=0)
    max_events: int = Field(20_000_000, ge=1000)


class Scenario(Strict):
    """A whole scenario file."""

    description: str = ""
    machine: Machine = Field(default_factory=Machine)
    device: list[Device] = Field(default_factory=list)
    fs: list[FsSpec] = Field(default_factory=list)
    design: Design = Field(default_factory=Design)
    workload: list[WorkloadSpec] = Field(default_factory=list)
    run: Run = Field(default_factory=Run)

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
        return self


def _unique(table: str, names: list[str], what: str = "name") -> None:
    seen: set[str] = set()
    for i, n in enumerate(names):
        if n in seen:
            raise ValueError(f"{table}.{i}.{what}: {n!r} is used twice")
        seen.add(n)
