"""The system-call layer workloads use (``fs/namei.c``, ``fs/open.c``, ``fs/namespace.c``,
``fs/sync.c``, ``fs/xattr.c``, ``fs/stat.c``, ``fs/statfs.c``, ``fs/drop_caches.c``).

Every ``sys_*`` is a generator acting on ``current()``'s simulation, paths absolute in the single
mount namespace; failures raise ``KernelError(errno_name)``. Each call first consumes
``vfs.syscall_ns`` of CPU (entry/exit and the parts of the kernel not modelled).

Mounting: ``sys_mount`` resolves the filesystem type and its source (a registered block device
name or a ``BlockDevice``; ignored by filesystems with ``requires_dev = False``), calls
``fs_type.mount(sim, dev, options)``, then ``super_setup_born``. The mountpoint must be an
existing directory when another mount covers it (its dentry is pinned), and may be any absolute
path otherwise. ``sys_umount`` refuses (``EBUSY``) while files are open on the superblock, another
mount sits below the target, or another superblock depends on it (an overlay on its layers),
then shuts the superblock down (``fs_type.kill_sb`` or ``kill_super``).
"""

from __future__ import annotations

from typing import Any

from reclaimlab.block import BlockDevice, lookup_bdev
from reclaimlab.sim import Run, current, down_read, up_read

from . import dcache, namei
from .errors import KernelError, unwinding
from .file import (  # noqa: F401  (exit_files re-exported: part of the task-facing API)
    close_fd, exit_files, fd_install, fdget, fput, vfs_fsync, vfs_open, vfs_read, vfs_write,
)
from .fs import (
    I_FREEING, I_NEW, I_WILL_FREE, O_CREAT, O_EXCL, O_RDONLY, O_RDWR, O_WRONLY, S_IFDIR,
    S_IFREG, S_ISDIR,
)
from .super import (
    freeze_super, get_fs_type, kill_super, sb_end_write, sb_start_write, super_setup_born,
    sync_filesystem, thaw_super, vfs_statfs,
)

__all__ = [
    "O_CREAT", "O_EXCL", "O_RDONLY", "O_RDWR", "O_WRONLY",
    "sys_mount", "sys_umount", "sys_mkdir", "sys_rmdir", "sys_open", "sys_close", "sys_read",
    "sys_write", "sys_fsync", "sys_unlink", "sys_rename", "sys_stat", "sys_setxattr",
    "sys_getxattr", "sys_sync", "sys_syncfs", "sys_statfs", "sys_drop_caches", "sys_freeze",
    "sys_thaw", "path_sb", "exit_files",
]


def _enter() -> Any:
    """Syscall entry: charge ``syscall_ns`` of CPU; returns ``sim.vfs``."""
    vfs = current().sim.vfs
    yield Run(vfs.config.syscall_ns)
    return vfs


# ------------------------------------------------------------------ mount
def sys_mount(fstype: str, source: Any, target: str, options: dict | None = None):
    """``mount(2)``: mount a new superblock of ``fstype`` on ``target``; returns the sb."""
    vfs = yield from _enter()
    sim = vfs.sim
    target = namei.normalize(target)
    if target in vfs.mounts:
        raise KernelError("EBUSY", f"{target} is already a mount point")
    fs_type = get_fs_type(sim, fstype)
    dev = None
    if fs_type.requires_dev:
        dev = source if isinstance(source, BlockDevice) else lookup_bdev(sim, str(source))
        if dev is None:
            raise KernelError("ENODEV", f"no block device {source!r}")
        if any(m.mnt_sb.s_bdev is dev for m in vfs.mounts.values()):
            raise KernelError("EBUSY", f"{dev.name} is already mounted")
    mountpoint = yield from _mountpoint(vfs, target)
    try:
        sb = yield from fs_type.mount(sim, dev, dict(options or {}))
    except KernelError:
        yield from dcache.dput(mountpoint)
        raise
    super_setup_born(sb)
    sb.s_mounts += 1
    vfs.mounts[target] = namei.Mount(sb, target, mountpoint)
    return sb


def _mountpoint(vfs: Any, target: str):
    """The pinned directory dentry ``target`` names on the covering mount, or None."""
    comps = namei.path_components(target)
    if not comps or not any(m == "/" or target.startswith(m + "/") for m in vfs.mounts):
        return None
    dentry = yield from namei.filename_lookup(vfs, target)
    if not S_ISDIR(dentry.d_inode.i_mode):
        yield from dcache.dput(dentry)
        raise KernelError("ENOTDIR", target)
    return dentry


