"""Properties over generated operation sequences, for both filesystems under every design:
no refcount goes negative, nothing is freed while referenced, and once unmounted every unlinked
inode's blocks and on-disk inode are free again (no leak, nothing lost)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reclaimlab.fs.ext4 import ext4_check_invariants
from reclaimlab.fs.xfs import xfs_check_invariants
from reclaimlab.mm.gfp import GFP_KERNEL
from reclaimlab.mm.page_alloc import alloc_pages, free_pages
from reclaimlab.vfs import syscalls as sc
from reclaimlab.vfs.errors import KernelError
from reclaimlab.vfs.fs import O_CREAT, O_RDWR

from tests.fs.machine import Machine

NAMES = ["/a", "/b", "/d/a", "/d/b"]

ops = st.lists(st.one_of(
    st.tuples(st.just("write"), st.sampled_from(NAMES), st.integers(0, 200_000)),
    st.tuples(st.just("unlink"), st.sampled_from(NAMES)),
    st.tuples(st.just("rename"), st.sampled_from(NAMES), st.sampled_from(NAMES)),
    st.tuples(st.just("mkdir")),
    st.tuples(st.just("rmdir")),
    st.tuples(st.just("hold"), st.sampled_from(NAMES)),
    st.tuples(st.just("release")),
    st.tuples(st.just("setxattr"), st.sampled_from(NAMES), st.integers(1, 9000)),
    st.tuples(st.just("sync")),
    st.tuples(st.just("pressure")),
), max_size=25)


def apply(op, held: list[int]):
    kind = op[0]
    if kind == "write":
        fd = yield from sc.sys_open(op[1], O_CREAT | O_RDWR)
        yield from sc.sys_write(fd, op[2])
        yield from sc.sys_close(fd)
    elif kind == "unlink":
        yield from sc.sys_unlink(op[1])
    elif kind == "rename":
        yield from sc.sys_rename(op[1], op[2])
    elif kind == "mkdir":
        yield from sc.sys_mkdir("/d")
    elif kind == "rmdir":
        yield from sc.sys_rmdir("/d")
    elif kind == "hold":                           # an open file outliving its unlink
        held.append((yield from sc.sys_open(op[1], O_RDWR)))
    elif kind == "release" and held:
        yield from sc.sys_close(held.pop(0))
    elif kind == "setxattr":
        yield from sc.sys_setxattr(op[1], "user.x", op[2])
    elif kind == "sync":
        yield from sc.sys_sync()
    elif kind == "pressure":                       # reclaim reaches the sb shrinkers
        pages = []
        for _ in range(64):
            pages.append((yield from alloc_pages(GFP_KERNEL, 0)))
        yield from sc.sys_drop_caches(3)
        for pfn in pages:
            free_pages(pfn, 0)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fstype=st.sampled_from(["ext4", "xfs"]),
       design=st.sampled_from(["native", "sync", "inodegc", "passive-ref"]),
       seq=ops)
def test_no_leak_no_lost_inode_no_bad_refcount(fstype, design, seq):
    m = Machine(design=design, memory_mb=64)
    sb = m.mount(fstype, journal_mb=8)
    check = ext4_check_invariants if fstype == "ext4" else xfs_check_invariants

    def run():
        held: list[int] = []
        for op in seq:
            try:
                yield from apply(op, held)
            except KernelError:
                pass
            assert m.sim.vfs.check_invariants() == []
        while held:
            yield from sc.sys_close(held.pop())
        assert check(sb) == []
        yield from sc.sys_umount("/")

    m.run(run())
    assert m.sim.vfs.leaked() == []
    assert m.sim.vfs.check_invariants() == []


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fstype=st.sampled_from(["ext4", "xfs"]),
       design=st.sampled_from(["native", "sync", "inodegc", "passive-ref"]),
       seqs=st.lists(ops, min_size=2, max_size=3), ncpus=st.integers(1, 3))
def test_concurrent_tasks_leave_no_leak_and_sane_counters(fstype, design, seqs, ncpus):
    m = Machine(design=design, memory_mb=64, ncpus=ncpus)
    sb = m.mount(fstype, journal_mb=8)
    check = ext4_check_invariants if fstype == "ext4" else xfs_check_invariants
    done = []

    def worker(seq):
        held: list[int] = []
        for op in seq:
            try:
                yield from apply(op, held)
            except KernelError:
                pass
        while held:
            yield from sc.sys_close(held.pop())
        done.append(True)

    for seq in seqs:
        m.sim.spawn(worker(seq), "worker")

    def unmount_when_done():
        while len(done) < len(seqs):
            yield 1_000_000
        assert check(sb) == []
        yield from sc.sys_umount("/")

    m.run(unmount_when_done())
    assert m.sim.vfs.leaked() == [] and m.sim.vfs.check_invariants() == []
