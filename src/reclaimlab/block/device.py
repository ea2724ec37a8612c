"""A block device: request queue with ``queue_depth`` tags, ``channels`` requests served in
parallel, and a service time per request drawn from ``sim.rng``.

Service time of one request (simulator model, not a kernel function)::

    base(op, sequential) * noise + bytes / bandwidth

``base`` is the device's 4 KiB access latency for reads/writes, random or sequential (a request
is sequential when it starts where the previous one on the device ended); ``noise`` is drawn from
the configured distribution (mean 1): ``fixed``, ``uniform`` (1 ± spread), ``exponential`` or
``lognormal`` (sigma). A request starts on the channel that frees first (FIFO); with one channel
(a disk head) requests are served one after the other. Default latencies follow
kernel-semantics §10 (NVMe 20–100 µs, SATA SSD 100–200 µs, HDD 5–10 ms) and are assumptions.

Errors: ``inject_error`` arms rules (op, sector range, count or probability) that complete
matching bios with ``-EIO`` after their service time, as a failing medium would.

Simplified: no IO scheduler, no merging, no plugging; the device has no write cache (a flush costs
``flush_ns``); sector numbers beyond the capacity are an error of the caller (``-EIO``).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, replace
from typing import Any

from reclaimlab.sim import NSEC_PER_SEC, NSEC_PER_USEC, WaitQueue


@dataclass(frozen=True)
class DeviceModel:
    """Service-time parameters of a device (all times in ns)."""

    read_random_ns: int
    read_seq_ns: int
    write_random_ns: int
    write_seq_ns: int
    flush_ns: int
    bandwidth_bytes_per_s: int
    channels: int
    queue_depth: int
    dist: str = "lognormal"
    sigma: float = 0.25
    spread: float = 0.2

    def __post_init__(self) -> None:
        if self.dist not in ("fixed", "uniform", "exponential", "lognormal"):
            raise ValueError(f"block device: unknown service-time distribution {self.dist!r} "
                             "(fixed, uniform, exponential, lognormal)")
        if self.channels < 1 or self.queue_depth < 1:
            raise ValueError("block device: channels and queue_depth must be >= 1")
        if self.bandwidth_bytes_per_s <= 0:
            raise ValueError("block device: bandwidth_bytes_per_s must be > 0")


US = NSEC_PER_USEC
PRESETS: dict[str, DeviceModel] = {
    "nvme": DeviceModel(80 * US, 20 * US, 30 * US, 15 * US, 20 * US, 3_000_000_000, 32, 64),
    "ssd": DeviceModel(150 * US, 60 * US, 120 * US, 50 * US, 200 * US, 500_000_000, 8, 32),
    "hdd": DeviceModel(8000 * US, 100 * US, 8000 * US, 100 * US, 10_000 * US, 150_000_000, 1, 32,
                       sigma=0.3),
    "ramdisk": DeviceModel(1 * US, 1 * US, 1 * US, 1 * US, 0, 10_000_000_000, 64, 256,
                           dist="fixed"),
}


@dataclass
class ErrorRule:
    """An armed IO-error injection (``inject_error``)."""

    op: str | None
    start: int
    end: int | None
    count: int | None
    probability: float | None

    def matches(self, op: str, sector: int, nr: int) -> bool:
        if self.op is not None and self.op != op:
            return False
        if self.end is not None and sector >= self.end:
            return False
        return sector + nr > self.start


@dataclass
class BlockStats:
    reads: int = 0
    writes: int = 0
    flushes: int = 0
    sectors_read: int = 0
    sectors_written: int = 0
    errors: int = 0
    tag_waits: int = 0
    busy_ns: int = 0


class BlockDevice:
    """``struct block_device`` + its ``request_queue``: ``name``, capacity ``nr_sectors``,
    ``logical_block_size`` (bytes), a ``model``; ``bd_mapping`` is the device's page cache, created
    and owned by the filesystem that mounts it (the buffer cache), None until then."""

    def __init__(self, sim: Any, name: str, preset: str = "nvme", nr_sectors: int = 1 << 24,
                 logical_block_size: int = 512, **overrides: Any) -> None:
        if preset not in PRESETS:
            raise ValueError(f"block device {name}: unknown preset {preset!r} "
                             f"(one of {', '.join(PRESETS)})")
        self.sim = sim
        self.name = name
        self.model = replace(PRESETS[preset], **overrides)
        self.nr_sectors = nr_sectors
        self.logical_block_size = logical_block_size
        self.bd_mapping: Any = None
        self.in_flight = 0
        self.tag_wait = WaitQueue(f"{name}:tags")
        self.channel_free_at = [0] * self.model.channels
        self.last_end_sector = -1
        self.error_rules: list[ErrorRule] = []
        self.stats = BlockStats()

    def __repr__(self) -> str:
        return f"bdev {self.name}"

    # ---------------------------------------------------------------- errors
    def inject_error(self, op: str | None = None, start: int = 0, end: int | None = None,
                     count: int | None = 1, probability: float | None = None) -> ErrorRule:
        """Fail the next ``count`` bios (None: all) of ``op`` (None: any) overlapping sectors
        [start, end), or each such bio with ``probability``; returns the rule (``clear_errors``)."""
        rule = ErrorRule(op, start, end, count, probability)
        self.error_rules.append(rule)
        return rule

    def clear_errors(self) -> None:
        self.error_rules.clear()

    def _injected_error(self, op: str, sector: int, nr: int) -> bool:
        for rule in self.error_rules:
            if not rule.matches(op, sector, nr):
                continue
            if rule.probability is not None and self.sim.rng.random() >= rule.probability:
                continue
            if rule.count is not None:
                rule.count -= 1
                if rule.count == 0:
                    self.error_rules.remove(rule)
            return True
        return False

    # ---------------------------------------------------------------- service model
    def _noise(self) -> float:
        m = self.model
        rng = self.sim.rng
        if m.dist == "fixed":
            return 1.0
        if m.dist == "uniform":
            return rng.uniform(1.0 - m.spread, 1.0 + m.spread)
        if m.dist == "exponential":
            return rng.expovariate(1.0)
        return rng.lognormvariate(-m.sigma * m.sigma / 2, m.sigma)

    def service_time(self, op: str, sector: int, nr: int) -> int:
        """Virtual ns the device needs for one request (advances the sequential detector)."""
        m = self.model
        if op == "flush":
            return m.flush_ns
        seq = sector == self.last_end_sector
        self.last_end_sector = sector + nr
        if op == "read":
            base = m.read_seq_ns if seq else m.read_random_ns
        else:
            base = m.write_seq_ns if seq else m.write_random_ns
        transfer = nr * 512 * NSEC_PER_SEC // m.bandwidth_bytes_per_s
        return int(base * self._noise()) + transfer

    def dispatch(self, op: str, sector: int, nr: int) -> tuple[int, int]:
        """Start a request: returns (completion time, status); caller holds a tag."""
        now = self.sim.now
        svc = self.service_time(op, sector, nr)
        ch = min(range(len(self.channel_free_at)), key=self.channel_free_at.__getitem__)
        start = max(now, self.channel_free_at[ch])
        done = start + svc
        self.channel_free_at[ch] = done
        self.stats.busy_ns += svc
        status = 0
        if op != "flush" and (sector < 0 or sector + nr > self.nr_sectors
                              or self._injected_error(op, sector, nr)):
            status = -errno.EIO
            self.stats.errors += 1
        return done, status


def add_disk(sim: Any, bdev: BlockDevice) -> BlockDevice:
    """``add_disk``: make the device known by name (``sim.disks``) for ``mount`` sources."""
    disks = sim.__dict__.setdefault("disks", {})
    if bdev.name in disks:
        raise ValueError(f"block device {bdev.name!r} already exists")
    disks[bdev.name] = bdev
    return bdev


def lookup_bdev(sim: Any, name: str) -> BlockDevice | None:
    """``lookup_bdev``: the device registered under ``name`` (with or without ``/dev/``)."""
    disks = getattr(sim, "disks", {})
    return disks.get(name.removeprefix("/dev/"))
