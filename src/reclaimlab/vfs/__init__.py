"""The VFS: inodes, dentries, superblocks, writeback, the eviction design switch, system calls.

Modules (one per kernel file it models):

- ``fs``: the structures (``Inode``, ``Dentry``, ``SuperBlock``, ``File``), flag bits and the
  operation tables a filesystem fills in (``SuperOperations``, ``InodeOperations``,
  ``FileOperations``, ``AddressSpaceOperations``, ``FileSystemType``).
- ``inode`` (fs/inode.c): iget/iput/evict/destroy, the inode LRU and ``prune_icache_sb``,
  ``inode_uses_inodegc``, nlink helpers, lifecycle events.
- ``dcache`` (fs/dcache.c): d_alloc/d_add/d_lookup/dput/d_delete, ``prune_dcache_sb``.
- ``super`` (fs/super.c): ``alloc_super``, the per-sb shrinker, freeze protection, unmount.
- ``fs_writeback`` (fs/fs-writeback.c): dirty inodes, flusher work, ``write_inode_now``.
- ``evict_designs``: the design switch (``evict_or_defer``) and passive-ref's worker.
- ``designs``: the registry of every design (name, summary, source, mechanism) and the design
  predicates; ``evict_async`` (evict-async, split-evict), ``deferred_reclaim``
  (deferred-reclaim) and ``evict_queue`` (their per-superblock worker) implement the proposals.
- ``namei`` (fs/namei.c), ``file`` (open files, buffered IO), ``syscalls`` (``sys_*``).
- ``state``: ``sim.vfs`` (``vfs_init``), configuration, statistics, ``leaked``,
  ``check_invariants``. ``errors``: ``KernelError``.

Setup: ``vfs_init(sim, {"design": "passive-ref"})`` after ``sim.pgdat`` exists, then
``register_filesystem(sim, fs_type)`` and ``sys_mount`` from a task.
"""

from .errors import KernelError
from .state import DESIGNS, Vfs, VfsConfig, vfs_init

__all__ = ["KernelError", "DESIGNS", "Vfs", "VfsConfig", "vfs_init"]