def _open_files_on(vfs: Any, sb: Any) -> int:
    return sum(1 for table in vfs.fdtables.values() for f in table.values()
               if f.f_inode.i_sb is sb)


def sys_umount(target: str):
    """``umount(2)``: see the module docstring."""
    vfs = yield from _enter()
    target = namei.normalize(target)
    mnt = vfs.mounts.get(target)
    if mnt is None:
        raise KernelError("EINVAL", f"{target} is not a mount point")
    sb = mnt.mnt_sb
    below = [m for m in vfs.mounts if m != target and m.startswith(target.rstrip("/") + "/")]
    if below or sb.s_dependents or _open_files_on(vfs, sb):
        raise KernelError("EBUSY", f"{target} is busy")
    del vfs.mounts[target]
    sb.s_mounts -= 1
    if sb.s_mounts == 0:
        kill_sb = getattr(sb.s_type, "kill_sb", None)
        yield from (kill_sb(sb) if kill_sb else kill_super(sb))
    yield from dcache.dput(mnt.mnt_mountpoint)


# ------------------------------------------------------------------ namespace operations
def sys_mkdir(path: str, mode: int = 0o755):
    """``mkdir(2)``."""
    vfs = yield from _enter()
    yield from namei.do_mknod_or_dir(vfs, path, S_IFDIR | mode, True)


def sys_rmdir(path: str):
    """``rmdir(2)``."""
    vfs = yield from _enter()
    yield from namei.do_unlinkat(vfs, path, rmdir=True)


def sys_unlink(path: str):
    """``unlink(2)``."""
    vfs = yield from _enter()
    yield from namei.do_unlinkat(vfs, path)


def sys_rename(old: str, new: str):
    """``rename(2)``."""
    vfs = yield from _enter()
    yield from namei.do_renameat2(vfs, old, new)


# ------------------------------------------------------------------ files
def sys_open(path: str, flags: int = O_RDONLY, mode: int = 0o644):
    """``open(2)``: returns an fd. ``O_CREAT`` creates a regular file, ``O_EXCL`` fails on an
    existing one."""
    vfs = yield from _enter()
    if flags & O_CREAT:
        dentry = yield from _open_create(vfs, path, flags, mode)
    else:
        dentry = yield from namei.filename_lookup(vfs, path)
    try:
        file = yield from vfs_open(dentry, flags)
    finally:
        if not unwinding():
            yield from dcache.dput(dentry)
    return fd_install(vfs, file)


def _open_create(vfs: Any, path: str, flags: int, mode: int):
    """``open_last_lookups`` with ``O_CREAT``: look up or create under the directory lock."""
    parent, name = yield from namei.filename_parentat(vfs, path)
    dir_inode = parent.d_inode
    sb = parent.d_sb
    try:
        yield from sb_start_write(sb)
        try:
            yield from namei.inode_lock(dir_inode)
            try:
                dentry = yield from namei.lookup_one(parent, name)
                try:
                    if dentry.d_inode is not None:
                        if flags & O_EXCL:
                            raise KernelError("EEXIST", path)
                    else:
                        yield from namei.vfs_create(dir_inode, dentry, S_IFREG | mode)
                except KernelError:
                    yield from dcache.dput(dentry)
                    raise
            finally:
                if not unwinding():
                    namei.inode_unlock(dir_inode)
        finally:
            if not unwinding():
                sb_end_write(sb)
    finally:
        if not unwinding():
            yield from dcache.dput(parent)
    return dentry


def sys_close(fd: int):
    """``close(2)``: the last reference to the file runs ``__fput`` here."""
    vfs = yield from _enter()
    yield from fput(close_fd(vfs, fd))


def sys_read(fd: int, nbytes: int):
    """``read(2)``: returns bytes read."""
    vfs = yield from _enter()
    return (yield from vfs_read(fdget(vfs, fd), nbytes))


def sys_write(fd: int, nbytes: int):
    """``write(2)``: returns bytes written."""
    vfs = yield from _enter()
    return (yield from vfs_write(fdget(vfs, fd), nbytes))


def sys_fsync(fd: int):
    """``fsync(2)``."""
    vfs = yield from _enter()
    yield from vfs_fsync(fdget(vfs, fd))


