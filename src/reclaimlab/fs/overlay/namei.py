"""Overlay lookup and directory operations (``fs/overlayfs/namei.c``, ``dir.c``, ``inode.c``).

Lookup (``ovl_lookup``): the upper layer first — a whiteout (a character device) hides the name,
a non-directory hides the lower layer, a directory merges with a lower directory of the same name
— then the lower layer. The overlay inode takes over the real dentries' references.

Modifications go to the upper layer under its freeze protection (``ovl_want_write`` =
``sb_start_write`` of the upper superblock) and its directory lock, after copying the parent up:
create/mkdir (replacing a whiteout), unlink/rmdir (``vfs_unlink`` of the upper dentry, which the
overlay inode still pins — so the real dentry is only unhashed and the real inode lives on until
the overlay inode goes — then a whiteout if the lower layer has the name), rename (upper only,
whiteout at the old name), xattrs (on the copied-up inode).

Simplified: ``rmdir`` of a directory present in the lower layer is ``EOPNOTSUPP`` (no readdir to
check the merged directory is empty); renaming a lower directory is ``EXDEV`` (no redirect_dir);
whiteouts are created with ``->create`` and mode ``S_IFCHR`` (filesystems keep the mode's type).
"""

from __future__ import annotations

from reclaimlab.vfs import dcache, namei
from reclaimlab.vfs.errors import KernelError, unwinding
from reclaimlab.vfs.fs import S_IFCHR, S_ISCHR, S_ISDIR, Dentry, InodeOperations, SuperBlock
from reclaimlab.vfs.super import sb_end_write, sb_start_write

from .copy_up import ovl_copy_up
from .super import OvlInode, ovl_copyattr, ovl_new_inode, ovl_real


def ovl_is_whiteout(dentry: Dentry) -> bool:
    """``ovl_is_whiteout``."""
    return dentry.d_inode is not None and S_ISCHR(dentry.d_inode.i_mode)


def ovl_lookup_real(parent: Dentry, name: str):
    """A referenced real dentry (maybe negative) for ``name`` under a real directory."""
    dentry = dcache.d_lookup(parent, name)
    if dentry is not None:
        return dentry
    try:
        return (yield from namei.lookup_slow(parent, name))
    except KernelError as e:
        if e.errno != "ENOENT":
            raise
        return None


def _positive(dentry: Dentry | None):
    if dentry is not None and dentry.d_inode is None:
        yield from dcache.dput(dentry)
        return None
    return dentry


def ovl_upper_sb(sb: SuperBlock) -> SuperBlock:
    """The upper superblock; ``EROFS`` for an overlay without one."""
    upper = sb.s_fs_info.upper_sb
    if upper is None:
        raise KernelError("EROFS", "overlay has no upper layer")
    return upper


def ovl_create_real(usb: SuperBlock, upper_parent: Dentry, name: str, mode: int,
                    over_whiteout: bool):
    """``ovl_create_upper`` → ``ovl_create_real``: under the upper sb's write count and the
    upper parent's lock, look ``name`` up and create it (directory or file); returns the new
    upper dentry (referenced). An existing object is ``EEXIST``, except a whiteout when
    ``over_whiteout`` (``ovl_create_over_whiteout``; simplified: unlinked, not renamed over).
    Copy-up uses it too (simplified: created in place, no workdir)."""
    udir = upper_parent.d_inode
    yield from sb_start_write(usb)
    try:
        yield from namei.inode_lock_nested(udir, namei.I_MUTEX_PARENT)
        try:
            real = yield from namei.lookup_one(upper_parent, name)
            try:
                if over_whiteout and ovl_is_whiteout(real):
                    yield from namei.vfs_unlink(udir, real)
                elif real.d_inode is not None:
                    raise KernelError("EEXIST", name)
                if S_ISDIR(mode):
                    yield from namei.vfs_mkdir(udir, real, mode)
                else:
                    yield from namei.vfs_create(udir, real, mode)
            except KernelError:
                yield from dcache.dput(real)
                raise
        finally:
            if not unwinding():
                namei.inode_unlock(udir)
    finally:
        if not unwinding():
            sb_end_write(usb)
    return real


