"""An XFS-like filesystem: allocation groups, the inode cache with reclaimable inodes and
non-blocking (or, pre-5.9, blocking) reclaim, inactivation through inodegc, a log with
reservations, CIL, AIL and xfsaild, and a metadata buffer cache (``fs/xfs/``, mainline ~6.12).

Modules: ``xfs_mount`` (structures, configuration), ``xfs_log``, ``xfs_buf``, ``xfs_inode``
(transactions on inodes, namespace, inactivation, writes), ``xfs_icache`` (iget, reclaim),
``xfs_super`` (mount, ``super_operations``).
"""

from reclaimlab.fs.xfs.xfs_mount import XfsConfig, xfs_inode, xfs_mount
from reclaimlab.fs.xfs.xfs_super import XfsFsType, xfs_check_invariants

__all__ = ["XfsConfig", "XfsFsType", "xfs_check_invariants", "xfs_inode", "xfs_mount"]
