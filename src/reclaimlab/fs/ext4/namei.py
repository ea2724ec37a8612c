"""ext4 directory operations (``fs/ext4/namei.c``): lookup, create, mkdir, unlink, rmdir, rename.

A directory's entries live in its ``ext4_disk_inode.dir`` (name → (ino, directory block index));
every operation reads the directory block holding the entry through the buffer cache
(``ext4_bread`` → ``sb_getblk``, NOFAIL) and journals the blocks it changes. A directory grows a
block (``ext4_append``) every ``s_dir_entries_per_block`` entries.

Simplified: no htree index blocks (one leaf read per lookup), entries are never compacted, a
negative lookup reads the directory's last block.
"""

from __future__ import annotations

from typing import Any

from reclaimlab.fs import buffer
from reclaimlab.fs.ext4 import mballoc
from reclaimlab.fs.ext4.ext4 import (
    EXT4_DIROP, EXT4_DIROP_CREDITS, EXT4_SB, ext4_handle_dirty_metadata, ext4_inode_info,
    ext4_journal_start_sb, ext4_journal_stop,
)
from reclaimlab.fs.ext4.inode import (
    ext4_ext_insert, ext4_iget, ext4_map_lookup, ext4_mark_inode_dirty, ext4_new_inode,
    ext4_orphan_add,
)
from reclaimlab.vfs import dcache
from reclaimlab.vfs import inode as vfs_inode
from reclaimlab.vfs.errors import KernelError
from reclaimlab.vfs.fs import S_IFDIR, S_IFREG, S_ISDIR


def ext4_bread_dir(dir: ext4_inode_info, blkidx: int):
    """``ext4_bread``: directory block ``blkidx`` read through the buffer cache."""
    sbi = EXT4_SB(dir.i_sb)
    pblk = ext4_map_lookup(dir.i_disk, blkidx)
    if pblk is None:
        return None
    bh = yield from buffer.sb_bread(sbi.s_bdev, pblk)
    if bh is None:
        raise KernelError("EIO", f"reading directory block {blkidx} of {dir!r}")
    return bh


def _dir_blocks(dir: ext4_inode_info) -> int:
    return sum(e[2] for e in dir.i_disk.extents)


def ext4_find_entry(dir: ext4_inode_info, name: str):
    """``ext4_find_entry``: (ino, block index, buffer) of ``name``, ino None if absent."""
    yield EXT4_DIROP
    entry = dir.i_disk.dir.get(name)
    blkidx = entry[1] if entry is not None else _dir_blocks(dir) - 1
    bh = (yield from ext4_bread_dir(dir, blkidx)) if blkidx >= 0 else None
    return (entry[0] if entry is not None else None), blkidx, bh


def ext4_lookup(dir: ext4_inode_info, dentry: Any):
    """``ext4_lookup``: find the entry, ``ext4_iget`` its inode, ``d_add`` (negative if absent)."""
    ino, _, bh = yield from ext4_find_entry(dir, dentry.d_name)
    buffer.brelse(bh)
    inode = None
    if ino is not None:
        inode = yield from ext4_iget(dir.i_sb, ino)
    dcache.d_add(dentry, inode)
    return None


def ext4_add_entry(handle: Any, dir: ext4_inode_info, name: str, ino: int):
    """``ext4_add_entry``: insert into the last block, appending a block when it is full."""
    sbi = EXT4_SB(dir.i_sb)
    d = dir.i_disk.dir
    yield EXT4_DIROP
    blkidx = len(d) // sbi.s_dir_entries_per_block
    if blkidx >= _dir_blocks(dir):
        yield from ext4_append(handle, dir)
    bh = yield from ext4_bread_dir(dir, blkidx)
    yield from ext4_handle_dirty_metadata(handle, bh)
    buffer.brelse(bh)
    d[name] = (ino, blkidx)


def ext4_append(handle: Any, dir: ext4_inode_info):
    """``ext4_append``: a new directory block (a metadata allocation, initialised in memory)."""
    sbi = EXT4_SB(dir.i_sb)
    pblk = yield from mballoc.ext4_mb_alloc_meta_block(handle, sbi, dir.i_block_group)
    if pblk is None:
        raise KernelError("ENOSPC", f"no block to grow {dir!r}")
    ext4_ext_insert(dir, _dir_blocks(dir), pblk)
    bh = yield from buffer.sb_getblk(sbi.s_bdev, pblk)
    buffer.set_buffer_uptodate(bh)
    yield from ext4_handle_dirty_metadata(handle, bh)
    buffer.brelse(bh)
    dir.i_size = _dir_blocks(dir) * sbi.s_blocksize
    yield from ext4_mark_inode_dirty(handle, dir)


def ext4_delete_entry(handle: Any, dir: ext4_inode_info, name: str, bh: Any):
    """``ext4_delete_entry``: clear the entry in its (already read) block."""
    yield from ext4_handle_dirty_metadata(handle, bh)
    del dir.i_disk.dir[name]


