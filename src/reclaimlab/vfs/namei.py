"""Pathname lookup and the namespace operations (``fs/namei.c``, mainline ~6.12).

Paths are absolute, in the single mount namespace; ``lookup_mnt`` picks the mount whose target is
the longest prefix of the path, and the walk goes component by component from that mount's root:
``lookup_fast`` (dcache hit, ``d_lookup``) or ``lookup_slow`` (under the directory's ``i_rwsem``:
``d_alloc`` + ``->lookup``, which ``d_add``s the inode or a negative entry).

``vfs_create``/``vfs_mkdir``/``vfs_unlink``/``vfs_rmdir``/``vfs_rename`` call the inode
operations and then update the dcache as the kernel does (``d_delete`` after unlink/rmdir,
``d_move`` after rename). ``do_unlinkat`` holds an extra inode reference across ``vfs_unlink`` and
drops it after unlocking the directory, so the final ``iput`` (eviction) of an unlinked inode runs
in the unlinking task outside ``i_rwsem`` — unless someone else still holds it.

Simplified: no ``..``/symlinks/permissions; a slow lookup takes ``i_rwsem`` exclusively instead of
shared + ``d_alloc_parallel``; ``lock_rename`` orders the two directories by inode number.
"""

from __future__ import annotations

from typing import Any

import reclaimlab.sim as _sim
from reclaimlab.sim import RwSemaphore, down_read, down_write, up_read, up_write

from . import dcache
from . import inode as vfs_inode
from .errors import KernelError, unwinding
from .fs import S_DEAD, S_ISDIR, Dentry, Inode
from .super import sb_end_write, sb_start_write


class Mount:
    """``struct mount``: a superblock mounted at ``mnt_target`` (absolute path); pins the
    mountpoint dentry on the covering filesystem (``mnt_mountpoint``), if any."""

    __slots__ = ("mnt_sb", "mnt_target", "mnt_mountpoint")

    def __init__(self, sb: Any, target: str, mountpoint: Dentry | None) -> None:
        self.mnt_sb = sb
        self.mnt_target = target
        self.mnt_mountpoint = mountpoint

    def __repr__(self) -> str:
        return f"mount {self.mnt_sb.s_id} on {self.mnt_target}"


# ------------------------------------------------------------------ paths
def path_components(path: str) -> list[str]:
    """Split an absolute path; ``EINVAL`` for a relative one."""
    if not path.startswith("/"):
        raise KernelError("EINVAL", f"path {path!r} is not absolute")
    return [c for c in path.split("/") if c and c != "."]


def normalize(path: str) -> str:
    return "/" + "/".join(path_components(path))


def lookup_mnt(vfs: Any, comps: list[str]) -> tuple[Mount, list[str]]:
    """``lookup_mnt``: the innermost mount covering the path and the components below it
    (each shorter prefix cut from the path string, not joined again)."""
    mounts = vfs.mounts
    prefix = "/" + "/".join(comps)
    for n in range(len(comps), -1, -1):
        mnt = mounts.get(prefix)
        if mnt is not None:
            return mnt, comps[n:]
        prefix = prefix[:prefix.rindex("/")] or "/"
    raise KernelError("ENOENT", f"no filesystem mounted on {'/' + '/'.join(comps)}")


# ------------------------------------------------------------------ i_rwsem
def _i_rwsem(inode: Inode) -> Any:
    if inode.i_rwsem is None:
        key = "&type->i_mutex_dir_key" if S_ISDIR(inode.i_mode) else "&sb->s_type->i_mutex_key"
        inode.i_rwsem = RwSemaphore(f"{key}#{inode.i_sb.s_type.name}")
    return inode.i_rwsem


# Lockdep nesting subclasses of i_rwsem (include/linux/fs.h, enum inode_i_mutex_lock_class).
I_MUTEX_NORMAL = 0
I_MUTEX_PARENT = 1
I_MUTEX_CHILD = 2
I_MUTEX_PARENT2 = 5


def inode_lock(inode: Inode):
    """``inode_lock``: ``down_write(&inode->i_rwsem)``."""
    yield from down_write(_i_rwsem(inode))