class OvlDirOps(InodeOperations):
    """``ovl_dir_inode_operations``."""

    def lookup(self, dir: OvlInode, dentry: Dentry):
        """``ovl_lookup``."""
        name = dentry.d_name
        upper = lower = None
        if dir.oi_upper is not None:
            upper = yield from _positive((yield from ovl_lookup_real(dir.oi_upper, name)))
            if upper is not None and ovl_is_whiteout(upper):
                yield from dcache.dput(upper)
                dcache.d_add(dentry, None)
                return
        if dir.oi_lower is not None and (upper is None or S_ISDIR(upper.d_inode.i_mode)):
            lower = yield from _positive((yield from ovl_lookup_real(dir.oi_lower, name)))
            if lower is not None and upper is not None and not S_ISDIR(lower.d_inode.i_mode):
                yield from dcache.dput(lower)
                lower = None
        if upper is None and lower is None:
            dcache.d_add(dentry, None)
            return
        inode = yield from ovl_new_inode(dir.i_sb, upper, lower)
        dcache.d_add(dentry, inode)

    def _create_object(self, dir: OvlInode, dentry: Dentry, mode: int):
        """``ovl_create_object`` → ``ovl_create_upper``/``ovl_create_over_whiteout``."""
        usb = ovl_upper_sb(dir.i_sb)
        yield from ovl_copy_up(dentry.d_parent)
        real = yield from ovl_create_real(usb, dir.oi_upper, dentry.d_name, mode,
                                          over_whiteout=True)
        inode = yield from ovl_new_inode(dir.i_sb, real, None)
        dcache.d_instantiate(dentry, inode)

    def create(self, dir: OvlInode, dentry: Dentry, mode: int):
        """``ovl_create``."""
        yield from self._create_object(dir, dentry, mode)

    def mkdir(self, dir: OvlInode, dentry: Dentry, mode: int):
        """``ovl_mkdir``."""
        yield from self._create_object(dir, dentry, mode)

    def _remove(self, dir: OvlInode, dentry: Dentry, is_dir: bool):
        """``ovl_do_remove``: remove the upper object, whiteout over a lower one."""
        usb = ovl_upper_sb(dir.i_sb)
        inode: OvlInode = dentry.d_inode
        if is_dir and inode.oi_lower is not None:
            raise KernelError("EOPNOTSUPP", "overlay: rmdir of a lower directory")
        yield from ovl_copy_up(dentry.d_parent)
        upper_parent = dir.oi_upper
        udir = upper_parent.d_inode
        yield from sb_start_write(usb)
        try:
            yield from namei.inode_lock_nested(udir, namei.I_MUTEX_PARENT)
            try:
                if inode.oi_upper is not None:
                    yield from ovl_remove_upper(upper_parent, inode, is_dir)
                if inode.oi_lower is not None:
                    yield from ovl_whiteout(upper_parent, dentry.d_name)
            finally:
                if not unwinding():
                    namei.inode_unlock(udir)
        finally:
            if not unwinding():
                sb_end_write(usb)
        inode.i_nlink = 0 if is_dir else max(inode.i_nlink - 1, 0)

    def unlink(self, dir: OvlInode, dentry: Dentry):
        """``ovl_unlink``."""
        yield from self._remove(dir, dentry, False)

    def rmdir(self, dir: OvlInode, dentry: Dentry):
        """``ovl_rmdir``."""
        yield from self._remove(dir, dentry, True)

    def rename(self, old_dir: OvlInode, old_dentry: Dentry, new_dir: OvlInode,
               new_dentry: Dentry):
        """``ovl_rename``: upper-only rename after copy-up; whiteout at the old name."""
        usb = ovl_upper_sb(old_dir.i_sb)
        src: OvlInode = old_dentry.d_inode
        if S_ISDIR(src.i_mode) and src.oi_lower is not None:
            raise KernelError("EXDEV", "overlay: rename of a lower directory")
        yield from ovl_copy_up(old_dentry)
        yield from ovl_copy_up(new_dentry.d_parent)
        old_up, new_up = old_dir.oi_upper, new_dir.oi_upper
        yield from sb_start_write(usb)
        try:
            yield from namei.lock_rename(old_up, new_up)
            try:
                yield from _rename_upper(old_up, src.oi_upper, new_up, new_dentry.d_name)
                if src.oi_lower is not None:
                    yield from ovl_whiteout(old_up, old_dentry.d_name)
            finally:
                if not unwinding():
                    namei.unlock_rename(old_up, new_up)
        finally:
            if not unwinding():
                sb_end_write(usb)
        lower, src.oi_lower = src.oi_lower, None
        yield from dcache.dput(lower)
        victim = new_dentry.d_inode
        if victim is not None:
            victim.i_nlink = max(victim.i_nlink - 1, 0)


