"""Fixtures: a small machine (mm + VFS + one block device) and a task runner."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from reclaimlab.block import BlockDevice, add_disk
from reclaimlab.fs.ext4 import Ext4FsType
from reclaimlab.vfs.super import register_filesystem
from reclaimlab.mm.page_alloc import MemoryConfig, pglist_data
from reclaimlab.sim import Simulation
from reclaimlab.vfs import vfs_init

MiB = 1024 * 1024


class Machine:
    """A simulation with memory, the VFS, ext4/xfs registered and one device ``sda``."""

    def __init__(self, memory_mb: int = 256, design: str = "native", ncpus: int = 2,
                 disk_mb: int = 512, preset: str = "nvme", seed: int = 0) -> None:
        self.sim = Simulation(seed=seed, ncpus=ncpus)
        pglist_data(self.sim, MemoryConfig(memory_mb * MiB))
        vfs_init(self.sim, {"design": design})
        register_filesystem(self.sim, Ext4FsType())
        self.dev = add_disk(self.sim, BlockDevice(self.sim, "sda", preset,
                                                  nr_sectors=disk_mb * MiB // 512))
        self.events: list[tuple[str, Any, Any, Any]] = []
        self.sim.add_observer(self)

    def event(self, kind: str, task: Any, obj: Any, info: Any) -> None:
        if kind in ("alloc_warn", "inode_cleanup", "inode_deferred", "tracepoint",
                    "queue_depth", "inode_evicted"):
            self.events.append((kind, task, obj, info))

    def run(self, gen: Any, comm: str = "test", flags: int = 0, until: int | None = None,
            cpu: int | None = None) -> Any:
        """Run ``gen`` as a task to completion (the simulation keeps its kthreads); return its
        value, re-raising its exception."""
        box: dict[str, Any] = {}

        def wrapper():
            try:
                box["value"] = yield from gen
            except BaseException as exc:  # noqa: BLE001 - handed back to the test
                box["error"] = exc
            box["done"] = True
            self.sim.stop()

        self.sim.spawn(wrapper(), comm, flags, cpu)
        self.sim.run(until=until)
        if "error" in box:
            raise box["error"]
        assert box.get("done"), f"task {comm} did not finish (blocked: {self.sim.blocked_tasks()})"
        return box.get("value")

    def warnings(self, kind: str) -> list[Any]:
        return [e for e in self.events if e[0] == "alloc_warn" and e[3]["kind"] == kind]

    def tracepoints(self, name: str) -> list[Any]:
        return [e for e in self.events if e[0] == "tracepoint" and e[3].get("name") == name]


@pytest.fixture
def machine_factory() -> Callable[..., Machine]:
    return Machine
