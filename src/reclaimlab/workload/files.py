"""File workloads through the system-call layer: page-cache IO, fs_mark-like create/unlink
churn, ``rm -rf`` of a pre-built tree, timestamp churn, xattr churn, periodic sync/statfs.

Every task works in its own subdirectory (``<dir>/t<index>``) so tasks of a group never
depend on each other's progress; names carry a loop counter so no name is reused while an
older inode of that name may still be on its way out.
"""

from __future__ import annotations

from typing import Generator

from reclaimlab.sim import current
from reclaimlab.vfs import syscalls as sys
from reclaimlab.workload.base import Context, ms, pace, syscall
from reclaimlab.workload.specs import (CreateUnlink, PageCache, Periodic, RmRf, TimestampChurn,
                                       XattrChurn)


def task_dir(root: str, ctx: Context) -> str:
    return f"{root.rstrip('/')}/t{ctx.index}"


def mkdir_p(ctx: Context, path: str) -> Generator:
    """``mkdir -p``: stat each component, create the missing ones (set-up, not counted)."""
    parts = [p for p in path.split("/") if p]
    for i in range(1, len(parts) + 1):
        prefix = "/" + "/".join(parts[:i])
        if (yield from syscall(ctx, sys.sys_stat(prefix), count=False, ignore=("ENOENT",))):
            continue
        yield from syscall(ctx, sys.sys_mkdir(prefix), count=False, ignore=("EEXIST",))


def write_file(ctx: Context, path: str, nbytes: int, fsync: bool = False,
               count: bool = True, close: bool = True) -> Generator:
    """``open(O_CREAT|O_RDWR)``, write ``nbytes``, optionally fsync, close; returns the fd
    when ``close`` is False."""
    fd = yield from syscall(ctx, sys.sys_open(path, sys.O_CREAT | sys.O_RDWR), count=count)
    if fd is None:
        return None
    if nbytes:
        yield from syscall(ctx, sys.sys_write(fd, nbytes), nbytes, count=count)
    if fsync:
        yield from syscall(ctx, sys.sys_fsync(fd), count=count)
    if close:
        yield from syscall(ctx, sys.sys_close(fd), count=False)
        return None
    return fd


