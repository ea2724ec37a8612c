"""Container churn on overlayfs.

Each task is a container runtime running containers one after another: it builds a lower
"image" once, and for each container generation makes upper/work/merged directories on the
base filesystem, mounts an overlay, and then in rounds stats image files through the
overlay, copies some up (open for write), creates files in the container and removes them --
through the overlay (whiteouts, upper unlink), or behind the overlay's back through the base
filesystem's path of the upper or lower file, as cleanup tools do (with ``round_dirs``, in a
scratch directory per round, removed the same way). When the container's lifetime ends (or
the run stops) it unmounts the overlay.

Nothing here drops a dentry or an inode: what the overlay's dentries still pin when a file is
unlinked behind its back is decided by the VFS and overlay models.
"""

from __future__ import annotations

from typing import Generator

from reclaimlab.sim import current
from reclaimlab.vfs import syscalls as sys
from reclaimlab.vfs.errors import KernelError
from reclaimlab.workload.base import Context, ms, syscall
from reclaimlab.workload.files import mkdir_p, write_file
from reclaimlab.workload.specs import ContainerChurn


def container_churn(spec: ContainerChurn, ctx: Context) -> Generator:
    """Run container generations until the run stops."""
    root = f"{spec.base.rstrip('/')}/c{ctx.index}"
    lower = f"{root}/lower"
    yield from mkdir_p(ctx, lower)
    for i in range(spec.lower_files):
        yield from write_file(ctx, f"{lower}/img{i}", spec.file_kb * 1024, count=False)
    generation = 0
    while ctx.running():
        yield from run_container(spec, ctx, root, generation)
        generation += 1
    ctx.stats.finished += 1


def run_container(spec: ContainerChurn, ctx: Context, root: str, generation: int
                  ) -> Generator:
    """One container: mount its overlay, churn in rounds for ``lifetime_ms``, unmount."""
    sim = current().sim
    gen_dir = f"{root}/g{generation}"
    upper, work, merged = f"{gen_dir}/upper", f"{gen_dir}/work", f"{gen_dir}/merged"
    for d in (gen_dir, upper, work, merged):
        yield from syscall(ctx, sys.sys_mkdir(d), count=False, ignore=("EEXIST",))
    opts = {"lowerdir": f"{root}/lower", "upperdir": upper, "workdir": work}
    try:
        yield from sys.sys_mount("overlay", "overlay", merged, opts)
    except KernelError as e:
        ctx.stats.error(e.errno)
        yield ms(1)  # a runtime that cannot start a container retries later
        return
    end = sim.now + ms(spec.lifetime_ms) if spec.lifetime_ms else ctx.stop_ns
    rnd = 0
    while ctx.running() and sim.now < end:
        yield from container_round(spec, ctx, root, upper, merged, f"g{generation}r{rnd}")
        rnd += 1
        if spec.think_us:
            yield int(spec.think_us * 1000)
    yield from syscall(ctx, sys.sys_umount(merged), count=False)


def container_round(spec: ContainerChurn, ctx: Context, root: str, upper: str, merged: str,
                    tag: str) -> Generator:
    """stat image files, copy some up, create files, remove them as ``unlink_via`` says."""
    rng = ctx.rng()
    if spec.lower_files:
        for _ in range(spec.stat_files):
            yield from syscall(ctx, sys.sys_stat(f"{merged}/img{rng.randrange(spec.lower_files)}"),
                               ignore=("ENOENT",))
        for _ in range(spec.copyup_files):
            fd = yield from syscall(ctx, sys.sys_open(
                f"{merged}/img{rng.randrange(spec.lower_files)}", sys.O_RDWR), ignore=("ENOENT",))
            if fd is not None:
                yield from syscall(ctx, sys.sys_write(fd, 4096), 4096)
                yield from syscall(ctx, sys.sys_close(fd), count=False)
    names = [f"{tag}f{i}" for i in range(spec.create_files)]
    lower = f"{root}/lower"
    if spec.round_dirs and spec.unlink_via in ("overlay", "upper"):
        # a scratch directory per round: ext4 places each new directory in another group
        # (Orlov), and its files next to it
        yield from syscall(ctx, sys.sys_mkdir(f"{merged}/{tag}"), count=False)
        names = [f"{tag}/{name}" for name in names]
    for name in names:
        if spec.unlink_via == "lower":
            # an image update: the file appears in the lower layer, the container looks it up
            yield from write_file(ctx, f"{lower}/{name}", spec.file_kb * 1024)
            yield from syscall(ctx, sys.sys_stat(f"{merged}/{name}"), ignore=("ENOENT",))
        else:
            yield from write_file(ctx, f"{merged}/{name}", spec.file_kb * 1024)
    if spec.unlink_via == "lower":
        for name in names:
            yield from syscall(ctx, sys.sys_unlink(f"{lower}/{name}"))
    elif spec.unlink_via == "overlay":
        for name in names:
            yield from syscall(ctx, sys.sys_unlink(f"{merged}/{name}"))
    elif spec.unlink_via == "upper":
        for name in names:
            yield from syscall(ctx, sys.sys_unlink(f"{upper}/{name}"))
    if spec.round_dirs and spec.unlink_via in ("overlay", "upper"):
        base = merged if spec.unlink_via == "overlay" else upper
        yield from syscall(ctx, sys.sys_rmdir(f"{base}/{tag}"), count=False,
                           ignore=("ENOTEMPTY",))