def _ext4_create(dir: ext4_inode_info, dentry: Any, mode: int):
    sb = dir.i_sb
    handle = yield from ext4_journal_start_sb(sb, EXT4_DIROP_CREDITS)
    try:
        inode = yield from ext4_new_inode(handle, dir, mode)
        if S_ISDIR(mode):
            yield from ext4_append(handle, inode)
            vfs_inode.inc_nlink(dir)
        yield from ext4_add_entry(handle, dir, dentry.d_name, inode.i_ino)
        yield from ext4_mark_inode_dirty(handle, dir)
    finally:
        yield from ext4_journal_stop(handle)
    dcache.d_instantiate(dentry, inode)
    vfs_inode.unlock_new_inode(inode)


def ext4_create(dir: ext4_inode_info, dentry: Any, mode: int):
    """``ext4_create``: a new regular file."""
    yield from _ext4_create(dir, dentry, S_IFREG | (mode & 0o7777))


def ext4_mkdir(dir: ext4_inode_info, dentry: Any, mode: int):
    """``ext4_mkdir``: a new directory with its first block (``ext4_init_new_dir``)."""
    yield from _ext4_create(dir, dentry, S_IFDIR | (mode & 0o7777))


def ext4_unlink(dir: ext4_inode_info, dentry: Any):
    """``ext4_unlink`` (``__ext4_unlink``): remove the entry, drop the link; the last link puts
    the inode on the orphan list (it is freed by the final ``iput``'s eviction)."""
    inode = dentry.d_inode
    handle = yield from ext4_journal_start_sb(dir.i_sb, EXT4_DIROP_CREDITS)
    try:
        ino, _, bh = yield from ext4_find_entry(dir, dentry.d_name)
        if ino != inode.i_ino:
            buffer.brelse(bh)
            raise KernelError("ENOENT", dentry.d_name)
        yield from ext4_delete_entry(handle, dir, dentry.d_name, bh)
        buffer.brelse(bh)
        yield from ext4_mark_inode_dirty(handle, dir)
        vfs_inode.drop_nlink(inode)
        if inode.i_nlink == 0:
            yield from ext4_orphan_add(handle, inode)
        yield from ext4_mark_inode_dirty(handle, inode)
    finally:
        yield from ext4_journal_stop(handle)


def ext4_rmdir(dir: ext4_inode_info, dentry: Any):
    """``ext4_rmdir``: an empty directory loses its entry and both links."""
    inode = dentry.d_inode
    if inode.i_disk.dir:
        raise KernelError("ENOTEMPTY", dentry.d_name)
    handle = yield from ext4_journal_start_sb(dir.i_sb, EXT4_DIROP_CREDITS)
    try:
        _, _, bh = yield from ext4_find_entry(dir, dentry.d_name)
        yield from ext4_delete_entry(handle, dir, dentry.d_name, bh)
        buffer.brelse(bh)
        vfs_inode.clear_nlink(inode)
        yield from ext4_orphan_add(handle, inode)
        yield from ext4_mark_inode_dirty(handle, inode)
        vfs_inode.drop_nlink(dir)
        yield from ext4_mark_inode_dirty(handle, dir)
    finally:
        yield from ext4_journal_stop(handle)


def ext4_rename(old_dir: ext4_inode_info, old_dentry: Any, new_dir: ext4_inode_info,
                new_dentry: Any):
    """``ext4_rename``: move the entry; an existing target file loses its link (orphan if last)."""
    inode = old_dentry.d_inode
    target = new_dentry.d_inode
    if target is not None and S_ISDIR(target.i_mode) and target.i_disk.dir:
        raise KernelError("ENOTEMPTY", new_dentry.d_name)
    handle = yield from ext4_journal_start_sb(old_dir.i_sb, 2 * EXT4_DIROP_CREDITS)
    try:
        _, _, bh = yield from ext4_find_entry(old_dir, old_dentry.d_name)
        yield from ext4_delete_entry(handle, old_dir, old_dentry.d_name, bh)
        buffer.brelse(bh)
        if target is not None:
            _, _, tbh = yield from ext4_find_entry(new_dir, new_dentry.d_name)
            yield from ext4_delete_entry(handle, new_dir, new_dentry.d_name, tbh)
            buffer.brelse(tbh)
            if S_ISDIR(target.i_mode):
                vfs_inode.clear_nlink(target)
                vfs_inode.drop_nlink(new_dir)
            else:
                vfs_inode.drop_nlink(target)
            if target.i_nlink == 0:
                yield from ext4_orphan_add(handle, target)
            yield from ext4_mark_inode_dirty(handle, target)
        yield from ext4_add_entry(handle, new_dir, new_dentry.d_name, inode.i_ino)
        if S_ISDIR(inode.i_mode) and old_dir is not new_dir:
            vfs_inode.drop_nlink(old_dir)
            vfs_inode.inc_nlink(new_dir)
        for d in (old_dir, new_dir) if old_dir is not new_dir else (old_dir,):
            yield from ext4_mark_inode_dirty(handle, d)
    finally:
        yield from ext4_journal_stop(handle)
