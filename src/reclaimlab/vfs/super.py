"""Superblocks (``fs/super.c``, ``fs/filesystems.c``, mainline ~6.12), kernel-semantics §2–§3.

- ``register_filesystem``/``get_fs_type``: the filesystem-type registry (``sim.vfs.file_systems``).
- ``alloc_super``: a superblock for a filesystem's ``mount`` to fill (``s_op``, ``s_root``…);
  ``super_setup_born`` (the end of ``vfs_get_tree``) sets ``SB_BORN|SB_ACTIVE`` and registers the
  per-sb shrinker ``sb-<fstype>`` (``batch`` 1024).
- ``super_cache_count``/``super_cache_scan``: the shrinker. Scan stops at once without
  ``__GFP_FS`` or when ``s_umount`` cannot be read-trylocked, splits ``nr_to_scan`` between
  dentries, inodes and filesystem objects in proportion, and runs ``prune_dcache_sb`` first
  (dentries pin inodes), then ``prune_icache_sb``, then ``->free_cached_objects``. The guards
  cover only this superblock: work cascading to another one (overlay → real fs) runs unguarded.
- Freeze protection: ``sb_start_write``/``sb_start_pagefault``/``sb_start_intwrite`` (lockdep maps
  ``sb_writers``/``sb_pagefaults``/``sb_internal``; sleep while frozen at that level),
  ``freeze_super``/``thaw_super``.
- ``sync_filesystem``, ``generic_shutdown_super`` (unmount), ``kill_super``.

Simplified: no ``s_count``/``s_active`` passive/active superblock references (a superblock lives
until its last mount goes); no memcg/NUMA shrinker awareness; freezing holds no percpu rwsem, the
levels are counters with wait queues.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from reclaimlab.mm.gfp import __GFP_FS
from reclaimlab.mm.shrinker import SHRINK_STOP, Shrinker, register_shrinker, unregister_shrinker
from reclaimlab.sim import (
    down_read_trylock, down_write, lock_map_acquire, lock_map_release, up_read, up_write,
    wait_event, wake_up,
)

from . import dcache, evict_designs, fs_writeback
from . import inode as vfs_inode
from .errors import KernelError, unwinding
from .fs import (
    SB_ACTIVE, SB_BORN, SB_DYING, SB_FREEZE_COMPLETE, SB_FREEZE_FS, SB_FREEZE_PAGEFAULT,
    SB_FREEZE_WRITE, SB_UNFROZEN, FileSystemType, SuperBlock,
)

__all__ = [
    "register_filesystem", "get_fs_type", "alloc_super", "super_setup_born", "super_cache_count",
    "super_cache_scan", "super_trylock_shared", "sb_start_write", "sb_end_write",
    "sb_start_pagefault", "sb_end_pagefault", "sb_start_intwrite", "sb_end_intwrite",
    "freeze_super", "thaw_super", "sync_filesystem", "generic_shutdown_super", "kill_super",
    "vfs_statfs",
]


# ------------------------------------------------------------------ fs/filesystems.c
def register_filesystem(sim: Any, fs_type: FileSystemType) -> None:
    """``register_filesystem``."""
    table = sim.vfs.file_systems
    if fs_type.name in table:
        raise ValueError(f"filesystem type {fs_type.name!r} registered twice")
    table[fs_type.name] = fs_type


def get_fs_type(sim: Any, name: str) -> FileSystemType:
    """``get_fs_type``; ``ENODEV`` if unknown."""
    fs_type = sim.vfs.file_systems.get(name)
    if fs_type is None:
        raise KernelError("ENODEV", f"unknown filesystem type {name!r}")
    return fs_type


# ------------------------------------------------------------------ creation
def alloc_super(sim: Any, fs_type: FileSystemType, bdev: Any = None,
                s_id: str | None = None) -> SuperBlock:
    """``alloc_super``: a new superblock with its writeback state, eviction design and
    passive-ref queue; ``s_id`` is made unique among live superblocks."""
    vfs = sim.vfs
    sb = SuperBlock(sim, fs_type, bdev, s_id)
    taken = {s.s_id for s in vfs.super_blocks}
    if sb.s_id in taken:
        n = 1
        while f"{sb.s_id}-{n}" in taken:
            n += 1
        sb.s_id = f"{sb.s_id}-{n}"
    sb.s_evict_design = evict_designs.resolve_design(vfs.design, fs_type)
    sb.s_evict = evict_designs.PassiveRefQueue(sb)
    sb.s_wb = fs_writeback.bdi_writeback(sb)
    return sb


def super_setup_born(sb: SuperBlock) -> None:
    """End of ``vfs_get_tree``: ``SB_BORN|SB_ACTIVE``, shrinker registered, on ``super_blocks``."""
    sim = sb.s_sim
    sb.s_flags |= SB_BORN | SB_ACTIVE
    sb.s_shrink = Shrinker(f"sb-{sb.s_type.name}", partial(super_cache_count, sb),
                           partial(super_cache_scan, sb), batch=sim.vfs.config.sb_shrinker_batch,
                           private_data=sb)
    register_shrinker(sim, sb.s_shrink)
    sim.vfs.super_blocks.append(sb)


# ------------------------------------------------------------------ the shrinker
def super_trylock_shared(sb: SuperBlock) -> bool:
    """``super_trylock_shared``: read-trylock ``s_umount``; fails if dying or not yet born."""
    if not down_read_trylock(sb.s_umount):
        return False
    if sb.s_root is not None and sb.s_flags & SB_BORN and not sb.s_flags & SB_DYING:
        return True
    up_read(sb.s_umount)
    return False


def vfs_pressure_ratio(sb: SuperBlock, val: int) -> int:
    """``vfs_pressure_ratio``: scale by ``vfs_cache_pressure`` (100 = as is)."""
    return val * sb.s_sim.vfs.config.vfs_cache_pressure // 100


def super_cache_count(sb: SuperBlock, sc: Any) -> int:
    """``super_cache_count``: unused dentries + inodes + fs objects; no lock, no gfp check;
    0 until ``SB_BORN``."""
    if not sb.s_flags & SB_BORN or sb.s_flags & SB_DYING:
        return 0
    total = len(sb.s_dentry_lru) + len(sb.s_inode_lru)
    if sb.s_op.nr_cached_objects:
        total += sb.s_op.nr_cached_objects(sb)
    return vfs_pressure_ratio(sb, total)


def super_cache_scan(sb: SuperBlock, sc: Any):
    """``super_cache_scan``: see the module docstring. Returns freed objects or ``SHRINK_STOP``."""
    if not sc.gfp_mask & __GFP_FS:
        return SHRINK_STOP
    if not super_trylock_shared(sb):
        return SHRINK_STOP
    fs_objects = sb.s_op.nr_cached_objects(sb) if sb.s_op.nr_cached_objects else 0
    inodes = len(sb.s_inode_lru)
    dentries = len(sb.s_dentry_lru)
    total = dentries + inodes + fs_objects + 1
    nr = sc.nr_to_scan
    dentries = nr * dentries // total
    inodes = nr * inodes // total
    fs_objects = nr * fs_objects // total
    freed = yield from dcache.prune_dcache_sb(sb, dentries + 1)
    freed += yield from vfs_inode.prune_icache_sb(sb, inodes + 1)
    if fs_objects:
        freed += yield from sb.s_op.free_cached_objects(sb, fs_objects)
    up_read(sb.s_umount)
    return freed


# ------------------------------------------------------------------ freeze protection
def __sb_start_write(sb: SuperBlock, level: int):
    """``__sb_start_write``: lockdep read-acquire of the level's map; sleep while frozen at or
    above ``level``; count a writer."""
    w = sb.s_writers
    lock_map_acquire(w.lock_map[level - 1], read=True)
    if w.frozen >= level:
        yield from wait_event(w.wait_unfrozen, lambda: w.frozen < level)
    w.count[level - 1] += 1


def __sb_end_write(sb: SuperBlock, level: int) -> None:
    """``__sb_end_write``."""
    w = sb.s_writers
    w.count[level - 1] -= 1
    if w.frozen:
        wake_up(w.wait_drained)
    lock_map_release(w.lock_map[level - 1])


def sb_start_write(sb: SuperBlock):
    """``sb_start_write`` (``mnt_want_write``): file-modifying syscalls."""
    yield from __sb_start_write(sb, SB_FREEZE_WRITE)


def sb_end_write(sb: SuperBlock) -> None:
    __sb_end_write(sb, SB_FREEZE_WRITE)


def sb_start_pagefault(sb: SuperBlock):
    yield from __sb_start_write(sb, SB_FREEZE_PAGEFAULT)


def sb_end_pagefault(sb: SuperBlock) -> None:
    __sb_end_write(sb, SB_FREEZE_PAGEFAULT)


def sb_start_intwrite(sb: SuperBlock):
    """``sb_start_intwrite``: filesystem-internal modifications (ext4 eviction, transactions)."""
    yield from __sb_start_write(sb, SB_FREEZE_FS)


def sb_end_intwrite(sb: SuperBlock) -> None:
    __sb_end_write(sb, SB_FREEZE_FS)


def sb_wait_write(sb: SuperBlock, level: int):
    """``sb_wait_write``: block new writers at ``level`` and wait for the current ones."""
    w = sb.s_writers
    w.frozen = level
    yield from wait_event(w.wait_drained, lambda: w.count[level - 1] == 0)


def freeze_super(sb: SuperBlock):
    """``freeze_super``: under ``s_umount``: stop writers, sync, stop page faults, stop
    internal writers, ``->freeze_fs``. ``EBUSY`` if already frozen."""
    yield from down_write(sb.s_umount)
    try:
        if sb.s_writers.frozen != SB_UNFROZEN:
            raise KernelError("EBUSY", f"{sb!r} already frozen")
        yield from sb_wait_write(sb, SB_FREEZE_WRITE)
        yield from sync_filesystem(sb)
        yield from sb_wait_write(sb, SB_FREEZE_PAGEFAULT)
        yield from sb_wait_write(sb, SB_FREEZE_FS)
        if sb.s_op.freeze_fs:
            yield from sb.s_op.freeze_fs(sb)
        sb.s_writers.frozen = SB_FREEZE_COMPLETE
    finally:
        if not unwinding():
            up_write(sb.s_umount)


def thaw_super(sb: SuperBlock):
    """``thaw_super``: ``->unfreeze_fs``, unfreeze, wake blocked writers. ``EINVAL`` if not
    frozen."""
    yield from down_write(sb.s_umount)
    try:
        if sb.s_writers.frozen != SB_FREEZE_COMPLETE:
            raise KernelError("EINVAL", f"{sb!r} not frozen")
        if sb.s_op.unfreeze_fs:
            yield from sb.s_op.unfreeze_fs(sb)
        sb.s_writers.frozen = SB_UNFROZEN
        wake_up(sb.s_writers.wait_unfrozen)
    finally:
        if not unwinding():
            up_write(sb.s_umount)


# ------------------------------------------------------------------ sync, statfs, unmount
def sync_filesystem(sb: SuperBlock):
    """``sync_filesystem``: finish deferred evictions (passive-ref), then ``writeback_inodes_sb``
    + ``->sync_fs(0)`` + ``sync_inodes_sb`` + ``->sync_fs(1)``."""
    yield from evict_designs.evict_deferred_flush(sb)
    yield from fs_writeback.writeback_inodes_sb(sb)
    if sb.s_op.sync_fs:
        yield from sb.s_op.sync_fs(sb, 0)
    yield from fs_writeback.sync_inodes_sb(sb)
    if sb.s_op.sync_fs:
        yield from sb.s_op.sync_fs(sb, 1)


def vfs_statfs(sb: SuperBlock) -> dict:
    """``vfs_statfs``: ``->statfs`` (``f_blocks``, ``f_bfree``, ``f_files``, ``f_ffree``…)."""
    if not sb.s_op.statfs:
        raise KernelError("ENOSYS", f"{sb!r} has no statfs")
    return sb.s_op.statfs(sb)


def generic_shutdown_super(sb: SuperBlock):
    """``generic_shutdown_super`` (caller holds ``s_umount`` for write): kill the dcache, sync,
    clear ``SB_ACTIVE``, ``evict_inodes``, flush deferred evictions, ``->put_super``; inodes left
    are "Busy inodes after unmount" (a violation). Then the shrinker goes."""
    sim = sb.s_sim
    if sb.s_root is not None:
        yield from dcache.shrink_dcache_for_umount(sb)
        yield from sync_filesystem(sb)
        sb.s_flags &= ~SB_ACTIVE
        yield from vfs_inode.evict_inodes(sb)
        yield from evict_designs.evict_deferred_flush(sb)
        if sb.s_op.put_super:
            yield from sb.s_op.put_super(sb)
        if sb.s_inodes:
            sim.vfs.violation(f"VFS: Busy inodes after unmount of {sb.s_id} "
                              f"({len(sb.s_inodes)} left): {list(sb.s_inodes)[:3]!r}")
    sb.s_flags |= SB_DYING
    sb.s_flags &= ~SB_BORN
    if sb.s_shrink is not None:
        unregister_shrinker(sim, sb.s_shrink)
    fs_writeback.bdi_unregister(sb)
    if sb in sim.vfs.super_blocks:
        sim.vfs.super_blocks.remove(sb)


def kill_super(sb: SuperBlock):
    """``deactivate_locked_super`` → ``kill_sb``: take ``s_umount`` for write (waiting out any
    shrinker holding it shared) and shut the superblock down."""
    yield from down_write(sb.s_umount)
    try:
        yield from generic_shutdown_super(sb)
    finally:
        if not unwinding():
            up_write(sb.s_umount)

