"""VFS benchmark: create+unlink cycles per second of host time through the whole stack
(system calls → VFS → filesystem → journal/buffer cache → page allocator → block device), and
host memory per cached inode (VFS inode + dentry + the filesystem's in-core inode and bookkeeping).

    python benchmarks/vfs_churn.py [--fs ext4|xfs] [--design sync|inodegc|passive-ref|native]
                                   [--cycles 20000] [--cached 200000] [--json]

Host memory: a machine with enough RAM that nothing is reclaimed creates ``--cached`` empty files
in 100 directories and keeps them cached; the figure is the growth of the process's resident set
divided by the number of files. The target is <= 2 KiB per cached inode.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time

from reclaimlab.block import BlockDevice, add_disk
from reclaimlab.fs import register_block_filesystems
from reclaimlab.mm.page_alloc import MemoryConfig, pglist_data
from reclaimlab.sim import Simulation
from reclaimlab.vfs import vfs_init
from reclaimlab.vfs.syscalls import O_CREAT, O_RDWR, sys_close, sys_mkdir, sys_mount, \
    sys_open, sys_unlink

GiB = 1 << 30


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def machine(fs: str, design: str, memory_gib: float, disk_gib: float):
    sim = Simulation(seed=0, ncpus=2)
    pglist_data(sim, MemoryConfig(memory_bytes=int(memory_gib * GiB)))
    vfs_init(sim, {"design": design})
    register_block_filesystems(sim)
    add_disk(sim, BlockDevice(sim, "sda", "nvme", nr_sectors=int(disk_gib * GiB) // 512))
    return sim


def run(sim, gen) -> None:
    box = {}

    def task():
        box["v"] = yield from gen
        sim.stop()

    sim.spawn(task(), "bench")
    sim.run()
    if "v" not in box:
        raise SystemExit(f"benchmark task did not finish: {sim.blocked_tasks()[:3]}")


def bench_churn(fs: str, design: str, cycles: int) -> dict:
    """``cycles`` × (open O_CREAT, close, unlink) of one file in one directory."""
    sim = machine(fs, design, 2, 8)

    def work():
        yield from sys_mount(fs, "sda", "/mnt", {})
        yield from sys_mkdir("/mnt/d")
        for i in range(cycles):
            fd = yield from sys_open(f"/mnt/d/f{i}", O_CREAT | O_RDWR)
            yield from sys_close(fd)
            yield from sys_unlink(f"/mnt/d/f{i}")

    t = time.perf_counter()
    run(sim, work())
    wall = time.perf_counter() - t
    return {"cycles": cycles, "wall_s": wall, "cycles_per_s": cycles / wall,
            "sim_events": sim.events, "evicted": sim.vfs.stats.evicted}


def bench_memory(fs: str, design: str, n: int) -> dict:
    """Host bytes per cached inode: ``n`` empty files, all kept cached."""
    sim = machine(fs, design, 16, 16)
    dirs = 100

    def setup():
        yield from sys_mount(fs, "sda", "/mnt", {})
        for d in range(dirs):
            yield from sys_mkdir(f"/mnt/d{d}")

    run(sim, setup())
    gc.collect()
    before = rss_bytes()

    def work():
        for i in range(n):
            fd = yield from sys_open(f"/mnt/d{i % dirs}/f{i}", O_CREAT | O_RDWR)
            yield from sys_close(fd)

    run(sim, work())
    gc.collect()
    after = rss_bytes()
    sb = sim.vfs.super_blocks[0]
    return {"files": n, "cached_inodes": len(sb.s_inodes),
            "bytes_per_cached_inode": (after - before) / n}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fs", default="ext4", choices=["ext4", "xfs"])
    ap.add_argument("--design", default="native",
                    choices=["native", "sync", "inodegc", "passive-ref"])
    ap.add_argument("--cycles", type=int, default=20_000)
    ap.add_argument("--cached", type=int, default=200_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    res = {"python": sys.version.split()[0], "fs": args.fs, "design": args.design,
           "churn": bench_churn(args.fs, args.design, args.cycles),
           "memory": bench_memory(args.fs, args.design, args.cached),
           "target_bytes_per_cached_inode": 2048}
    if args.json:
        print(json.dumps(res))
    else:
        c, m = res["churn"], res["memory"]
        print(f"{args.fs}/{args.design}: {c['cycles_per_s']:.0f} create+unlink cycles/s "
              f"({c['sim_events']} events); {m['bytes_per_cached_inode']:.0f} host bytes per "
              f"cached inode ({m['cached_inodes']} cached; target <= 2048)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
