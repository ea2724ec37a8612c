"""The buffer cache: metadata blocks as buffer heads on folios of the block device's page cache.

Models ``fs/buffer.c`` and ``include/linux/buffer_head.h`` (mainline ~6.12, plus 6.15's bs > PS
block devices): a filesystem block lives in a folio of ``bdev->bd_mapping``; that mapping's
minimum folio order is ``log2(block_size / PAGE_SIZE)`` (``mapping_set_folio_min_order``), so
64 KiB blocks on 4 KiB pages make every metadata folio an order-4 allocation.

The kernel's rules that matter for reclaim:

- ``__getblk``/``sb_getblk`` use the mapping's mask without ``__GFP_FS`` and OR in
  ``__GFP_NOFAIL`` (and ``__GFP_MOVABLE``); ``__bread_gfp`` does the same. A miss allocates the
  folio through ``__filemap_get_folio`` and the buffer heads with that mask (``__getblk_slow`` →
  ``grow_buffers`` → ``grow_dev_folio`` → ``folio_alloc_buffers``).
- ``sb_bread`` reads a block that is not uptodate and sleeps on the IO (``__bread_slow``).
- A dirty buffer dirties its folio; writeback (``blkdev_writepages`` from flushers, checkpoint's
  ``write_dirty_buffer``) writes it and cleans the folio when its last dirty buffer is clean.
- A folio whose buffers are busy (referenced, dirty, under IO, journalled) cannot be released by
  reclaim (``try_to_free_buffers`` via ``a_ops.release_folio``).

One ``BufferCache`` stands for one block device as a filesystem sees it (``sb->s_bdev`` with its
``bd_mapping``); the kernel's ``sb_*`` helpers take it where the kernel takes the superblock.

Simplified: the buffer contents are not modelled (filesystems keep their metadata in Python
structures; the cache models memory, IO and blocking); a buffer is found through its
block's folio (``folio->private`` holds its buffer heads, dropped with the folio).
"""

from __future__ import annotations

from typing import Any

from reclaimlab.block import REQ_OP_READ, REQ_OP_WRITE, Bio, submit_bio
from reclaimlab.block import submit_bio_wait as blk_submit_bio_wait
from reclaimlab.mm import filemap
from reclaimlab.mm.gfp import GFP_NOFS, __GFP_MOVABLE, __GFP_NOFAIL
from reclaimlab.mm.slab import kmem_cache_alloc, kmem_cache_create, kmem_cache_free
from reclaimlab.sim import Completion, Run, complete_all, wait_for_completion

BH_Uptodate = 1 << 0
BH_Dirty = 1 << 1
BH_Lock = 1 << 2          # under IO

BUFFER_HEAD_SIZE = 104    # sizeof(struct buffer_head) on x86-64

# CPU cost of modelled operations, in ns.
FIND_GET_BLOCK_NS = 80    # __find_get_block: lookup in the bdev page cache
ALLOC_BUFFERS_NS = 300    # folio_alloc_buffers + link_dev_buffers per folio
SUBMIT_BH_NS = 500        # building and submitting one bio
_FIND_GET_BLOCK = Run(FIND_GET_BLOCK_NS)  # built once: a ``Run`` is only read


class buffer_head:
    """``struct buffer_head``: one block, its state, references and journal head."""

    __slots__ = ("b_blocknr", "b_size", "b_bdev", "b_folio", "b_count", "b_state", "b_jh", "obj",
                 "b_io_done")

    def __init__(self, bdev: "BufferCache", blocknr: int, folio: Any, obj: Any) -> None:
        self.b_blocknr = blocknr
        self.b_size = bdev.block_size
        self.b_bdev = bdev
        self.b_folio = folio
        self.b_count = 0
        self.b_state = 0
        self.b_jh: Any = None
        self.obj = obj
        self.b_io_done: Completion | None = None

    def __repr__(self) -> str:
        return f"bh {self.b_bdev.name}:{self.b_blocknr}"


