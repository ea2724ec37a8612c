"""ext4's superblock: mount (``ext4_fill_super`` on a freshly made filesystem), the operation
tables, ``sync_fs``, ``statfs``, freeze/thaw and ``put_super`` (``fs/ext4/super.c``).

Mounting lays out the groups (``mke2fs`` geometry: 8 × block size blocks per group, one inode
per 16 KiB, 256-byte inodes), places the internal journal after group 0's inode table, starts
jbd2, reads the group descriptors and the superblock block, creates the root directory, the
buddy cache (``s_buddy_cache``) and, for the inodegc design, the inodegc machinery.

Simplified: no backup superblocks or reserved GDT blocks, no flex_bg, the filesystem starts
empty at every mount (no orphan replay).
"""

from __future__ import annotations

from typing import Any

from reclaimlab.fs import buffer
from reclaimlab.fs.ext4 import inode as ext4i
from reclaimlab.fs.ext4 import mballoc, namei, xattr
from reclaimlab.fs.ext4.fsync import ext4_sync_file
from reclaimlab.fs.ext4.ext4 import (
    EXT4_ROOT_INO, EXT4_SB, Ext4Config, ext4_disk_inode, ext4_inode_info, ext4_sb_info,
)
from reclaimlab.fs.inodegc import (
    Inodegc, inodegc_config, xfs_inodegc_flush, xfs_inodegc_push, xfs_inodegc_start,
    xfs_inodegc_stop,
)
from reclaimlab.fs.journal import (
    JournalConfig, jbd2_journal_destroy, jbd2_journal_flush, jbd2_journal_force_commit, journal_t,
)
from reclaimlab.mm import filemap
from reclaimlab.mm.shrinker import unregister_shrinker
from reclaimlab.mm.slab import kmem_cache_create
from reclaimlab.vfs import dcache, fs_writeback
from reclaimlab.vfs.fs import (
    I_DIRTY_PAGES, S_IFDIR, S_ISDIR, AddressSpaceOperations, FileOperations,
    FileSystemType, InodeOperations, SuperOperations,
)
from reclaimlab.vfs.errors import KernelError
from reclaimlab.vfs.super import alloc_super

EXT4_INODE_INFO_SIZE = 1096           # sizeof(struct ext4_inode_info) on x86-64, 6.12


class Ext4DirInodeOperations(InodeOperations):
    """``ext4_dir_inode_operations``."""

    lookup = staticmethod(namei.ext4_lookup)
    create = staticmethod(namei.ext4_create)
    mkdir = staticmethod(namei.ext4_mkdir)
    unlink = staticmethod(namei.ext4_unlink)
    rmdir = staticmethod(namei.ext4_rmdir)
    rename = staticmethod(namei.ext4_rename)
    setxattr = staticmethod(xattr.ext4_xattr_set)
    getxattr = staticmethod(xattr.ext4_xattr_get)


class Ext4FileInodeOperations(InodeOperations):
    """``ext4_file_inode_operations``."""

    setxattr = staticmethod(xattr.ext4_xattr_set)
    getxattr = staticmethod(xattr.ext4_xattr_get)


class Ext4FileOperations(FileOperations):
    """``ext4_file_operations``: generic read/write; ``fsync`` waits for the inode's commit;
    ``release`` discards preallocations."""

    fsync = staticmethod(ext4_sync_file)
    release = staticmethod(ext4i.ext4_release_file)


class Ext4Aops(AddressSpaceOperations):
    """``ext4_da_aops``: delayed allocation."""

    write_begin = staticmethod(ext4i.ext4_da_write_begin)
    writepages = staticmethod(ext4i.ext4_writepages)

    @staticmethod
    def dirty_folio(folio: Any) -> None:
        """``ext4_dirty_folio`` → ``__mark_inode_dirty(I_DIRTY_PAGES)``."""
        fs_writeback.inode_set_dirty(folio.mapping.host, I_DIRTY_PAGES)


EXT4_DIR_IOPS = Ext4DirInodeOperations()
EXT4_FILE_IOPS = Ext4FileInodeOperations()
EXT4_FOPS = Ext4FileOperations()
EXT4_AOPS = Ext4Aops()


def ext4_set_ops(inode: ext4_inode_info) -> None:
    """``ext4_set_inode_ops`` / ``ext4_set_aops``."""
    if S_ISDIR(inode.i_mode):
        inode.i_op = EXT4_DIR_IOPS
    else:
        inode.i_op = EXT4_FILE_IOPS
        inode.i_fop = EXT4_FOPS
        inode.i_aops = EXT4_AOPS


# ------------------------------------------------------------------ mount
class Ext4FsType(FileSystemType):
    """``ext4_fs_type``."""

    name = "ext4"
    native_design = "sync"
    requires_dev = True

    def mount(self, sim: Any, dev: Any, opts: dict):
        return (yield from ext4_fill_super(sim, self, dev, opts))


