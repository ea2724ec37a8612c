"""Page allocator benchmark: allocations per second (fast path, through direct reclaim) and host
memory per simulated page frame on a fully populated machine.

    python benchmarks/mm_alloc.py [--gib 16] [--json]

The host-memory figure builds a machine of ``--gib`` GiB (4 KiB pages), fills about half of it
with clean page cache (many files) and the rest with one task's anonymous memory, and measures
the growth of the process's resident set. The requirement is <= 1 GiB for 16 GiB (4 Mi frames).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time

from reclaimlab.mm import gfp as G
from reclaimlab.mm.anon import do_anonymous_page, get_task_mm
from reclaimlab.mm.filemap import address_space, page_cache_ra_unbounded
from reclaimlab.mm.page_alloc import MemoryConfig, alloc_pages, free_pages, pglist_data
from reclaimlab.sim import NSEC_PER_SEC, Simulation, current


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def machine(gib: float) -> tuple[Simulation, pglist_data]:
    sim = Simulation(seed=0)
    return sim, pglist_data(sim, MemoryConfig(memory_bytes=int(gib * (1 << 30))))


def bench_fast_path(n: int = 200_000) -> float:
    """Allocate order-0 pages with plenty of memory, freeing them 1000 at a time (no per-CPU
    page lists are modelled: freeing each page at once would split and re-merge a max-order
    block every time): allocations per host second."""
    sim, pgdat = machine(1)

    def loop():
        held = []
        for _ in range(n):
            held.append((yield from alloc_pages(G.GFP_KERNEL, 0)))
            if len(held) == 1000:
                for pfn in held:
                    free_pages(pfn, 0)
                held.clear()
    sim.spawn(loop(), "bench")
    t = time.perf_counter()
    sim.run()
    return n / (time.perf_counter() - t)


def bench_direct_reclaim(n: int = 100_000) -> tuple[float, int]:
    """Allocate (and keep) pages on a machine full of clean page cache with kswapd parked, so
    that every refill is done by direct reclaim: allocations per host second and the number
    of direct reclaims."""
    sim, pgdat = machine(0.5)

    def fill():
        files = [address_space(sim, f"f{i}") for i in range(64)]
        per = pgdat.nr_pages // len(files)
        for m in files:
            yield from page_cache_ra_unbounded(m, 0, per, G.GFP_HIGHUSER_MOVABLE)
    sim.spawn(fill(), "fill")
    sim.run(until=100 * NSEC_PER_SEC)

    def loop():
        for _ in range(n):
            yield from alloc_pages(G.GFP_KERNEL, 0)
    sim.spawn(loop(), "bench")
    pgdat.kswapd_wait.waiters.clear()      # park kswapd: wakeup_kswapd finds no sleeper
    before = pgdat.stats.direct_reclaim_count
    t = time.perf_counter()
    sim.run(until=sim.now + 100 * NSEC_PER_SEC)
    return n / (time.perf_counter() - t), pgdat.stats.direct_reclaim_count - before


def bench_host_memory(gib: float) -> dict:
    """Fill a ``gib`` machine with page cache and anonymous memory; report host bytes/frame."""
    gc.collect()
    base = rss_bytes()
    sim, pgdat = machine(gib)
    z = pgdat.zone
    target = pgdat.nr_pages - z.watermark[2]

    def populate():
        files = [address_space(sim, f"file{i}") for i in range(1024)]
        per = target // 2 // len(files)
        for m in files:
            yield from page_cache_ra_unbounded(m, 0, per, G.GFP_HIGHUSER_MOVABLE)
        yield from do_anonymous_page(get_task_mm(current()), target - per * len(files))
        yield 10 * NSEC_PER_SEC
    sim.spawn(populate(), "populate")
    t = time.perf_counter()
    sim.run(until=5 * NSEC_PER_SEC)
    elapsed = time.perf_counter() - t
    gc.collect()
    used = rss_bytes() - base
    return {
        "gib": gib, "frames": pgdat.nr_pages, "page_cache_pages": pgdat.nr_file_pages,
        "anon_pages": pgdat.nr_anon, "free_pages": z.free_pages,
        "host_bytes": used, "host_bytes_per_frame": used / pgdat.nr_pages,
        "populate_s": elapsed, "mem_map_bytes": pgdat.mem_map.host_bytes(),
        "within_limit": used <= (1 << 30) * gib / 16,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gib", type=float, default=16.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    fast = bench_fast_path()
    reclaim, nr_direct = bench_direct_reclaim()
    mem = bench_host_memory(args.gib)
    result = {"python": sys.version.split()[0], "fast_path_allocs_per_s": fast,
              "direct_reclaim_allocs_per_s": reclaim, "direct_reclaims": nr_direct,
              "memory": mem}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"fast path:       {fast:12,.0f} allocations/s")
        print(f"direct reclaim:  {reclaim:12,.0f} allocations/s ({nr_direct} direct reclaims)")
        print(f"host memory:     {mem['host_bytes'] / 2**20:,.0f} MiB for {mem['frames']:,} "
              f"frames = {mem['host_bytes_per_frame']:.1f} B/frame "
              f"({mem['page_cache_pages']:,} page cache, {mem['anon_pages']:,} anon; "
              f"populated in {mem['populate_s']:.1f} s) -> "
              f"{'OK' if mem['within_limit'] else 'OVER'} (limit 1 GiB per 16 GiB)")
    return 0 if mem["within_limit"] else 1


if __name__ == "__main__":
    sys.exit(main())
