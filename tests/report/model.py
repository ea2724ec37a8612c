"""A small synthetic machine built directly on reclaimlab.sim, emitting the events mm and the
VFS emit (alloc, direct reclaim, deferred inode cleanup, queue depths), for report tests and the
observer-cost benchmark."""

from __future__ import annotations

from types import SimpleNamespace

from reclaimlab.sim import (
    WQ_UNBOUND, Mutex, Run, Simulation, Work, alloc_workqueue, current,
    memalloc_noreclaim_restore, memalloc_noreclaim_save, mutex_lock, mutex_unlock, queue_work,
)


class Inode:
    def __init__(self, ino: int) -> None:
        self.i_ino = ino


def synthetic_workload(sim: Simulation, tasks: int = 3, iterations: int = 20) -> None:
    zone = SimpleNamespace(free_pages=170, watermark=[100, 150, 200])
    sim.pgdat = SimpleNamespace(zone=zone)
    wq = alloc_workqueue(sim, "xfs-inodegc", WQ_UNBOUND, 2)
    queued: list[Inode] = []
    orphan_lock = Mutex("&sbi->s_orphan_lock")

    def try_to_free_pages():
        old = memalloc_noreclaim_save()
        yield Run(5_000)
        zone.free_pages += 64
        memalloc_noreclaim_restore(old)

    def alloc_pages(order: int):
        t0 = sim.now
        zone.free_pages -= 1 << order
        if zone.free_pages < zone.watermark[1]:
            sim.emit("mm_vmscan_direct_reclaim_begin", current(), None, {"order": order})
            yield from try_to_free_pages()
            sim.emit("mm_vmscan_direct_reclaim_end", current(), None, {"nr_reclaimed": 64})
        yield Run(200)
        sim.emit("alloc", current(), None, {"ns": sim.now - t0, "order": order,
                                              "gfp": "GFP_KERNEL"})

    def xfs_inactive(inode: Inode):
        sim.emit("inode_cleanup", current(), inode, {"ino": inode.i_ino, "deferred": True})
        yield from mutex_lock(orphan_lock)
        yield from alloc_pages(0)
        mutex_unlock(orphan_lock)
        zone.free_pages += 1
        sim.emit("inode_evicted", current(), inode, {"ino": inode.i_ino})

    def xfs_inodegc_worker(work: Work):
        while queued:
            inode = queued.pop(0)
            sim.emit("queue_depth", current(), None, {"name": "inodegc", "depth": len(queued)})
            yield from xfs_inactive(inode)

    gc_work = Work(xfs_inodegc_worker)

    def xfs_inodegc_queue(inode: Inode):
        queued.append(inode)
        sim.emit("inode_deferred", current(), inode, {"ino": inode.i_ino})
        sim.emit("tracepoint", current(), inode, {"name": "xfs_inodegc_queue", "ino": inode.i_ino})
        sim.emit("queue_depth", current(), None, {"name": "inodegc", "depth": len(queued)})
        queue_work(wq, gc_work)

    def unlinker(n: int):
        for i in range(iterations):
            yield from alloc_pages(sim.rng.choice((0, 0, 1)))
            yield from mutex_lock(orphan_lock)
            yield Run(300)
            mutex_unlock(orphan_lock)
            xfs_inodegc_queue(Inode(n * 10_000 + i))
            yield sim.rng.randrange(100, 2_000)

    for n in range(tasks):
        sim.spawn(unlinker(n), f"rm/{n}")


__all__ = ["Inode", "synthetic_workload"]