def page_cache(spec: PageCache, ctx: Context) -> Generator:
    """Write ``files`` files (fsync'ed if ``fsync``), then stream through them in ``io_kb``
    chunks: reads, overwrites, or both alternately, at ``rate_mb_s``."""
    base = task_dir(spec.dir, ctx)
    yield from mkdir_p(ctx, base)
    paths = [f"{base}/f{i}" for i in range(spec.files)]
    for p in paths:
        yield from write_file(ctx, p, spec.file_kb * 1024, spec.fsync, count=False)
    started, done_mb, n = current().sim.now, 0.0, 0
    io = spec.io_kb * 1024
    while ctx.running():
        path = paths[n % len(paths)]
        write = spec.mode == "write" or (spec.mode == "readwrite" and n % 2)
        fd = yield from syscall(ctx, sys.sys_open(path, sys.O_RDWR), count=False)
        n += 1
        if fd is None:
            continue
        for _ in range(max(1, spec.file_kb * 1024 // io)):
            call = sys.sys_write(fd, io) if write else sys.sys_read(fd, io)
            yield from syscall(ctx, call, io)
            done_mb += io / 2**20
            yield from pace(ctx, started, done_mb, spec.rate_mb_s)
            if not ctx.running():
                break
        if write and spec.fsync:
            yield from syscall(ctx, sys.sys_fsync(fd))
        yield from syscall(ctx, sys.sys_close(fd), count=False)


def create_unlink(spec: CreateUnlink, ctx: Context) -> Generator:
    """fs_mark: per loop create ``dirs`` x ``files_per_dir`` files of ``file_kb`` (fsync
    each if asked, keep them open if asked), then unlink them all, then close kept files
    (so the final ``iput`` happens at ``close``). With ``shared_dir`` every task works in the
    same directories (aim7's disk tests), so creates and unlinks contend on their ``i_rwsem``."""
    base = spec.dir.rstrip("/") if spec.shared_dir else task_dir(spec.dir, ctx)
    prefix = f"t{ctx.index}" if spec.shared_dir else ""
    yield from mkdir_p(ctx, base)
    loop = 0
    while ctx.running() and (not spec.loops or loop < spec.loops):
        created, kept = [], []
        for d in range(spec.dirs):
            dpath = f"{base}/d{d}"
            yield from syscall(ctx, sys.sys_mkdir(dpath), count=False, ignore=("EEXIST",))
            for f in range(spec.files_per_dir):
                path = f"{dpath}/{prefix}l{loop}f{f}"
                fd = yield from write_file(ctx, path, spec.file_kb * 1024, spec.fsync,
                                           close=not spec.keep_open)
                created.append(path)
                if fd is not None:
                    kept.append(fd)
                if spec.think_us:
                    yield int(spec.think_us * 1000)
                if not ctx.running():
                    break
        if spec.unlink:
            for path in created:
                yield from syscall(ctx, sys.sys_unlink(path))
        for fd in kept:
            yield from syscall(ctx, sys.sys_close(fd), count=False)
        loop += 1
    ctx.stats.finished += 1


def build_tree(ctx: Context, path: str, depth: int, spec: RmRf) -> Generator:
    """Create a tree of ``fanout``-way directories ``depth`` deep, ``files_per_dir`` files in
    each directory (set-up, not counted)."""
    yield from syscall(ctx, sys.sys_mkdir(path), count=False, ignore=("EEXIST",))
    for f in range(spec.files_per_dir):
        yield from write_file(ctx, f"{path}/f{f}", spec.file_kb * 1024, count=False)
    if depth > 1:
        for d in range(spec.fanout):
            yield from build_tree(ctx, f"{path}/d{d}", depth - 1, spec)


def remove_tree(ctx: Context, path: str, depth: int, spec: RmRf) -> Generator:
    """``rm -rf``: unlink a directory's files, recurse into subdirectories, rmdir it."""
    for f in range(spec.files_per_dir):
        yield from syscall(ctx, sys.sys_unlink(f"{path}/f{f}"))
    if depth > 1:
        for d in range(spec.fanout):
            yield from remove_tree(ctx, f"{path}/d{d}", depth - 1, spec)
    yield from syscall(ctx, sys.sys_rmdir(path))


def rm_rf(spec: RmRf, ctx: Context) -> Generator:
    """Build a tree, ``sync`` it to disk (so deletion frees allocated blocks), remove it.
    The group's op times span the removal only; with ``sync_after`` the removal is timed as
    ``rm -rf && sync``, up to the filesystem having finished the deletions — deferred ones
    included, since ``sync_filesystem`` flushes deferred evictions and inactivation."""
    base = task_dir(spec.dir, ctx)
    yield from mkdir_p(ctx, spec.dir)
    yield from build_tree(ctx, base, spec.depth, spec)
    if spec.sync_before:
        yield from syscall(ctx, sys.sys_sync(), count=False)
    yield from remove_tree(ctx, base, spec.depth, spec)
    if spec.sync_after:
        yield from syscall(ctx, sys.sys_sync())
    ctx.stats.finished += 1


def timestamp_churn(spec: TimestampChurn, ctx: Context) -> Generator:
    """One-byte overwrites of random files, each updating mtime/ctime (``file_update_time``);
    with ``lazytime`` the inode only gets ``I_DIRTY_TIME``."""
    base = task_dir(spec.dir, ctx)
    yield from mkdir_p(ctx, base)
    fds = []
    for i in range(spec.files):
        fds.append((yield from write_file(ctx, f"{base}/f{i}", 1, count=False, close=False)))
    fds = [fd for fd in fds if fd is not None]
    started, n = current().sim.now, 0
    while ctx.running() and fds:
        yield from syscall(ctx, sys.sys_write(fds[ctx.rng().randrange(len(fds))], 1), 1)
        n += 1
        yield from pace(ctx, started, n, spec.ops_per_s)
    for fd in fds:
        yield from syscall(ctx, sys.sys_close(fd), count=False)


def xattr_churn(spec: XattrChurn, ctx: Context) -> Generator:
    """setxattr of ``xattr_size`` bytes (names ``user.k0..2``) on random files, every fourth
    op a getxattr instead."""
    base = task_dir(spec.dir, ctx)
    yield from mkdir_p(ctx, base)
    paths = [f"{base}/x{i}" for i in range(spec.files)]
    for p in paths:
        yield from write_file(ctx, p, 0, count=False)
    started, n = current().sim.now, 0
    while ctx.running():
        path = paths[ctx.rng().randrange(len(paths))]
        name = f"user.k{n % 3}"
        if n % 4 == 3:
            yield from syscall(ctx, sys.sys_getxattr(path, name), ignore=("ENODATA",))
        else:
            yield from syscall(ctx, sys.sys_setxattr(path, name, spec.xattr_size))
        n += 1
        yield from pace(ctx, started, n, spec.ops_per_s)


def periodic(spec: Periodic, ctx: Context) -> Generator:
    """``sync``, ``syncfs``, ``statfs`` or ``drop_caches`` every ``interval_ms``."""
    calls = {"sync": lambda: sys.sys_sync(), "syncfs": lambda: sys.sys_syncfs(spec.path),
             "statfs": lambda: sys.sys_statfs(spec.path),
             "drop_caches": lambda: sys.sys_drop_caches(spec.drop_mode)}
    sim = current().sim
    while ctx.running():
        yield max(1, min(ms(spec.interval_ms), ctx.stop_ns - sim.now))
        if ctx.running():
            yield from syscall(ctx, calls[spec.op]())
