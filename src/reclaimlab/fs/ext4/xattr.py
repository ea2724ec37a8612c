"""ext4 extended attributes and ``xattr_sem`` (``fs/ext4/xattr.c``, ``fs/ext4/inode.c``).

The locking that lockdep sees in syzbot's D1 report (``fs_reclaim --> jbd2_handle -->
&ei->xattr_sem``):

- ``ext4_xattr_set``: ``ext4_journal_start`` then ``ext4_xattr_set_handle``, which takes
  ``xattr_sem`` for write *inside* the handle (edge ``jbd2_handle --> &ei->xattr_sem``);
- a value too large for the inode body or an xattr block goes to an EA inode; looking such a
  value up allocates a buffer for it with ``GFP_KERNEL`` (``ext4_xattr_inode_cache_find``'s
  ``kvmalloc``) while ``xattr_sem`` is held. Inside a handle jbd2's NOFS scope strips ``__GFP_FS``;
  ``ext4_xattr_get`` does the same lookup under ``xattr_sem`` taken for read *without* a handle,
  and there the allocation enters ``fs_reclaim`` (edge ``&ei->xattr_sem --> fs_reclaim``);
- inode dirtying that expands ``i_extra_isize`` (``ext4_try_to_expand_extra_isize``) takes
  ``xattr_sem`` only by trylock under the handle, then ``ext4_expand_extra_isize_ea`` allocates
  with ``GFP_KERNEL`` (NOFS-scoped by the handle) to move in-inode attributes out;
- eviction from kswapd holds ``fs_reclaim`` and starts a handle (edge ``fs_reclaim -->
  jbd2_handle``). The three edges close the cycle lockdep reports.

Simplified: values are sizes, not bytes; an attribute lives in the inode body while it fits,
else in one xattr block, else (larger than a block) in an EA inode, whose own inode is not modelled.
"""

from __future__ import annotations

from typing import Any

from reclaimlab.fs import buffer
from reclaimlab.fs.ext4 import mballoc
from reclaimlab.fs.ext4.ext4 import (
    EXT4_GOOD_OLD_INODE_SIZE, EXT4_SB, EXT4_STATE_NO_EXPAND, EXT4_XATTR_TRANS_BLOCKS,
    ext4_inode_info, ext4_journal_start_sb, ext4_journal_stop, ext4_xattr_sem,
)
from reclaimlab.mm.gfp import GFP_KERNEL
from reclaimlab.mm.slab import kmem_cache_alloc, kmem_cache_create, kmem_cache_free
from reclaimlab.sim import Run, down_read, down_write, down_write_trylock, up_read, up_write
from reclaimlab.vfs.errors import KernelError

XATTR_ENTRY_OVERHEAD = 16              # struct ext4_xattr_entry + name, rounded
EXT4_XATTR_NS = 1_200                  # search/insert in the inode body or xattr block


def _kvmalloc_cache(sim: Any, size: int) -> Any:
    """A ``kmalloc-N`` cache standing for ``kvmalloc(size)`` (rounded to a power of two)."""
    n = 64
    while n < size:
        n <<= 1
    caches = sim.__dict__.setdefault("ext4_kvmalloc_caches", {})
    if n not in caches:
        caches[n] = kmem_cache_create(sim, f"kmalloc-{n}", n)
    return caches[n]


def _in_inode_space(inode: ext4_inode_info) -> int:
    sbi = EXT4_SB(inode.i_sb)
    return sbi.s_inode_size - EXT4_GOOD_OLD_INODE_SIZE - inode.i_disk.extra_isize


def _xattr_bytes(xattrs: dict[str, int]) -> int:
    return sum(XATTR_ENTRY_OVERHEAD + len(n) + s for n, s in xattrs.items())


def ext4_xattr_inode_cache_find(inode: ext4_inode_info, size: int):
    """``ext4_xattr_inode_cache_find``: look for an EA inode holding the same value, comparing
    through a ``kvmalloc(value_len, GFP_KERNEL)`` copy (freed at once)."""
    cache = _kvmalloc_cache(inode.i_sb.s_sim, min(size, 1 << 22))
    obj = yield from kmem_cache_alloc(cache, GFP_KERNEL)
    yield Run(EXT4_XATTR_NS)
    if obj is not None:
        kmem_cache_free(cache, obj)


def ext4_xattr_set(dentry: Any, name: str, size: int):
    """``ext4_xattr_set``: a handle, then ``ext4_xattr_set_handle`` under ``xattr_sem``."""
    inode = dentry.d_inode
    if size < 0:
        raise KernelError("EINVAL", f"xattr size {size}")
    handle = yield from ext4_journal_start_sb(inode.i_sb, EXT4_XATTR_TRANS_BLOCKS + 2)
    try:
        yield from ext4_xattr_set_handle(handle, inode, name, size)
    finally:
        yield from ext4_journal_stop(handle)