def inode_lock_nested(inode: Inode, subclass: int):
    """``inode_lock_nested``: ``down_write_nested`` — the same lock class in another role
    (a parent directory, then a child), so lockdep does not call it recursive locking. Uses the
    runtime's ``down_write_nested`` when it has one (it reports ``subclass`` to lockdep)."""
    nested = getattr(_sim, "down_write_nested", None)
    if nested is None or subclass == I_MUTEX_NORMAL:
        yield from down_write(_i_rwsem(inode))
    else:
        yield from nested(_i_rwsem(inode), subclass)


def inode_unlock(inode: Inode) -> None:
    up_write(inode.i_rwsem)


def inode_lock_shared(inode: Inode):
    yield from down_read(_i_rwsem(inode))


def inode_unlock_shared(inode: Inode) -> None:
    up_read(inode.i_rwsem)


# ------------------------------------------------------------------ lookup
def __lookup_slow(parent: Dentry, name: str):
    """``__lookup_slow`` (directory lock held): re-check the dcache, else allocate a dentry and
    ask the filesystem. Returns a referenced (maybe negative) dentry."""
    dentry = dcache.d_lookup(parent, name)
    if dentry is not None:
        return dentry
    if parent.d_inode.i_flags & S_DEAD:
        raise KernelError("ENOENT", f"{name} in a removed directory")
    dentry = yield from dcache.d_alloc(parent, name)
    if dentry is None:
        raise KernelError("ENOMEM", "d_alloc")
    dir_inode = parent.d_inode
    lookup = dir_inode.i_op.lookup if dir_inode.i_op is not None else None
    try:
        if lookup:
            yield from lookup(dir_inode, dentry)
        if dcache.d_unhashed(dentry):
            dcache.d_add(dentry, dentry.d_inode)
    except KernelError:
        yield from dcache.dput(dentry)
        raise
    return dentry


def lookup_slow(parent: Dentry, name: str):
    """``lookup_slow``: ``__lookup_slow`` under the directory's ``i_rwsem``."""
    dir_inode = parent.d_inode
    yield from inode_lock(dir_inode)
    try:
        return (yield from __lookup_slow(parent, name))
    finally:
        if not unwinding():
            inode_unlock(dir_inode)


def lookup_one(parent: Dentry, name: str):
    """``lookup_one`` (caller holds the directory's ``i_rwsem``): a referenced dentry, maybe
    negative."""
    return (yield from __lookup_slow(parent, name))


def walk_components(mnt: Mount, comps: list[str]):
    """``link_path_walk``: from the mount's root through ``comps``; returns the referenced final
    dentry (maybe negative). ``ENOENT``/``ENOTDIR`` on the way."""
    dentry = dcache.dget(mnt.mnt_sb.s_root)
    for name in comps:
        inode = dentry.d_inode
        if inode is None:
            yield from dcache.dput(dentry)
            raise KernelError("ENOENT", name)
        if not S_ISDIR(inode.i_mode):
            yield from dcache.dput(dentry)
            raise KernelError("ENOTDIR", name)
        try:
            child = dcache.d_lookup(dentry, name)
            if child is None:
                child = yield from lookup_slow(dentry, name)
        finally:
            if not unwinding():
                yield from dcache.dput(dentry)
        dentry = child
    return dentry


def filename_lookup(vfs: Any, path: str):
    """``filename_lookup``: the referenced positive dentry for ``path``; ``ENOENT`` if none."""
    mnt, rest = lookup_mnt(vfs, path_components(path))
    dentry = yield from walk_components(mnt, rest)
    if dentry.d_inode is None:
        yield from dcache.dput(dentry)
        raise KernelError("ENOENT", path)
    return dentry


def filename_parentat(vfs: Any, path: str):
    """``filename_parentat``: (referenced parent directory dentry, last component)."""
    comps = path_components(path)
    if not comps:
        raise KernelError("EBUSY", "operation on /")
    mnt, rest = lookup_mnt(vfs, comps[:-1])
    parent = yield from walk_components(mnt, rest)
    inode = parent.d_inode
    if inode is None or not S_ISDIR(inode.i_mode):
        yield from dcache.dput(parent)
        raise KernelError("ENOENT" if inode is None else "ENOTDIR", path)
    return parent, comps[-1]