class OvlFileIops(InodeOperations):
    """``ovl_file_inode_operations``: xattrs go to the real inode (set: after copy-up)."""

    def setxattr(self, dentry: Dentry, name: str, size: int):
        """``ovl_xattr_set``."""
        usb = ovl_upper_sb(dentry.d_sb)
        yield from ovl_copy_up(dentry)
        real = dentry.d_inode.oi_upper
        op = real.d_inode.i_op.setxattr if real.d_inode.i_op is not None else None
        if not op:
            raise KernelError("EOPNOTSUPP", "setxattr on the upper filesystem")
        yield from sb_start_write(usb)
        try:
            yield from namei.inode_lock(real.d_inode)
            try:
                yield from op(real, name, size)
            finally:
                if not unwinding():
                    namei.inode_unlock(real.d_inode)
        finally:
            if not unwinding():
                sb_end_write(usb)

    def getxattr(self, dentry: Dentry, name: str):
        """``ovl_xattr_get``."""
        real = ovl_real(dentry.d_inode)
        op = real.d_inode.i_op.getxattr if real.d_inode.i_op is not None else None
        if not op:
            raise KernelError("EOPNOTSUPP", "getxattr")
        return (yield from op(real, name))


class OvlDirIops(OvlDirOps, OvlFileIops):
    """Directories: namespace operations and xattrs."""


def ovl_remove_upper(upper_parent: Dentry, inode: OvlInode, is_dir: bool):
    """``ovl_remove_upper``: look the upper dentry up again (it must still be ours) and remove
    it; the overlay inode's pin keeps the real dentry alive, unhashed."""
    real = yield from namei.lookup_one(upper_parent, inode.oi_upper.d_name)
    try:
        if real is not inode.oi_upper:
            raise KernelError("ESTALE", "overlay: upper dentry changed under us")
        if is_dir:
            yield from namei.vfs_rmdir(upper_parent.d_inode, real)
        else:
            yield from namei.vfs_unlink(upper_parent.d_inode, real)
    finally:
        if not unwinding():
            yield from dcache.dput(real)


def ovl_whiteout(upper_parent: Dentry, name: str):
    """``ovl_whiteout``: a character-device whiteout named ``name`` in the upper directory
    (directory lock held)."""
    real = yield from namei.lookup_one(upper_parent, name)
    try:
        if real.d_inode is None:
            yield from namei.vfs_create(upper_parent.d_inode, real, S_IFCHR)
    finally:
        if not unwinding():
            yield from dcache.dput(real)


def _rename_upper(old_up: Dentry, upper: Dentry, new_up: Dentry, new_name: str):
    """Look the upper source up again (it must still be the overlay inode's) and rename it."""
    real_old = yield from namei.lookup_one(old_up, upper.d_name)
    try:
        if real_old is not upper:
            raise KernelError("ESTALE", "overlay: upper dentry changed under us")
        real_new = yield from namei.lookup_one(new_up, new_name)
        try:
            yield from namei.vfs_rename(old_up.d_inode, real_old, new_up.d_inode, real_new)
        finally:
            if not unwinding():
                yield from dcache.dput(real_new)
    finally:
        if not unwinding():
            yield from dcache.dput(real_old)


OVL_DIR_IOPS = OvlDirIops()
OVL_FILE_IOPS = OvlFileIops()

__all__ = ["OVL_DIR_IOPS", "OVL_FILE_IOPS", "ovl_is_whiteout", "ovl_copyattr"]