def ext4_xattr_set_handle(handle: Any, inode: ext4_inode_info, name: str, size: int):
    """``ext4_xattr_set_handle``: ``down_write(xattr_sem)``; store in the body, an xattr block or
    an EA inode; journal the inode (and block)."""
    from reclaimlab.fs.ext4.inode import ext4_mark_inode_dirty

    sbi = EXT4_SB(inode.i_sb)
    sem = ext4_xattr_sem(inode)
    yield from down_write(sem)
    try:
        yield Run(EXT4_XATTR_NS)
        disk = inode.i_disk
        if disk.xattrs is None:
            disk.xattrs = {}
        if size > sbi.s_blocksize - 32:
            yield from ext4_xattr_inode_cache_find(inode, size)
        disk.xattrs[name] = size
        if _xattr_bytes(disk.xattrs) > _in_inode_space(inode):
            yield from ext4_xattr_block_set(handle, inode)
        yield from ext4_mark_inode_dirty(handle, inode)
    finally:
        up_write(sem)


def ext4_xattr_block_set(handle: Any, inode: ext4_inode_info):
    """``ext4_xattr_block_set``: the inode's attribute block, allocated on first use (a
    metadata block), read through the buffer cache (NOFAIL getblk) and journalled."""
    from reclaimlab.fs.ext4.ext4 import ext4_handle_dirty_metadata

    sbi = EXT4_SB(inode.i_sb)
    disk = inode.i_disk
    if disk.xattr_block is None:
        pblk = yield from mballoc.ext4_mb_alloc_meta_block(handle, sbi, inode.i_block_group)
        if pblk is None:
            raise KernelError("ENOSPC", f"no block for the xattrs of {inode!r}")
        disk.xattr_block = pblk
        inode.i_blocks += sbi.s_blocksize // 512
        bh = yield from buffer.sb_getblk(sbi.s_bdev, pblk)
        buffer.set_buffer_uptodate(bh)
    else:
        bh = yield from buffer.sb_bread(sbi.s_bdev, disk.xattr_block)
        if bh is None:
            raise KernelError("EIO", f"reading the xattr block of {inode!r}")
    yield from ext4_handle_dirty_metadata(handle, bh)
    buffer.brelse(bh)


def ext4_xattr_delete_inode(handle: Any, inode: ext4_inode_info):
    """``ext4_xattr_delete_inode``: free the attribute block of an inode being deleted."""
    sbi = EXT4_SB(inode.i_sb)
    disk = inode.i_disk
    if disk.xattr_block is not None:
        yield from mballoc.ext4_free_blocks(handle, sbi, disk.xattr_block, 1, metadata=True)
        inode.i_blocks -= sbi.s_blocksize // 512
        disk.xattr_block = None


def ext4_xattr_get(dentry: Any, name: str):
    """``ext4_xattr_get``: ``down_read(xattr_sem)``, search the body and block; a value in an EA
    inode is looked up through ``ext4_xattr_inode_cache_find`` (``GFP_KERNEL``, no handle)."""
    inode = dentry.d_inode
    sbi = EXT4_SB(inode.i_sb)
    sem = ext4_xattr_sem(inode)
    yield from down_read(sem)
    try:
        yield Run(EXT4_XATTR_NS)
        xattrs = inode.i_disk.xattrs or {}
        if name not in xattrs:
            raise KernelError("ENODATA", name)
        size = xattrs[name]
        if size > sbi.s_blocksize - 32:
            yield from ext4_xattr_inode_cache_find(inode, size)
        return size
    finally:
        up_read(sem)


def ext4_try_to_expand_extra_isize(handle: Any, inode: ext4_inode_info):
    """``ext4_try_to_expand_extra_isize``: ``xattr_sem`` by *trylock* under the handle (no wait,
    no lockdep dependency), then ``ext4_expand_extra_isize_ea``. On contention it is retried at
    the next dirtying; on failure the inode is marked ``EXT4_STATE_NO_EXPAND``."""
    sem = ext4_xattr_sem(inode)
    if not down_write_trylock(sem):
        return
    try:
        yield from ext4_expand_extra_isize_ea(handle, inode)
    finally:
        up_write(sem)


def ext4_expand_extra_isize_ea(handle: Any, inode: ext4_inode_info):
    """``ext4_expand_extra_isize_ea``: grow ``i_extra_isize``, moving in-inode attributes out to
    the xattr block when they no longer fit (buffers ``kvmalloc``'d with ``GFP_KERNEL``)."""
    sbi = EXT4_SB(inode.i_sb)
    disk = inode.i_disk
    new = sbi.s_want_extra_isize
    xattrs = disk.xattrs or {}
    need = _xattr_bytes(xattrs)
    if need > sbi.s_inode_size - EXT4_GOOD_OLD_INODE_SIZE - new:
        cache = _kvmalloc_cache(inode.i_sb.s_sim, max(need, 64))
        obj = yield from kmem_cache_alloc(cache, GFP_KERNEL)
        if obj is None:
            inode.i_state_flags |= EXT4_STATE_NO_EXPAND
            return
        yield from ext4_xattr_block_set(handle, inode)
        kmem_cache_free(cache, obj)
    yield Run(EXT4_XATTR_NS)
    disk.extra_isize = new
