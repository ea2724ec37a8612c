"""Overlay files (``fs/overlayfs/file.c``): an overlay file opens the real file it stands for
(``ovl_open_realfile``) after copying a lower file up when opened for writing
(``ovl_maybe_copy_up``); IO and fsync go to the real file; size is copied back after writes."""

from __future__ import annotations

from reclaimlab.vfs.file import fput, vfs_fsync, vfs_open, vfs_read, vfs_write
from reclaimlab.vfs.fs import O_ACCMODE, O_RDONLY, S_ISDIR, File, FileOperations

from .copy_up import ovl_copy_up
from .super import OvlInode, ovl_copyattr, ovl_real


class OvlFileOps(FileOperations):
    """``ovl_file_operations``."""

    def open(self, inode: OvlInode, file: File):
        """``ovl_open``."""
        if file.f_flags & O_ACCMODE != O_RDONLY and not S_ISDIR(inode.i_mode):
            yield from ovl_copy_up(file.f_dentry)
        file.private_data = yield from vfs_open(ovl_real(inode), file.f_flags)

    def release(self, inode: OvlInode, file: File):
        """``ovl_release``."""
        yield from fput(file.private_data)

    def read(self, file: File, nbytes: int):
        """``ovl_read_iter``."""
        return (yield from vfs_read(file.private_data, nbytes))

    def write(self, file: File, nbytes: int):
        """``ovl_write_iter``."""
        n = yield from vfs_write(file.private_data, nbytes)
        ovl_copyattr(file.f_inode)
        return n

    def fsync(self, file: File, datasync: bool):
        """``ovl_fsync``."""
        yield from vfs_fsync(file.private_data, datasync)


OVL_FILE_OPS = OvlFileOps()
