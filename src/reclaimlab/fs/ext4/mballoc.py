"""ext4's block groups, bitmaps and multiblock allocator with inode preallocations.

Models ``fs/ext4/balloc.c`` and ``fs/ext4/mballoc.c`` (mainline ~6.12):

- every block group has a block bitmap block and a group descriptor, read through the buffer
  cache (``ext4_read_block_bitmap`` → ``sb_getblk``, NOFAIL) and modified under a journal handle;
- the allocator's in-core view of a group is its *buddy*: two blocks per group (bitmap + buddy
  orders) in the page cache of ``s_buddy_cache``, an internal inode. ``ext4_mb_load_buddy_gfp``
  looks the folios up and, when mm has reclaimed them, allocates them again with the caller's
  mask and rebuilds them from the on-disk bitmap — with ``GFP_NOFS|__GFP_NOFAIL`` from
  ``ext4_discard_preallocations`` and ``ext4_free_blocks``;
- data allocations (delayed allocation at writeback) are served from preallocations chosen by
  ``ext4_mb_group_or_file``: a file of at most ``s_mb_stream_request`` (16) blocks takes its
  blocks from its CPU's *locality group* PA (``MB_GROUP_PA``, 512-block chunks shared by all
  small files); a larger file open for write gets a per-inode PA (``MB_INODE_PA``): a miss
  normalises the request to a larger chunk (``ext4_mb_normalize_request``) whose unused part stays
  reserved in the buddy until ``ext4_discard_preallocations``, which runs at the last writer's
  close when no delayed blocks are left (``ext4_release_file``) and from ``ext4_clear_inode`` on
  every eviction — the W2 path; a larger file that nobody has open for write is allocated
  exactly (``EXT4_MB_HINT_NOPREALLOC``: its final size is known).

Free space is kept per group as a sorted list of free extents (the buddy's content); the on-disk
counter (``s_freeclusters``) counts only blocks marked in the bitmaps, so preallocated space is
free for ``statfs`` as in the kernel.

Simplified: a writeback allocation of a file nobody has open for write counts as reaching its
end (the kernel maps the whole delayed extent in one request; ``ext4_fs_is_busy`` is not
modelled); locality groups are per CPU but their PA lists hold one chunk; no flex_bg, no busy-extent wait
after frees (freed blocks are reusable at once), no extent tree blocks (an inode's extents live
in ``i_data``), group locks are omitted (no sleeping happens under them).
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

from reclaimlab.fs import buffer
from reclaimlab.fs.journal import (
    jbd2_journal_dirty_metadata, jbd2_journal_get_write_access, jbd2_journal_revoke,
)
from reclaimlab.mm import filemap
from reclaimlab.mm.gfp import GFP_NOFS, __GFP_NOFAIL
from reclaimlab.sim import Run, current
from reclaimlab.fs.ext4.ext4 import ext4_error, ext4_getblk_evict
from reclaimlab.vfs.designs import evict_gfp
from reclaimlab.vfs.errors import KernelError

MB_DEFAULT_PREALLOC_BLOCKS = 512      # s_mb_prealloc_table upper bound used for normalisation
EXT4_DESC_SIZE = 64

# CPU cost of modelled operations, in ns.
# ext4_mb_group_or_file's defaults: MB_DEFAULT_STREAM_THRESHOLD, MB_DEFAULT_GROUP_PREALLOC.
S_MB_STREAM_REQUEST = 16
S_MB_GROUP_PREALLOC = 512
MB_ALLOC_NS = 1_500                   # ext4_mb_new_blocks: regular allocator scan
MB_PA_USE_NS = 300                    # ext4_mb_use_inode_pa: allocation from a preallocation
MB_FREE_NS = 800                      # ext4_free_blocks per extent
MB_INIT_CACHE_NS = 4_000              # ext4_mb_init_cache: rebuild bitmap + buddy for a group
MB_DISCARD_PA_NS = 500                # ext4_mb_release_inode_pa


class ext4_prealloc_space:
    """``struct ext4_prealloc_space`` (inode PA): ``pa_len`` blocks at ``pa_pstart`` reserved for
    logical blocks from ``pa_lstart``; ``pa_free`` of them still unused."""

    __slots__ = ("pa_lstart", "pa_pstart", "pa_len", "pa_free", "pa_group", "pa_used")

    def __init__(self, lstart: int, pstart: int, length: int, group: int) -> None:
        self.pa_lstart = lstart
        self.pa_pstart = pstart
        self.pa_len = length
        self.pa_free = length
        self.pa_group = group
        self.pa_used = bytearray(length)    # which blocks of the PA were handed out

    def __repr__(self) -> str:
        return f"pa [{self.pa_lstart}+{self.pa_len}]@{self.pa_pstart} free {self.pa_free}"


class ext4_group_info:
    """``struct ext4_group_info`` + ``struct ext4_group_desc``: one block group's metadata
    locations, its free extents (the buddy's content), its inode bitmap and counters."""

    __slots__ = ("group", "first", "block_bitmap", "inode_bitmap", "inode_table", "free_extents",
                 "bb_free", "inodes", "free_inodes", "used_dirs", "nblocks")

    def __init__(self, group: int, first: int, nblocks: int, meta_start: int, itb: int,
                 ipg: int) -> None:
        self.group = group
        self.first = first
        self.nblocks = nblocks
        self.block_bitmap = first + meta_start
        self.inode_bitmap = first + meta_start + 1
        self.inode_table = first + meta_start + 2
        data = meta_start + 2 + itb
        self.free_extents: list[list[int]] = ([[first + data, nblocks - data]]
                                              if nblocks > data else [])
        self.bb_free = max(0, nblocks - data)
        self.inodes = bytearray(ipg)
        self.free_inodes = ipg
        self.used_dirs = 0

    def __repr__(self) -> str:
        return f"group {self.group}"


# ------------------------------------------------------------------ free extents (the buddy)
def mb_mark_used(grp: ext4_group_info, start: int, length: int) -> None:
    """``mb_mark_used``: take [start, start+length) out of the group's free extents."""
    ext = grp.free_extents
    i = bisect_left(ext, [start + 1]) - 1
    if i < 0 or not (ext[i][0] <= start and start + length <= ext[i][0] + ext[i][1]):
        raise AssertionError(f"{grp!r}: blocks {start}+{length} are not free")
    s, n = ext[i]
    pieces = []
    if start > s:
        pieces.append([s, start - s])
    if start + length < s + n:
        pieces.append([start + length, s + n - start - length])
    ext[i:i + 1] = pieces
    grp.bb_free -= length


def mb_free_blocks(grp: ext4_group_info, start: int, length: int) -> None:
    """``mb_free_blocks``: return [start, start+length) to the free extents, merging neighbours."""
    ext = grp.free_extents
    i = bisect_left(ext, [start])
    if (i < len(ext) and ext[i][0] < start + length) or (i > 0 and sum(ext[i - 1]) > start):
        raise AssertionError(f"{grp!r}: double free of blocks {start}+{length}")
    new = [start, length]
    if i < len(ext) and ext[i][0] == start + length:
        new[1] += ext.pop(i)[1]
    if i > 0 and sum(ext[i - 1]) == start:
        ext[i - 1][1] += new[1]
    else:
        ext.insert(i, new)
    grp.bb_free += length


def mb_find_extent(grp: ext4_group_info, goal: int, length: int) -> tuple[int, int] | None:
    """Best run for ``length`` blocks at or after ``goal`` (first fit, then any): (start, len)."""
    ext = grp.free_extents
    if not ext:
        return None
    i = max(0, bisect_left(ext, [goal]) - 1)
    for s, n in ext[i:] + ext[:i]:
        if n >= length:
            return (max(s, goal) if s <= goal < s + n and s + n - goal >= length else s, length)
    s, n = max(ext, key=lambda e: (e[1], -e[0]))
    return (s, n)


# ------------------------------------------------------------------ bitmaps and descriptors
def ext4_group_desc_block(sbi: Any, group: int) -> int:
    """Block holding ``group``'s descriptor (the GDT follows the superblock in group 0)."""
    return 1 + group * EXT4_DESC_SIZE // sbi.s_blocksize


def ext4_read_block_bitmap(sbi: Any, group: int):
    """``ext4_read_block_bitmap``: the group's bitmap buffer, read if needed (NOFAIL getblk)."""
    bh = yield from ext4_getblk_evict(sbi, sbi.s_groups[group].block_bitmap)
    if not buffer.buffer_uptodate(bh):
        bh = yield from buffer.__bread_slow(bh)
    return bh


def ext4_get_group_desc(sbi: Any, group: int):
    """``ext4_get_group_desc``: the descriptor block (kept read since mount, ``s_group_desc``)."""
    return (yield from buffer.sb_bread(sbi.s_bdev, ext4_group_desc_block(sbi, group)))


def ext4_dirty_group_meta(handle: Any, sbi: Any, group: int, bh: Any):
    """Journal a change of ``bh`` (a bitmap) and of the group's descriptor."""
    gdp_bh = yield from ext4_get_group_desc(sbi, group)
    for b in (bh, gdp_bh):
        yield from jbd2_journal_get_write_access(handle, b)
        yield from jbd2_journal_dirty_metadata(handle, b)
    buffer.brelse(gdp_bh)


# ------------------------------------------------------------------ the buddy cache
def buddy_folio_index(sbi: Any, group: int, which: int) -> int:
    """Page index in ``s_buddy_cache`` of the group's bitmap (0) or buddy (1) block."""
    mapping = sbi.s_buddy_cache
    index = (2 * group + which) * sbi.s_blocksize // sbi.page_size
    return index >> mapping.min_order << mapping.min_order


def ext4_mb_load_buddy_gfp(sbi: Any, group: int, gfp: int):
    """``ext4_mb_load_buddy_gfp``: make the group's bitmap and buddy folios present and uptodate.

    A folio that mm reclaimed is allocated again with ``gfp`` (``__filemap_get_folio(FGP_CREAT)``)
    and rebuilt from the on-disk bitmap (``ext4_mb_init_cache``).
    """
    mapping = sbi.s_buddy_cache
    for which in (0, 1):
        index = buddy_folio_index(sbi, group, which)
        folio = yield from filemap.filemap_get_folio(mapping, index, gfp, create=False)
        if folio is not None and folio.uptodate:
            continue
        folio = yield from filemap.filemap_get_folio(mapping, index, gfp)
        if folio is None:
            raise KernelError("ENOMEM", f"loading the buddy of group {group}")
        if not folio.uptodate:
            yield from ext4_mb_init_cache(sbi, group, folio)


def ext4_mb_init_cache(sbi: Any, group: int, folio: Any):
    """``ext4_mb_init_cache``: read the block bitmap and build the in-core bitmap/buddy."""
    bh = yield from ext4_read_block_bitmap(sbi, group)
    yield Run(MB_INIT_CACHE_NS)
    buffer.brelse(bh)
    folio.uptodate = True


# ------------------------------------------------------------------ allocation
def ext4_mb_normalize_request(sbi: Any, inode: Any, length: int) -> int:
    """``ext4_mb_normalize_request``: round a data allocation up by the file's size class
    (16 KiB .. 8 MiB in the kernel), capped at ``s_mb_prealloc_blocks``."""
    size = max(inode.i_size, length * sbi.s_blocksize)
    want = 16 * 1024
    while want < size and want < 8 * 1024 * 1024:
        want <<= 1
    return max(length, min(sbi.s_mb_prealloc_blocks, want // sbi.s_blocksize))


def ext4_mb_use_inode_pa(ei: Any, lblk: int) -> int | None:
    """``ext4_mb_use_inode_pa``: the physical block for ``lblk`` from an inode PA covering it."""
    for pa in ei.i_prealloc_list or ():
        off = lblk - pa.pa_lstart
        if 0 <= off < pa.pa_len and not pa.pa_used[off]:
            pa.pa_used[off] = 1
            pa.pa_free -= 1
            if pa.pa_free == 0:                 # ext4_mb_put_pa: a used-up PA goes away
                ei.i_prealloc_list.remove(pa)
            return pa.pa_pstart + off
    return None


def ext4_mb_group_or_file(sbi: Any, inode: Any, lblk: int) -> str:
    """``ext4_mb_group_or_file``: ``"group"`` (locality group PA) for a file of at most
    ``s_mb_stream_request`` blocks, else ``"inode"`` (inode PA) while it is open for write, else
    ``"none"``: a closed file allocated to its end needs no preallocation."""
    isize = -(-inode.i_size // sbi.s_blocksize)
    if max(lblk + 1, isize) <= S_MB_STREAM_REQUEST:
        return "group"
    return "inode" if inode.i_writecount > 0 else "none"


def ext4_mb_new_blocks(handle: Any, sbi: Any, inode: Any, lblk: int, goal_group: int):
    """``ext4_mb_new_blocks``: one data block for ``lblk`` of ``inode``; returns its number or
    None (ENOSPC). An existing inode PA covering ``lblk`` is used first
    (``ext4_mb_use_preallocated``); otherwise ``ext4_mb_group_or_file`` picks the locality group
    PA, a new inode PA, or an exact allocation. The used block is marked in the bitmap."""
    pblk = ext4_mb_use_inode_pa(inode, lblk)
    if pblk is not None:
        yield Run(MB_PA_USE_NS)
    else:
        kind = ext4_mb_group_or_file(sbi, inode, lblk)
        if kind == "group":
            pblk = yield from ext4_mb_use_group_pa(sbi, goal_group)
        else:
            pblk = yield from ext4_mb_new_file_block(sbi, inode, lblk, goal_group, kind == "inode")
        if pblk is None:
            return None
    yield from ext4_mb_mark_diskspace_used(handle, sbi, pblk, 1)
    return pblk


def ext4_mb_new_file_block(sbi: Any, inode: Any, lblk: int, goal_group: int, with_pa: bool):
    """The regular allocator for a file outside the locality group: a normalised chunk kept as
    a new inode PA (``ext4_mb_new_inode_pa``) when ``with_pa``, else exactly one block."""
    yield Run(MB_ALLOC_NS)
    want = ext4_mb_normalize_request(sbi, inode, 1) if with_pa else 1
    found = yield from ext4_mb_regular_allocator(sbi, goal_group, want)
    if found is None:
        return None
    grp, start, got = found
    if not with_pa:
        return start
    if inode.i_prealloc_list is None:
        inode.i_prealloc_list = []
    inode.i_prealloc_list.append(ext4_prealloc_space(lblk, start, got, grp.group))
    return ext4_mb_use_inode_pa(inode, lblk)


def ext4_mb_use_group_pa(sbi: Any, goal_group: int):
    """The next block of this CPU's locality group PA (``ext4_mb_use_group_pa``), taking a new
    ``S_MB_GROUP_PREALLOC``-block chunk when it is used up (``ext4_mb_new_group_pa``)."""
    cpu = current().cpu
    pa = sbi.s_locality_groups.get(cpu)
    if pa is None or pa.pa_free == 0:
        yield Run(MB_ALLOC_NS)
        found = yield from ext4_mb_regular_allocator(sbi, goal_group, S_MB_GROUP_PREALLOC)
        if found is None:
            return None
        grp, start, got = found
        pa = sbi.s_locality_groups[cpu] = ext4_prealloc_space(0, start, got, grp.group)
    else:
        yield Run(MB_PA_USE_NS)
    off = pa.pa_len - pa.pa_free
    pa.pa_used[off] = 1
    pa.pa_free -= 1
    return pa.pa_pstart + off


def ext4_mb_release_group_pas(sbi: Any) -> None:
    """``ext4_mb_release``'s locality group part: the chunks' unused blocks go back to the
    buddy at unmount (a chunk's unused blocks are freed as an inode PA's are)."""
    for pa in sbi.s_locality_groups.values():
        ext4_mb_release_inode_pa(sbi, pa)
    sbi.s_locality_groups.clear()


def ext4_mb_regular_allocator(sbi: Any, goal_group: int, want: int):
    """``ext4_mb_regular_allocator``: from the goal group on, the first group with free space;
    its buddy is loaded (``GFP_NOFS``, may fail with ENOMEM) and up to ``want`` contiguous blocks
    are taken in it. Returns (group, start, length) or None."""
    n = len(sbi.s_groups)
    for i in range(n):
        grp = sbi.s_groups[(goal_group + i) % n]
        if grp.bb_free == 0:
            continue
        yield from ext4_mb_load_buddy_gfp(sbi, grp.group, GFP_NOFS)
        hit = mb_find_extent(grp, grp.first, want)     # no sleeping from here to mb_mark_used
        if hit is None:
            continue
        start, got = hit
        got = min(got, want)
        mb_mark_used(grp, start, got)
        return grp, start, got
    return None


def ext4_mb_mark_diskspace_used(handle: Any, sbi: Any, pblk: int, count: int):
    """``ext4_mb_mark_diskspace_used``: set the bits in the on-disk bitmap under the handle."""
    group = pblk // sbi.s_blocks_per_group
    bh = yield from ext4_read_block_bitmap(sbi, group)
    yield from ext4_dirty_group_meta(handle, sbi, group, bh)
    buffer.brelse(bh)
    sbi.s_freeclusters -= count


def ext4_mb_alloc_meta_block(handle: Any, sbi: Any, goal_group: int):
    """A metadata block (directory or xattr block) straight from the allocator, no
    preallocation; marked in the bitmap under the handle."""
    yield Run(MB_ALLOC_NS)
    found = yield from ext4_mb_regular_allocator(sbi, goal_group, 1)
    if found is None:
        return None
    _, start, _ = found
    yield from ext4_mb_mark_diskspace_used(handle, sbi, start, 1)
    return start


def ext4_free_blocks(handle: Any, sbi: Any, pblk: int, count: int, metadata: bool = False):
    """``ext4_free_blocks`` → ``ext4_mb_clear_bb``: clear bitmap bits under the handle and return
    the blocks to the buddy (loaded ``GFP_NOFS|__GFP_NOFAIL``). Freed metadata blocks are revoked
    (``EXT4_FREE_BLOCKS_FORGET``: a jbd2 revoke record, NOFAIL)."""
    group = pblk // sbi.s_blocks_per_group
    yield Run(MB_FREE_NS)
    bh = yield from ext4_read_block_bitmap(sbi, group)
    yield from ext4_mb_load_buddy_gfp(sbi, group, evict_gfp(GFP_NOFS | __GFP_NOFAIL))
    yield from ext4_dirty_group_meta(handle, sbi, group, bh)
    buffer.brelse(bh)
    if metadata:
        for b in range(pblk, pblk + count):
            yield from jbd2_journal_revoke(handle, b)
    mb_free_blocks(sbi.s_groups[group], pblk, count)
    sbi.s_freeclusters += count


def ext4_discard_preallocations(sbi: Any, inode: Any):
    """``ext4_discard_preallocations``: give every inode PA's unused blocks back to the buddy.

    Loads each PA's group buddy with ``GFP_NOFS|__GFP_NOFAIL`` and reads its block bitmap
    (``ext4_mb_release_inode_pa``). Only in-core state changes: no handle is needed, which is why
    ``ext4_clear_inode`` can call it from any eviction — including one run by memory reclaim.
    Under ``nofail-drop`` the loads may fail in reclaim: ``ext4_error`` and the PA's blocks stay
    allocated (until fsck), as the kernel's "Error loading buddy information" path.
    """
    ei = inode
    while ei.i_prealloc_list:
        pa = ei.i_prealloc_list.pop(0)
        try:
            yield from ext4_mb_load_buddy_gfp(sbi, pa.pa_group,
                                              evict_gfp(GFP_NOFS | __GFP_NOFAIL))
            bh = yield from ext4_read_block_bitmap(sbi, pa.pa_group)
        except KernelError as err:
            ext4_error(inode.i_sb, inode.i_ino, f"ext4_discard_preallocations: error loading "
                       f"buddy information for group {pa.pa_group} ({err.errno})")
            continue
        yield Run(MB_DISCARD_PA_NS)
        ext4_mb_release_inode_pa(sbi, pa)
        buffer.brelse(bh)


def ext4_mb_release_inode_pa(sbi: Any, pa: ext4_prealloc_space) -> None:
    """``ext4_mb_release_inode_pa``: free the PA's unused runs in the group's buddy."""
    grp = sbi.s_groups[pa.pa_group]
    run_start = None
    for off in range(pa.pa_len + 1):
        unused = off < pa.pa_len and not pa.pa_used[off]
        if unused and run_start is None:
            run_start = off
        elif not unused and run_start is not None:
            mb_free_blocks(grp, pa.pa_pstart + run_start, off - run_start)
            run_start = None
    pa.pa_free = 0
