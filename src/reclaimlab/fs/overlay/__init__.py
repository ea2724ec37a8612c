"""overlayfs on real filesystems: ``super`` (superblock, inodes pinning real dentries, mount),
``namei`` (lookup and directory operations, whiteouts), ``copy_up``, ``file``.

Register with ``register_filesystem(sim, OverlayFsType())`` and mount with
``sys_mount("overlay", None, target, {"lowerdir": ..., "upperdir": ..., "workdir": ...})``.
"""

from .super import OverlayFsType, OvlInode

__all__ = ["OverlayFsType", "OvlInode"]