def ext4_layout_groups(sbi: ext4_sb_info) -> None:
    """The group table: metadata locations and free extents of every group."""
    bpg = sbi.s_blocks_per_group
    for g in range(sbi.s_groups_count):
        first = g * bpg
        nblocks = min(bpg, sbi.s_blocks_count - first)
        meta_start = 1 + sbi.s_gdb_count if g == 0 else 0
        grp = mballoc.ext4_group_info(g, first, nblocks, meta_start, sbi.s_itb_per_group,
                                      sbi.s_inodes_per_group)
        sbi.s_groups.append(grp)
        sbi.s_freeinodes += grp.free_inodes
    if sbi.s_groups[-1].free_extents == [] and sbi.s_groups_count > 1:
        raise ValueError("ext4: the last block group has no room for data")
    # reserved inodes 1..EXT4_FIRST_INO-1 (root is 2)
    g0 = sbi.s_groups[0]
    for i in range(min(10, sbi.s_inodes_per_group)):
        g0.inodes[i] = 1
        g0.free_inodes -= 1
        sbi.s_freeinodes -= 1


def ext4_reserve_journal(sbi: ext4_sb_info, nblocks: int) -> int:
    """mke2fs's allocation of the internal journal (``ext4_create_journal``) and of the root
    directory's block: the first free run that fits."""
    for grp in sbi.s_groups:
        if grp.free_extents and grp.free_extents[0][1] >= nblocks:
            start = grp.free_extents[0][0]
            mballoc.mb_mark_used(grp, start, nblocks)
            return start
    raise ValueError(f"ext4: no contiguous room for a {nblocks}-block journal on "
                     f"{sbi.s_blocks_count} blocks (device too small for journal_mb)")


def ext4_inode_cachep(sim: Any) -> Any:
    """``ext4_inode_cachep``, created by the first mount (``init_inodecache``)."""
    cache = sim.__dict__.get("ext4_inode_cachep")
    if cache is None:
        cache = sim.ext4_inode_cachep = kmem_cache_create(sim, "ext4_inode_cache",
                                                          EXT4_INODE_INFO_SIZE)
    return cache


def ext4_fill_super(sim: Any, fs_type: Ext4FsType, dev: Any, opts: dict):
    """``ext4_fill_super``: geometry, journal, root inode, buddy cache, inodegc."""
    if dev is None:
        raise ValueError("ext4: mount needs a block device")
    config = Ext4Config.from_options(opts)
    bdev = buffer.set_blocksize(sim, dev, config.block_size)
    sbi = ext4_sb_info(sim, bdev, config)
    if sbi.s_blocks_count < 4 * config.journal_blocks // 3:
        raise ValueError(f"ext4: device {dev.name} ({sbi.s_blocks_count} blocks of "
                         f"{config.block_size}) is too small for a {config.journal_mb} MiB journal")
    ext4_layout_groups(sbi)
    sbi.s_journal_first = ext4_reserve_journal(sbi, config.journal_blocks)
    root_disk = ext4_disk_inode(S_IFDIR | 0o755, sbi.s_want_extra_isize)
    root_disk.dir = {}
    root_disk.nlink = 2
    root_disk.extents.append([0, ext4_reserve_journal(sbi, 1), 1])   # the root's first block
    root_disk.size = config.block_size
    sbi.s_disk[EXT4_ROOT_INO] = root_disk
    sbi.s_freeclusters = sum(g.bb_free for g in sbi.s_groups)
    sb = alloc_super(sim, fs_type, dev)
    sb.s_fs_info = sbi
    sbi.s_sb = sb
    sb.s_op = EXT4_SOPS
    sb.s_blocksize = config.block_size
    sb.s_min_folio_order = bdev.folio_order
    sbi.s_inode_cachep = ext4_inode_cachep(sim)
    sbi.s_buddy_cache = filemap.address_space(sim, sbi, min_order=bdev.folio_order)
    sbi.s_journal = journal_t(sim, sb.s_id, bdev, sbi.s_journal_first,
                              JournalConfig(config.journal_blocks, config.commit_interval_ns))
    if sb.s_evict_design == "inodegc":
        sbi.s_inodegc = Inodegc(sim, sb.s_id, ext4i.ext4_inodegc_inactivate,
                                lambda: ext4_low_space(sbi), inodegc_config(sim, opts))
    for g in range(sbi.s_groups_count):
        bh = yield from mballoc.ext4_get_group_desc(sbi, g)
        buffer.brelse(bh)
    sbi.s_groups[0].used_dirs += 1
    root = yield from ext4i.ext4_iget(sb, EXT4_ROOT_INO)
    sb.s_root = yield from dcache.d_make_root(root)
    return sb


def ext4_low_space(sbi: ext4_sb_info) -> bool:
    """Free space below 5% (``xfs_inodegc_want_queue_work``'s low-space reason)."""
    pct = sbi.s_inodegc.config.low_space_pct if sbi.s_inodegc is not None else 5
    return sbi.s_freeclusters * 100 < sbi.s_blocks_count * pct


# ------------------------------------------------------------------ super_operations
def ext4_dirty_inode(inode: ext4_inode_info, flags: int):
    """``ext4_dirty_inode``: a 2-credit handle around ``ext4_mark_inode_dirty``; nothing if no
    handle can be started (read-only after an error), as the kernel."""
    try:
        handle = yield from ext4i.ext4_journal_start_sb(inode.i_sb, 2)
    except KernelError:
        return
    try:
        yield from ext4i.ext4_mark_inode_dirty(handle, inode)
    finally:
        yield from ext4i.ext4_journal_stop(handle)


