"""Copy-up (``fs/overlayfs/copy_up.c``): give a lower object an upper copy before it changes.

``ovl_copy_up`` copies the missing ancestors first, then the object: under the upper
superblock's freeze protection and the upper parent directory's lock it creates the upper
directory or file, then (outside the directory lock, like ``ovl_copy_up_data``) copies a regular
file's data through the page caches — reading the lower file and writing the upper one, so a
copy-up allocates page cache and blocks on IO. The overlay's copy-up lock (``oi->lock``; one per
overlay here) serialises copy-ups.

Simplified: created in place rather than in the workdir and renamed; no metacopy; no xattrs
copied.
"""

from __future__ import annotations

from reclaimlab.sim import Mutex, mutex_lock, mutex_unlock
from reclaimlab.vfs.errors import unwinding
from reclaimlab.vfs.file import fput, vfs_open, vfs_read, vfs_write
from reclaimlab.vfs.fs import O_RDONLY, O_WRONLY, S_ISREG, Dentry

OVL_COPY_CHUNK = 1 << 20


def _copyup_lock(sb) -> Mutex:
    ofs = sb.s_fs_info
    lock = getattr(ofs, "copyup_lock", None)
    if lock is None:
        lock = ofs.copyup_lock = Mutex("&oi->lock")
    return lock


def ovl_copy_up(dentry: Dentry):
    """``ovl_copy_up_flags``: copy ``dentry`` (an overlay dentry) and its ancestors up."""
    chain = []
    d = dentry
    while d.d_inode.oi_upper is None:
        chain.append(d)
        d = d.d_parent
    if not chain:
        return
    lock = _copyup_lock(dentry.d_sb)
    yield from mutex_lock(lock)
    try:
        for d in reversed(chain):
            yield from ovl_copy_up_one(d)
    finally:
        if not unwinding():
            mutex_unlock(lock)


def ovl_copy_up_one(dentry: Dentry):
    """``ovl_copy_up_one``: create the upper object, copy the data, attach it to the inode."""
    inode = dentry.d_inode
    if inode.oi_upper is not None:
        return
    from .namei import ovl_create_real, ovl_upper_sb
    usb = ovl_upper_sb(dentry.d_sb)
    mode = inode.oi_lower.d_inode.i_mode
    real = yield from ovl_create_real(usb, dentry.d_parent.d_inode.oi_upper, dentry.d_name,
                                      mode, over_whiteout=False)
    if S_ISREG(mode) and inode.oi_lower.d_inode.i_size:
        yield from ovl_copy_up_data(inode.oi_lower, real)
    inode.oi_upper = real


def ovl_copy_up_data(lower: Dentry, upper: Dentry):
    """``ovl_copy_up_data``: read the lower file, write the upper one, chunk by chunk."""
    src = yield from vfs_open(lower, O_RDONLY)
    try:
        dst = yield from vfs_open(upper, O_WRONLY)
        try:
            left = lower.d_inode.i_size
            while left > 0:
                got = yield from vfs_read(src, min(left, OVL_COPY_CHUNK))
                if got <= 0:
                    break
                yield from vfs_write(dst, got)
                left -= got
        finally:
            if not unwinding():
                yield from fput(dst)
    finally:
        if not unwinding():
            yield from fput(src)