class BufferCache:
    """A block device as a filesystem sees it: ``bd_mapping`` (its page cache) and buffers."""

    def __init__(self, sim: Any, bdev: Any, block_size: int) -> None:
        page_size = sim.pgdat.page_size
        self.sim = sim
        self.bdev = bdev
        self.name = bdev.name
        self.block_size = block_size
        self.page_size = page_size
        self.folio_order = max(0, (block_size // page_size).bit_length() - 1)
        self.blocks_per_folio = max(1, page_size // block_size)
        self.sectors_per_block = block_size // 512
        self.nr_blocks = bdev.nr_sectors // self.sectors_per_block
        self.mapping = filemap.address_space(sim, bdev, min_order=self.folio_order)
        self.mapping.a_ops = BdevAops(self)
        self.bh_cachep = _bh_cachep(sim)
        self.stats = {"reads": 0, "writes": 0, "hits": 0, "misses": 0}
        bdev.bd_mapping = self.mapping

    def folio_index(self, block: int) -> int:
        """Page index of the folio holding ``block`` (aligned to the mapping's min order)."""
        return (block * self.block_size) // self.page_size >> self.folio_order << self.folio_order

    def __repr__(self) -> str:
        return f"buffer cache {self.name} ({self.block_size} B blocks)"


def _bh_cachep(sim: Any) -> Any:
    """``bh_cachep``: the global buffer_head slab cache (``buffer_init``)."""
    cache = getattr(sim, "bh_cachep", None)
    if cache is None:
        cache = sim.bh_cachep = kmem_cache_create(sim, "buffer_head", BUFFER_HEAD_SIZE)
    return cache


def set_blocksize(sim: Any, bdev: Any, size: int) -> BufferCache:
    """``set_blocksize``/``sb_set_blocksize``: validate the block size and set up the buffer cache.

    Since 6.15 a block device accepts any power-of-two size from its logical block size up to
    64 KiB, the page cache then using folios of at least one block
    (``mapping_set_folio_min_order``).
    """
    if size < 1024 or size & (size - 1):
        raise ValueError(f"block size {size} must be a power of two and at least 1024 bytes")
    if size > 65536:
        raise ValueError(f"block size {size} is above the 64 KiB maximum (BLK_MAX_BLOCK_SIZE)")
    if size < bdev.logical_block_size:
        raise ValueError(f"block size {size} is below {bdev.name}'s logical block size "
                         f"{bdev.logical_block_size}")
    return BufferCache(sim, bdev, size)


# ------------------------------------------------------------------ lookup and allocation
def _folio_buffers(bdev: BufferCache, block: int) -> dict[int, buffer_head] | None:
    """``folio_buffers``: the buffer heads on the cached folio holding ``block`` (folio->private).

    Reclaim dropping the folio drops its private data with it (``try_to_free_buffers``)."""
    return bdev.mapping.private.get(bdev.folio_index(block))


def __find_get_block(bdev: BufferCache, block: int) -> buffer_head | None:
    """``__find_get_block``: the cached buffer for ``block`` with a reference, or None."""
    bhs = bdev.mapping.private.get(bdev.folio_index(block))  # _folio_buffers (a hot path)
    bh = bhs.get(block) if bhs is not None else None
    if bh is None:
        return None
    bh.b_count += 1
    filemap.folio_mark_accessed(bh.b_folio)
    return bh


def bdev_getblk(bdev: BufferCache, block: int, gfp: int):
    """``bdev_getblk``: a referenced buffer for ``block``, allocating its folio on a miss."""
    yield _FIND_GET_BLOCK
    bh = __find_get_block(bdev, block)
    if bh is not None:
        bdev.stats["hits"] += 1
        return bh
    bdev.stats["misses"] += 1
    return (yield from __getblk_slow(bdev, block, gfp))


def __getblk_slow(bdev: BufferCache, block: int, gfp: int):
    """``__getblk_slow``: grow the page cache by one folio and retry the lookup until found."""
    if block < 0 or block >= bdev.nr_blocks:
        raise ValueError(f"block {block} beyond the end of {bdev.name} ({bdev.nr_blocks} blocks)")
    while True:
        bh = __find_get_block(bdev, block)
        if bh is not None:
            return bh
        if not (yield from grow_dev_folio(bdev, block, gfp)):
            return None


def grow_dev_folio(bdev: BufferCache, block: int, gfp: int):
    """``grow_dev_folio``: find or create the folio and attach buffers for each of its blocks
    (``folio_alloc_buffers`` with the same mask, so NOFAIL here too)."""
    folio = yield from filemap.filemap_get_folio(bdev.mapping, bdev.folio_index(block), gfp)
    if folio is None:
        return False
    if folio.private is not None:
        return True
    yield Run(ALLOC_BUFFERS_NS)
    first = block - block % bdev.blocks_per_folio
    objs = []
    for _ in range(bdev.blocks_per_folio):
        objs.append((yield from kmem_cache_alloc(bdev.bh_cachep, gfp)))
    if folio.private is not None or folio.pfn is None:     # raced, or reclaimed while we slept
        for obj in objs:
            kmem_cache_free(bdev.bh_cachep, obj)
        return True
    uptodate = folio.uptodate
    bhs = {}
    for i, obj in enumerate(objs):
        bh = bhs[first + i] = buffer_head(bdev, first + i, folio, obj)
        if uptodate:
            bh.b_state |= BH_Uptodate
    folio.private = bhs
    return True


def __getblk(bdev: BufferCache, block: int):
    """``__getblk``: the mapping's mask minus ``__GFP_FS``, plus ``__GFP_MOVABLE|__GFP_NOFAIL``."""
    return (yield from bdev_getblk(bdev, block, GFP_NOFS | __GFP_MOVABLE | __GFP_NOFAIL))


def sb_getblk(bdev: BufferCache, block: int):
    """``sb_getblk``: a buffer for ``block``, not read (the caller initialises it)."""
    return (yield from __getblk(bdev, block))


def __bread_gfp(bdev: BufferCache, block: int, gfp: int):
    """``__bread_gfp``: ``gfp`` plus the mapping's mask minus ``__GFP_FS``, plus ``__GFP_NOFAIL``;
    reads the block if it is not uptodate. Returns the buffer, or None on an IO error."""
    gfp |= GFP_NOFS | __GFP_NOFAIL
    bh = yield from bdev_getblk(bdev, block, gfp)
    if bh is not None and not bh.b_state & BH_Uptodate:
        bh = yield from __bread_slow(bh)
    return bh


def sb_bread(bdev: BufferCache, block: int):
    """``sb_bread``: read ``block`` through the buffer cache (``__bread_gfp`` with
    ``__GFP_MOVABLE``)."""
    return (yield from __bread_gfp(bdev, block, __GFP_MOVABLE))


def __bread_slow(bh: buffer_head):
    """``__bread_slow``: submit a read and sleep until it completes (or wait for the read
    already in flight)."""
    if bh.b_state & BH_Lock:
        yield from wait_on_buffer(bh)
        if bh.b_state & BH_Uptodate:
            return bh
    bdev = bh.b_bdev
    bdev.stats["reads"] += 1
    status = yield from _submit_bh_wait(REQ_OP_READ, bh)
    if status:
        brelse(bh)
        return None
    bh.b_state |= BH_Uptodate
    _folio_update_uptodate(bh)
    return bh


def _folio_update_uptodate(bh: buffer_head) -> None:
    """Mark the folio uptodate once all of its buffers are (``end_buffer_async_read``)."""
    bhs = bh.b_folio.private
    if bhs is not None and all(b.b_state & BH_Uptodate for b in bhs.values()):
        bh.b_folio.uptodate = True


def brelse(bh: buffer_head | None) -> None:
    """``brelse``: drop a reference."""
    if bh is None:
        return
    if bh.b_count <= 0:
        raise AssertionError(f"VFS: brelse: Trying to free free buffer {bh!r}")
    bh.b_count -= 1


def buffer_dirty(bh: buffer_head) -> bool:
    return bool(bh.b_state & BH_Dirty)


def buffer_uptodate(bh: buffer_head) -> bool:
    return bool(bh.b_state & BH_Uptodate)


def set_buffer_uptodate(bh: buffer_head) -> None:
    """``set_buffer_uptodate``: the caller initialised the whole block (new metadata block)."""
    bh.b_state |= BH_Uptodate
    _folio_update_uptodate(bh)


def mark_buffer_dirty(bh: buffer_head) -> None:
    """``mark_buffer_dirty``: dirty the buffer and its folio (the flushers will write it)."""
    if bh.b_state & BH_Dirty:
        return
    bh.b_state |= BH_Dirty | BH_Uptodate
    filemap.folio_mark_dirty(bh.b_folio)


def clear_buffer_dirty(bh: buffer_head) -> None:
    """``test_clear_buffer_dirty`` as jbd2 does when filing a buffer on a transaction: the
    buffer's home write now belongs to the journal (``BH_JBDDirty``), so writeback must not
    write it; its folio is cleaned with its last dirty buffer."""
    if bh.b_state & BH_Dirty:
        bh.b_state &= ~BH_Dirty
        _folio_update_dirty(bh)


# ------------------------------------------------------------------ IO
def wait_on_buffer(bh: buffer_head):
    """``wait_on_buffer``: sleep while the buffer is under IO."""
    if bh.b_state & BH_Lock and bh.b_io_done is not None:
        yield from wait_for_completion(bh.b_io_done)


def _submit_bh_wait(op: str, bh: buffer_head):
    """``submit_bh`` + ``wait_on_buffer``: one block-sized bio; returns 0 or ``-errno``."""
    bdev = bh.b_bdev
    bh.b_state |= BH_Lock
    done = bh.b_io_done = Completion(f"{bh!r} io")
    yield Run(SUBMIT_BH_NS)
    status = yield from blk_submit_bio_wait(bdev.bdev, op, bh.b_blocknr * bdev.sectors_per_block,
                                            bdev.sectors_per_block)
    bh.b_state &= ~BH_Lock
    bh.b_io_done = None
    complete_all(done)              # unlock_buffer: wake wait_on_buffer sleepers
    return status


def write_dirty_buffers(bhs: list[buffer_head]):
    """Write a batch of dirty buffers and wait for all of them (``write_dirty_buffer`` each, then
    ``wait_on_buffer`` each, as ``jbd2_log_do_checkpoint``'s batch and writeback do)."""
    pending: list[tuple[buffer_head, Completion]] = []
    for bh in bhs:
        if not bh.b_state & BH_Dirty or bh.b_state & BH_Lock:
            continue
        pending.append((bh, (yield from _start_write(bh))))
    for bh, done in pending:
        yield from wait_for_completion(done)


def _start_write(bh: buffer_head):
    """Clean the buffer, start its write (async), and return the completion of the IO."""
    bdev = bh.b_bdev
    folio = bh.b_folio
    bh.b_state = (bh.b_state & ~BH_Dirty) | BH_Lock
    _folio_update_dirty(bh)
    cached = folio.pfn is not None and folio.index in folio.mapping.i_pages
    if cached and not folio.writeback:
        filemap.folio_start_writeback(folio)
    bdev.stats["writes"] += 1
    done = bh.b_io_done = Completion(f"{bh!r} io")

    def end_io(bio: Bio) -> None:
        bh.b_state &= ~BH_Lock
        bh.b_io_done = None
        bhs = folio.private or {}
        if folio.writeback and not any(b.b_state & BH_Lock for b in bhs.values()):
            filemap.folio_end_writeback(folio)
        if bio.bi_status:                 # a failed write leaves the buffer dirty
            mark_buffer_dirty(bh)
        complete_all(done)

    yield Run(SUBMIT_BH_NS)
    yield from submit_bio(Bio(bdev.bdev, REQ_OP_WRITE, bh.b_blocknr * bdev.sectors_per_block,
                              bdev.sectors_per_block, end_io=end_io))
    return done


def _folio_update_dirty(bh: buffer_head) -> None:
    """Clean the folio once none of its buffers is dirty (``folio_clear_dirty_for_io``)."""
    bhs = bh.b_folio.private
    if bhs is None or not any(b.b_state & BH_Dirty for b in bhs.values()):
        filemap.folio_clear_dirty_for_io(bh.b_folio)


def submit_bio_wait(bdev: BufferCache, op: str, block: int, nblocks: int):
    """``submit_bio_wait`` in filesystem blocks (log writes, data IO); returns 0 or ``-errno``."""
    yield Run(SUBMIT_BH_NS)
    return (yield from blk_submit_bio_wait(bdev.bdev, op, block * bdev.sectors_per_block,
                                           nblocks * bdev.sectors_per_block))


def _dirty_buffers(bdev: BufferCache, nr_folios: int | None = None) -> list[buffer_head]:
    """Dirty, idle buffers of the first ``nr_folios`` dirty folios, in block order."""
    mapping = bdev.mapping
    folios = filemap.filemap_dirty_folios(mapping, nr_folios if nr_folios is not None
                                          else len(mapping.dirty))
    out = []
    for f in folios:
        bhs = f.private or {}
        out.extend(bh for bh in bhs.values() if bh.b_state & BH_Dirty and not bh.b_state & BH_Lock)
    return out


def sync_blockdev(bdev: BufferCache):
    """``sync_blockdev``: write every dirty buffer and wait."""
    yield from write_dirty_buffers(_dirty_buffers(bdev))


def try_to_free_buffers(bdev: BufferCache, folio: Any) -> bool:
    """``try_to_free_buffers``: free the folio's buffer heads unless one is busy (referenced,
    dirty, under IO or journalled)."""
    bhs = folio.private
    if bhs is None:
        return True
    if any(bh.b_count or bh.b_state & (BH_Dirty | BH_Lock) or bh.b_jh for bh in bhs.values()):
        return False
    for bh in bhs.values():
        kmem_cache_free(bdev.bh_cachep, bh.obj)
    folio.private = None
    return True


def invalidate_bdev(bdev: BufferCache) -> None:
    """``invalidate_bdev`` at unmount: drop every idle buffer and its clean folio."""
    mapping = bdev.mapping
    for index in list(mapping.private):
        try_to_free_buffers(bdev, filemap.folio(mapping, index))
    filemap.invalidate_mapping_pages(mapping)


# ------------------------------------------------------------------ address_space_operations
class BdevAops:
    """``def_blk_aops``: writeback and release of the block device's page-cache folios."""

    def __init__(self, bdev: BufferCache) -> None:
        self.bdev = bdev

    def writepages(self, mapping: Any, nr: int):
        """``blkdev_writepages``: write the dirty buffers of up to ``nr`` dirty folios."""
        batch = _dirty_buffers(self.bdev, nr)
        yield from write_dirty_buffers(batch)
        return len(batch)

    def dirty_folio(self, folio: Any) -> None:
        """``block_dirty_folio`` → ``__mark_inode_dirty(bdev inode, I_DIRTY_PAGES)``: the
        flushers will write the block device's dirty metadata like any dirty inode's pages."""
        from reclaimlab.vfs.fs_writeback import bdev_mark_dirty

        bdev_mark_dirty(self.bdev.sim, self.bdev.mapping)

    def release_folio(self, folio: Any) -> bool:
        """``blkdev_release_folio`` → ``try_to_free_buffers`` (reclaim of a folio with buffers)."""
        return try_to_free_buffers(self.bdev, folio)