# ------------------------------------------------------------------ vfs_* operations
def _iop(dir_inode: Inode, name: str) -> Any:
    if dir_inode.i_flags & S_DEAD:
        raise KernelError("ENOENT", f"{name} in a removed directory")
    op = getattr(dir_inode.i_op, name, None) if dir_inode.i_op is not None else None
    if not op:
        raise KernelError("EPERM", f"{dir_inode!r} has no {name}")
    return op


def vfs_create(dir_inode: Inode, dentry: Dentry, mode: int):
    """``vfs_create``: ``->create`` instantiates ``dentry``."""
    yield from _iop(dir_inode, "create")(dir_inode, dentry, mode)


def vfs_mkdir(dir_inode: Inode, dentry: Dentry, mode: int):
    """``vfs_mkdir``."""
    yield from _iop(dir_inode, "mkdir")(dir_inode, dentry, mode)


def vfs_unlink(dir_inode: Inode, dentry: Dentry):
    """``vfs_unlink``: ``->unlink`` then ``d_delete``."""
    yield from _iop(dir_inode, "unlink")(dir_inode, dentry)
    yield from dcache.d_delete(dentry)


def vfs_rmdir(dir_inode: Inode, dentry: Dentry):
    """``vfs_rmdir``: under the victim's lock, prune unused children, ``->rmdir`` (``ENOTEMPTY``
    is the filesystem's), mark it ``S_DEAD`` (no creation in it from now on), ``d_delete``."""
    victim = dentry.d_inode
    yield from inode_lock(victim)
    try:
        yield from dcache.shrink_dcache_parent(dentry)
        yield from _iop(dir_inode, "rmdir")(dir_inode, dentry)
        victim.i_flags |= S_DEAD
    finally:
        if not unwinding():
            inode_unlock(victim)
    yield from dcache.d_delete(dentry)


def d_move(dentry: Dentry, target: Dentry) -> None:
    """``d_move``: ``dentry`` takes ``target``'s name and parent; ``target`` is unhashed."""
    dcache.__d_drop(target)
    dcache.__d_drop(dentry)
    old_parent, new_parent = dentry.d_parent, target.d_parent
    if old_parent is not new_parent:
        new_parent.d_count += 1
        old_parent.d_count -= 1
    dentry.d_parent = new_parent
    dentry.d_name = target.d_name
    dcache.__d_rehash(dentry)


def vfs_rename(old_dir: Inode, old_dentry: Dentry, new_dir: Inode, new_dentry: Dentry):
    """``vfs_rename``: ``->rename`` then ``d_move``; a replaced target is released by the
    caller's ``dput`` of ``new_dentry`` (its final ``iput`` evicts it)."""
    if old_dentry.d_inode is None:
        raise KernelError("ENOENT", old_dentry.d_name)
    yield from _iop(old_dir, "rename")(old_dir, old_dentry, new_dir, new_dentry)
    d_move(old_dentry, new_dentry)


# ------------------------------------------------------------------ do_* (syscall bodies)
def do_mknod_or_dir(vfs: Any, path: str, mode: int, is_dir: bool):
    """``do_mkdirat``/``do_mknodat`` (regular file creation without open)."""
    parent, name = yield from filename_parentat(vfs, path)
    sb = parent.d_sb
    dir_inode = parent.d_inode
    try:
        yield from sb_start_write(sb)
        try:
            yield from inode_lock_nested(dir_inode, I_MUTEX_PARENT)
            try:
                dentry = yield from lookup_one(parent, name)
                try:
                    if dentry.d_inode is not None:
                        raise KernelError("EEXIST", path)
                    if is_dir:
                        yield from vfs_mkdir(dir_inode, dentry, mode)
                    else:
                        yield from vfs_create(dir_inode, dentry, mode)
                finally:
                    if not unwinding():
                        yield from dcache.dput(dentry)
            finally:
                if not unwinding():
                    inode_unlock(dir_inode)
        finally:
            if not unwinding():
                sb_end_write(sb)
    finally:
        if not unwinding():
            yield from dcache.dput(parent)