# ------------------------------------------------------------------ attributes
def sys_stat(path: str):
    """``stat(2)``: ``{"ino", "mode", "nlink", "size", "blocks", "dev"}``."""
    vfs = yield from _enter()
    dentry = yield from namei.filename_lookup(vfs, path)
    inode = dentry.d_inode
    st = {"ino": inode.i_ino, "mode": inode.i_mode, "nlink": inode.i_nlink,
          "size": inode.i_size, "blocks": inode.i_blocks, "dev": inode.i_sb.s_id}
    yield from dcache.dput(dentry)
    return st


def sys_setxattr(path: str, name: str, size: int):
    """``setxattr(2)``: under ``sb_start_write`` and the inode lock, ``->setxattr``."""
    vfs = yield from _enter()
    dentry = yield from namei.filename_lookup(vfs, path)
    inode = dentry.d_inode
    sb = inode.i_sb
    try:
        op = inode.i_op.setxattr if inode.i_op is not None else None
        if not op:
            raise KernelError("EOPNOTSUPP", "setxattr")
        yield from sb_start_write(sb)
        try:
            yield from namei.inode_lock(inode)
            try:
                yield from op(dentry, name, size)
            finally:
                if not unwinding():
                    namei.inode_unlock(inode)
        finally:
            if not unwinding():
                sb_end_write(sb)
    finally:
        if not unwinding():
            yield from dcache.dput(dentry)


def sys_getxattr(path: str, name: str):
    """``getxattr(2)``: the value's size (``ENODATA`` is the filesystem's)."""
    vfs = yield from _enter()
    dentry = yield from namei.filename_lookup(vfs, path)
    try:
        inode = dentry.d_inode
        op = inode.i_op.getxattr if inode.i_op is not None else None
        if not op:
            raise KernelError("EOPNOTSUPP", "getxattr")
        return (yield from op(dentry, name))
    finally:
        if not unwinding():
            yield from dcache.dput(dentry)


# ------------------------------------------------------------------ whole filesystems
def path_sb(vfs: Any, path: str) -> Any:
    """The superblock of the mount covering ``path`` (no walk)."""
    mnt, _ = namei.lookup_mnt(vfs, namei.path_components(path))
    return mnt.mnt_sb


def _sync_one(sb: Any):
    yield from down_read(sb.s_umount)
    try:
        yield from sync_filesystem(sb)
    finally:
        if not unwinding():
            up_read(sb.s_umount)


def sys_sync():
    """``sync(2)``: ``sync_filesystem`` of every superblock under ``s_umount`` (read)."""
    vfs = yield from _enter()
    for sb in list(vfs.super_blocks):
        yield from _sync_one(sb)


def sys_syncfs(path: str):
    """``syncfs(2)``."""
    vfs = yield from _enter()
    yield from _sync_one(path_sb(vfs, path))


def sys_statfs(path: str):
    """``statfs(2)``: the filesystem's ``->statfs`` dict (``f_blocks``, ``f_bfree``,
    ``f_files``, ``f_ffree``)."""
    vfs = yield from _enter()
    return vfs_statfs(path_sb(vfs, path))


def sys_freeze(path: str):
    """``ioctl(FIFREEZE)``: ``freeze_super``."""
    vfs = yield from _enter()
    yield from freeze_super(path_sb(vfs, path))


def sys_thaw(path: str):
    """``ioctl(FITHAW)``: ``thaw_super``."""
    vfs = yield from _enter()
    yield from thaw_super(path_sb(vfs, path))


def sys_drop_caches(mode: int):
    """``/proc/sys/vm/drop_caches``: bit 1 ``drop_pagecache_sb`` (clean folios of every cached
    inode), bit 2 ``drop_slab`` (every shrinker, ``GFP_KERNEL``, while
    ``(freed >> shift++) > 1``) — in the calling task, without ``PF_MEMALLOC``."""
    vfs = yield from _enter()
    from reclaimlab.mm.filemap import invalidate_mapping_pages
    from reclaimlab.mm.vmscan import drop_slab

    if mode & 1:
        for sb in list(vfs.super_blocks):
            for inode in list(sb.s_inodes):
                if inode.i_state & (I_FREEING | I_WILL_FREE | I_NEW) or inode.i_data is None:
                    continue
                invalidate_mapping_pages(inode.i_data)
    if mode & 2:
        yield from drop_slab(vfs.sim.pgdat)