def ext4_write_inode(inode: ext4_inode_info, wbc: Any):
    """``ext4_write_inode``: with a journal the inode is already logged; a data-integrity
    writeback (``WB_SYNC_ALL``) forces a commit."""
    if getattr(wbc, "sync_mode", None) in ("all", 1):
        yield from jbd2_journal_force_commit(EXT4_SB(inode.i_sb).s_journal)


def ext4_sync_fs(sb: Any, wait: int):
    """``ext4_sync_fs``: flush deferred inactivation (inodegc: sync waits for it; a freeze stops
    it), commit the running transaction and, when waiting, write the checkpointed metadata."""
    sbi = EXT4_SB(sb)
    gc = sbi.s_inodegc
    if gc is not None:
        if sb.s_writers.frozen:
            yield from xfs_inodegc_stop(gc)
        elif wait:
            yield from xfs_inodegc_flush(gc)
    yield from jbd2_journal_force_commit(sbi.s_journal)
    if wait:
        yield from buffer.sync_blockdev(sbi.s_bdev)


def ext4_statfs(sb: Any) -> dict:
    """``ext4_statfs``: free blocks exclude delalloc reservations; inodegc work is pushed."""
    sbi = EXT4_SB(sb)
    if sbi.s_inodegc is not None:
        xfs_inodegc_push(sbi.s_inodegc)
    return {"f_bsize": sbi.s_blocksize, "f_blocks": sbi.s_blocks_count,
            "f_bfree": sbi.s_freeclusters - sbi.s_dirtyclusters,
            "f_files": sbi.s_groups_count * sbi.s_inodes_per_group,
            "f_ffree": sbi.s_freeinodes}


def ext4_freeze(sb: Any):
    """``ext4_freeze``: commit and checkpoint (``jbd2_journal_flush``)."""
    sbi = EXT4_SB(sb)
    if sbi.s_inodegc is not None:
        yield from xfs_inodegc_stop(sbi.s_inodegc)
    yield from jbd2_journal_flush(sbi.s_journal)


def ext4_unfreeze(sb: Any):
    """``ext4_unfreeze``: restart inodegc."""
    sbi = EXT4_SB(sb)
    if sbi.s_inodegc is not None:
        xfs_inodegc_start(sbi.s_inodegc)
    yield from ()


def ext4_put_super(sb: Any):
    """``ext4_put_super``: drain inodegc, destroy the journal (commit + checkpoint), write and
    drop the buffer cache and the buddy cache."""
    sbi = EXT4_SB(sb)
    if sbi.s_inodegc is not None:
        yield from xfs_inodegc_stop(sbi.s_inodegc)
        if sbi.s_inodegc.shrinker is not None:
            unregister_shrinker(sb.s_sim, sbi.s_inodegc.shrinker)
    yield from jbd2_journal_destroy(sbi.s_journal)
    yield from buffer.sync_blockdev(sbi.s_bdev)
    mballoc.ext4_mb_release_group_pas(sbi)
    filemap.invalidate_mapping_pages(sbi.s_buddy_cache)
    buffer.invalidate_bdev(sbi.s_bdev)


def ext4_check_invariants(sb: Any) -> list[str]:
    """Simulator check: free counters agree with the groups; no preallocation left behind."""
    sbi = EXT4_SB(sb)
    out = []
    bb = sum(g.bb_free for g in sbi.s_groups)
    if bb > sbi.s_freeclusters:
        out.append(f"{sb!r}: buddy free {bb} exceeds on-disk free {sbi.s_freeclusters}")
    fi = sum(g.free_inodes for g in sbi.s_groups)
    if fi != sbi.s_freeinodes:
        out.append(f"{sb!r}: group free inodes {fi} != counter {sbi.s_freeinodes}")
    return out


class Ext4SuperOperations(SuperOperations):
    """``ext4_sops``."""

    alloc_inode = staticmethod(ext4i.ext4_alloc_inode)
    destroy_inode = staticmethod(ext4i.ext4_destroy_inode)
    free_inode = staticmethod(ext4i.ext4_free_in_core_inode)
    evict_inode = staticmethod(ext4i.ext4_evict_inode)
    dirty_inode = staticmethod(ext4_dirty_inode)
    write_inode = staticmethod(ext4_write_inode)
    sync_fs = staticmethod(ext4_sync_fs)
    statfs = staticmethod(ext4_statfs)
    put_super = staticmethod(ext4_put_super)
    freeze_fs = staticmethod(ext4_freeze)
    unfreeze_fs = staticmethod(ext4_unfreeze)
    inactive = staticmethod(ext4i.ext4_inactive)
    needs_inactive = staticmethod(ext4i.ext4_inode_needs_inactive)


EXT4_SOPS = Ext4SuperOperations()

__all__ = ["Ext4FsType", "ext4_fill_super", "ext4_check_invariants", "EXT4_SOPS"]
