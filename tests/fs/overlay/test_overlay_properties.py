"""Overlay lifecycle properties over generated workloads, under every design: after unmounting
the overlay and its layers nothing is leaked, no rule was broken, every object was freed."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_overlay import KSWAPD, create, machine
from testfs import run_task

from reclaimlab.mm.gfp import GFP_KERNEL
from reclaimlab.mm.shrinker import shrink_slab
from reclaimlab.vfs.errors import KernelError
from reclaimlab.vfs.syscalls import (
    O_RDWR, sys_close, sys_open, sys_rename, sys_setxattr, sys_stat, sys_umount, sys_unlink,
    sys_write,
)

name = st.sampled_from(["a", "b", "base"])
op = st.one_of(
    st.tuples(st.just("create"), name, st.integers(0, 9000)),
    st.tuples(st.just("write"), name),
    st.tuples(st.just("unlink"), name),
    st.tuples(st.just("unlink_upper"), name),
    st.tuples(st.just("stat"), name),
    st.tuples(st.just("rename"), name, name),
    st.tuples(st.just("xattr"), name),
    st.tuples(st.just("hold"), name),
    st.tuples(st.just("release"),),
    st.tuples(st.just("shrink"),),
)


def do(sim, o, fds):
    kind = o[0]
    if kind == "create":
        yield from create(f"/merged/{o[1]}", o[2])
    elif kind == "write":
        fd = yield from sys_open(f"/merged/{o[1]}", O_RDWR)
        yield from sys_write(fd, 100)
        yield from sys_close(fd)
    elif kind == "unlink":
        yield from sys_unlink(f"/merged/{o[1]}")
    elif kind == "unlink_upper":
        yield from sys_unlink(f"/upper/u/{o[1]}")
    elif kind == "stat":
        yield from sys_stat(f"/merged/{o[1]}")
    elif kind == "rename":
        yield from sys_rename(f"/merged/{o[1]}", f"/merged/{o[2]}")
    elif kind == "xattr":
        yield from sys_setxattr(f"/merged/{o[1]}", "user.x", 10)
    elif kind == "hold":
        fds.append((yield from sys_open(f"/merged/{o[1]}", O_RDWR)))
    elif kind == "release" and fds:
        yield from sys_close(fds.pop(0))
    elif kind == "shrink":
        yield from shrink_slab(sim.pgdat, GFP_KERNEL, 0)


def program(sim, ops):
    fds = []
    for o in ops:
        try:
            yield from do(sim, o, fds)
        except KernelError:
            pass
    for fd in fds:
        yield from sys_close(fd)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["sync", "inodegc", "passive-ref"]),
       st.lists(st.lists(op, max_size=20), min_size=1, max_size=2),
       st.lists(st.integers(0, 5_000_000), max_size=3))
def test_overlay_lifecycle_properties(design, progs, shrinks):
    sim, upper, lower, ovl = machine(design)
    for i, ops in enumerate(progs):
        sim.spawn(program(sim, ops), f"ctr{i}")

    def reclaimer():
        for delay in shrinks:
            yield delay
            yield from shrink_slab(sim.pgdat, GFP_KERNEL, 0)

    sim.spawn(reclaimer(), "kswapd-like", KSWAPD)
    sim.run()
    for target in ("/merged", "/upper", "/lower"):
        run_task(sim, sys_umount(target), "umount")
    vfs = sim.vfs
    assert vfs.check_invariants() == []
    assert vfs.leaked() == []
    assert vfs.super_blocks == []
    assert vfs.inode_cachep.active_objs == 0 and vfs.dentry_cachep.active_objs == 0
    assert vfs.filp_cachep.active_objs == 0
    assert vfs.ovl_inode_cachep.active_objs == 0
