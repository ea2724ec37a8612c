"""Filesystems: the buffer cache (``buffer``), a jbd2-like journal (``journal``), the generic
inodegc machinery (``inodegc``), an ext4-like (``ext4``) and an XFS-like (``xfs``) filesystem,
and overlayfs (``overlay``).

``register_block_filesystems(sim)`` registers the ext4 and xfs types with the VFS.
"""


def register_block_filesystems(sim) -> None:
    """``init_ext4_fs`` + ``init_xfs_fs``: register both filesystem types."""
    from reclaimlab.fs.ext4 import Ext4FsType
    from reclaimlab.fs.xfs import XfsFsType
    from reclaimlab.vfs.super import register_filesystem

    register_filesystem(sim, Ext4FsType())
    register_filesystem(sim, XfsFsType())
