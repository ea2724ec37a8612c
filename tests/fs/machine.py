"""A small machine (mm + VFS + one block device ``sda``) and a task runner for fs tests."""

from __future__ import annotations

from typing import Any

from reclaimlab.block import BlockDevice, add_disk
from reclaimlab.fs import register_block_filesystems
from reclaimlab.mm.page_alloc import MemoryConfig, pglist_data
from reclaimlab.sim import Simulation
from reclaimlab.vfs import syscalls as sc
from reclaimlab.vfs import vfs_init
from reclaimlab.vfs.fs import O_CREAT, O_RDWR

MiB = 1024 * 1024


class Machine:
    """A simulation with memory, the VFS, ext4/xfs registered and one device ``sda``."""

    def __init__(self, memory_mb: int = 256, design: str = "native", ncpus: int = 2,
                 disk_mb: int = 512, preset: str = "nvme", seed: int = 0) -> None:
        self.sim = Simulation(seed=seed, ncpus=ncpus)
        pglist_data(self.sim, MemoryConfig(memory_mb * MiB))
        vfs_init(self.sim, {"design": design})
        register_block_filesystems(self.sim)
        self.dev = add_disk(self.sim, BlockDevice(self.sim, "sda", preset,
                                                  nr_sectors=disk_mb * MiB // 512))
        self.events: list[tuple[str, Any, Any, Any, int]] = []
        self.lock_edges: dict[tuple[str, str], None] = {}
        self.sim.add_observer(self)

    def event(self, kind: str, task: Any, obj: Any, info: Any) -> None:
        if kind == "lock_acquire" and not (info or {}).get("trylock"):
            for held in task.held_locks:
                self.lock_edges[(held.name, obj.name)] = None
            return
        if kind == "alloc_warn":
            info = dict(info, stack=task.stack(), flags=task.flags)
        if kind in ("alloc_warn", "inode_cleanup", "inode_deferred", "tracepoint",
                    "queue_depth", "inode_evicted", "alloc"):
            self.events.append((kind, task, obj, info, self.sim.now))

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

    def mount(self, fstype: str = "ext4", **opts: Any) -> Any:
        """Mount ``sda`` on ``/`` with ``opts`` and return the superblock."""
        from reclaimlab.vfs import syscalls
        return self.run(syscalls.sys_mount(fstype, "sda", "/", opts), comm="mount")

    def tracepoints(self, name: str) -> list[Any]:
        return [e for e in self.events if e[0] == "tracepoint" and e[3].get("name") == name]


def write_back_while_open(n: int, first: int = 73728, then: int = 8192, prefix: str = "/f"):
    """W2/W4's files: ``first`` bytes written and written back while the file is open (an inode
    PA, the request normalised to 128 KiB), ``then`` more bytes dirtied, and closed with those
    delayed blocks still reserved, so ``ext4_release_file`` keeps the PA; a last sync allocates
    them from it. 72 + 8 KiB leave 12 of the PA's 32 blocks unused."""
    fds = []
    for i in range(n):
        fd = yield from sc.sys_open(f"{prefix}{i}", O_CREAT | O_RDWR)
        yield from sc.sys_write(fd, first)
        fds.append(fd)
    yield from sc.sys_sync()
    for fd in fds:
        if then:
            yield from sc.sys_write(fd, then)
        yield from sc.sys_close(fd)
    yield from sc.sys_sync()


def inode_pas(sb) -> list:
    return [pa for i in sb.s_inodes for pa in getattr(i, "i_prealloc_list", None) or []]
