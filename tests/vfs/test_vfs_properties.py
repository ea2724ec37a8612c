"""Lifecycle properties over generated operation sequences, under every design: refcounts never
go negative, nothing is freed while referenced (the VFS records violations), every unlinked
inode's blocks are freed by the end of the unmount, every inode and dentry object is freed."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from testfs import make_machine, run_task

from reclaimlab.mm.gfp import GFP_KERNEL
from reclaimlab.mm.shrinker import shrink_control
from reclaimlab.sim import PF_KSWAPD, PF_MEMALLOC
from reclaimlab.vfs import dcache, namei
from reclaimlab.vfs.errors import KernelError
from reclaimlab.vfs.super import super_cache_scan
from reclaimlab.vfs.syscalls import (
    O_CREAT, O_RDWR, sys_close, sys_drop_caches, sys_mkdir, sys_mount, sys_open, sys_read,
    sys_rename, sys_rmdir, sys_stat, sys_sync, sys_umount, sys_unlink, sys_write,
)

NAMES = ["/mnt/a", "/mnt/b", "/mnt/c", "/mnt/d/x", "/mnt/d/y"]
name = st.sampled_from(NAMES)
op = st.one_of(
    st.tuples(st.just("create"), name, st.integers(0, 20000)),
    st.tuples(st.just("open"), name),
    st.tuples(st.just("close"), st.integers(0, 3)),
    st.tuples(st.just("write"), st.integers(0, 3), st.integers(1, 9000)),
    st.tuples(st.just("read"), st.integers(0, 3)),
    st.tuples(st.just("unlink"), name),
    st.tuples(st.just("stat"), name),
    st.tuples(st.just("pin"), name),
    st.tuples(st.just("unpin"), st.integers(0, 3)),
    st.tuples(st.just("rename"), name, name),
    st.tuples(st.just("mkdir"),),
    st.tuples(st.just("rmdir"),),
    st.tuples(st.just("sleep"), st.integers(1, 3_000_000)),
    st.tuples(st.just("sync"),),
    st.tuples(st.just("drop"),),
)
program = st.lists(op, max_size=25)
reclaim = st.lists(st.tuples(st.integers(1, 2_000_000), st.integers(1, 64)), max_size=6)


def do(sim, o, fds, pins):
    kind = o[0]
    if kind == "create":
        fd = yield from sys_open(o[1], O_CREAT | O_RDWR)
        if o[2]:
            yield from sys_write(fd, o[2])
        yield from sys_close(fd)
    elif kind == "open":
        fds.append((yield from sys_open(o[1], O_RDWR)))
    elif kind == "close" and fds:
        yield from sys_close(fds.pop(o[1] % len(fds)))
    elif kind == "write" and fds:
        yield from sys_write(fds[o[1] % len(fds)], o[2])
    elif kind == "read" and fds:
        yield from sys_read(fds[o[1] % len(fds)], 8192)
    elif kind == "unlink":
        yield from sys_unlink(o[1])
    elif kind == "stat":
        yield from sys_stat(o[1])
    elif kind == "pin":
        pins.append((yield from namei.filename_lookup(sim.vfs, o[1])))
    elif kind == "unpin" and pins:
        yield from dcache.dput(pins.pop(o[1] % len(pins)))
    elif kind == "rename":
        yield from sys_rename(o[1], o[2])
    elif kind == "mkdir":
        yield from sys_mkdir("/mnt/d")
    elif kind == "rmdir":
        yield from sys_rmdir("/mnt/d")
    elif kind == "sleep":
        yield o[1]
    elif kind == "sync":
        yield from sys_sync()
    elif kind == "drop":
        yield from sys_drop_caches(3)


def worker(sim, ops):
    fds, pins = [], []
    for o in ops:
        try:
            yield from do(sim, o, fds, pins)
        except KernelError:
            pass
    for fd in fds:
        yield from sys_close(fd)
    for d in pins:
        yield from dcache.dput(d)


def reclaimer(sb, plan):
    for delay, nr in plan:
        yield delay
        sc = shrink_control(GFP_KERNEL, 0)
        sc.nr_to_scan = nr
        yield from super_cache_scan(sb, sc)


def check_run(design, progs, plan, seed):
    sim = make_machine(design, seed=seed, preset="ssd")
    sb = run_task(sim, sys_mount("testfs", "vda", "/mnt", {}), "mount")
    run_task(sim, sys_mkdir("/mnt/d"), "mkdir")
    for i, ops in enumerate(progs):
        sim.spawn(worker(sim, ops), f"w{i}")
    sim.spawn(reclaimer(sb, plan), "kswapd0", PF_MEMALLOC | PF_KSWAPD)
    sim.run()
    assert sim.vfs.check_invariants() == []
    run_task(sim, sys_umount("/mnt"), "umount")
    vfs = sim.vfs
    assert vfs.check_invariants() == []
    assert vfs.leaked() == []
    assert vfs.stats.evicted == vfs.stats.allocated
    assert vfs.inode_cachep.active_objs == 0 and vfs.dentry_cachep.active_objs == 0
    assert vfs.filp_cachep.active_objs == 0
    fsi = sb.s_fs_info
    assert set(fsi.itable) == {i for i in fsi.itable if fsi.itable[i].nlink > 0}


SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.lists(program, min_size=1, max_size=3), reclaim, st.integers(0, 3))
def test_lifecycle_properties_sync(progs, plan, seed):
    check_run("sync", progs, plan, seed)


@SETTINGS
@given(st.lists(program, min_size=1, max_size=3), reclaim, st.integers(0, 3))
def test_lifecycle_properties_inodegc(progs, plan, seed):
    check_run("inodegc", progs, plan, seed)


@SETTINGS
@given(st.lists(program, min_size=1, max_size=3), reclaim, st.integers(0, 3))
def test_lifecycle_properties_passive_ref(progs, plan, seed):
    check_run("passive-ref", progs, plan, seed)


@SETTINGS
@given(st.lists(program, min_size=1, max_size=3), reclaim, st.integers(0, 3))
def test_lifecycle_properties_native(progs, plan, seed):
    check_run("native", progs, plan, seed)