def do_unlinkat(vfs: Any, path: str, rmdir: bool = False):
    """``do_unlinkat``/``do_rmdir``: see the module docstring for where the final iput runs."""
    parent, name = yield from filename_parentat(vfs, path)
    sb = parent.d_sb
    dir_inode = parent.d_inode
    victim: Inode | None = None
    try:
        yield from sb_start_write(sb)
        try:
            yield from inode_lock_nested(dir_inode, I_MUTEX_PARENT)
            try:
                dentry = yield from lookup_one(parent, name)
                try:
                    inode = dentry.d_inode
                    if inode is None:
                        raise KernelError("ENOENT", path)
                    if rmdir and not S_ISDIR(inode.i_mode):
                        raise KernelError("ENOTDIR", path)
                    if not rmdir and S_ISDIR(inode.i_mode):
                        raise KernelError("EISDIR", path)
                    if rmdir:
                        yield from vfs_rmdir(dir_inode, dentry)
                    else:
                        vfs_inode.ihold(inode)
                        victim = inode
                        yield from vfs_unlink(dir_inode, dentry)
                finally:
                    if not unwinding():
                        yield from dcache.dput(dentry)
            finally:
                if not unwinding():
                    inode_unlock(dir_inode)
                    # "truncate the inode here": the final iput runs outside the directory lock
                    yield from vfs_inode.iput(victim)
        finally:
            if not unwinding():
                sb_end_write(sb)
    finally:
        if not unwinding():
            yield from dcache.dput(parent)


def lock_rename(p1: Dentry, p2: Dentry):
    """``lock_rename``: lock both parent directories (one if the same), in a stable order."""
    if p1 is p2:
        yield from inode_lock_nested(p1.d_inode, I_MUTEX_PARENT)
        return
    a, b = sorted((p1.d_inode, p2.d_inode), key=lambda i: i.i_ino)
    yield from inode_lock_nested(a, I_MUTEX_PARENT)
    yield from inode_lock_nested(b, I_MUTEX_PARENT2)


def unlock_rename(p1: Dentry, p2: Dentry) -> None:
    inode_unlock(p1.d_inode)
    if p2 is not p1:
        inode_unlock(p2.d_inode)


def do_renameat2(vfs: Any, old: str, new: str):
    """``do_renameat2`` (same filesystem only: ``EXDEV`` otherwise)."""
    old_parent, old_name = yield from filename_parentat(vfs, old)
    try:
        new_parent, new_name = yield from filename_parentat(vfs, new)
    except KernelError:
        yield from dcache.dput(old_parent)
        raise
    sb = old_parent.d_sb
    try:
        if new_parent.d_sb is not sb:
            raise KernelError("EXDEV", f"{old} -> {new}")
        yield from sb_start_write(sb)
        try:
            yield from lock_rename(old_parent, new_parent)
            try:
                yield from _rename_locked(old_parent, old_name, new_parent, new_name, old)
            finally:
                if not unwinding():
                    unlock_rename(old_parent, new_parent)
        finally:
            if not unwinding():
                sb_end_write(sb)
    finally:
        if not unwinding():
            yield from dcache.dput(new_parent)
            yield from dcache.dput(old_parent)


def _rename_locked(old_parent: Dentry, old_name: str, new_parent: Dentry, new_name: str,
                   path: str):
    old_dentry = yield from lookup_one(old_parent, old_name)
    try:
        if old_dentry.d_inode is None:
            raise KernelError("ENOENT", path)
        new_dentry = yield from lookup_one(new_parent, new_name)
        try:
            if new_dentry is old_dentry:
                return
            yield from vfs_rename(old_parent.d_inode, old_dentry, new_parent.d_inode, new_dentry)
        finally:
            if not unwinding():
                yield from dcache.dput(new_dentry)
    finally:
        if not unwinding():
            yield from dcache.dput(old_dentry)
