"""An ext4-like filesystem: block groups, bitmaps and inode tables through the buffer cache,
jbd2 journalling, delayed allocation with per-inode preallocations, the orphan list, xattrs with
``xattr_sem``, and ``ext4_evict_inode``'s two paths (``fs/ext4/``, mainline ~6.12).

Modules: ``ext4`` (structures, configuration, journal glue), ``mballoc`` (groups, buddy cache,
allocator, preallocations), ``inode`` (inode table, eviction, truncate, orphans, writeback),
``namei`` (directory operations), ``xattr``, ``super`` (mount, ``super_operations``).
"""

from reclaimlab.fs.ext4.ext4 import Ext4Config, ext4_inode_info, ext4_sb_info, EXT4_SB
from reclaimlab.fs.ext4.super import Ext4FsType, ext4_check_invariants

__all__ = ["Ext4Config", "Ext4FsType", "EXT4_SB", "ext4_check_invariants", "ext4_inode_info",
           "ext4_sb_info"]
