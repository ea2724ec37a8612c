"""XFS's metadata buffer cache (``fs/xfs/xfs_buf.c``): AG headers and inode cluster buffers.

A buffer's memory is order-0 pages from ``xfs_buf_alloc_pages`` with ``GFP_NOFS|__GFP_NOFAIL``
(readahead excepted); a read miss allocates and waits for the IO. Unreferenced buffers sit on the
buftarg LRU and the "xfs-buf" shrinker frees clean ones (``xfs_buftarg_shrink_scan``); buffers
holding logged changes stay until the AIL has written them.

Simplified: one buffer per disk address, no per-AG rbtrees, no vmap, ``b_lru_ref`` is a single
second-chance bit.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from reclaimlab.block import REQ_OP_READ, REQ_OP_WRITE, submit_bio_wait
from reclaimlab.mm.gfp import GFP_NOFS, __GFP_NOFAIL
from reclaimlab.mm.page_alloc import alloc_pages_bulk, free_pages
from reclaimlab.mm.shrinker import Shrinker, register_shrinker
from reclaimlab.sim import Run

XFS_BUF_LOOKUP_NS = 150               # xfs_buf_find: rbtree lookup + hold
XFS_BUF_SHRINK_NS = 100               # per buffer freed by the shrinker


class xfs_buf:
    """``struct xfs_buf``: ``b_pages`` (pfns), ``b_hold``, uptodate, and its log item state
    (a buffer in the CIL or AIL holds changes not yet on disk and cannot be freed)."""

    __slots__ = ("b_daddr", "b_length", "b_pages", "b_hold", "b_uptodate", "li_state",
                 "b_referenced")

    def __init__(self, daddr: int, length: int) -> None:
        self.b_daddr = daddr
        self.b_length = length            # filesystem blocks
        self.b_pages: list[int] = []
        self.b_hold = 1
        self.b_uptodate = False
        self.li_state: str | None = None  # log item: None (clean), "pinned" (CIL), "ail"
        self.b_referenced = True

    def __repr__(self) -> str:
        return f"xfs_buf {self.b_daddr}+{self.b_length}"


class xfs_buftarg:
    """``struct xfs_buftarg``: the device, its buffers and the LRU with its shrinker."""

    def __init__(self, sim: Any, bdev: Any, block_size: int) -> None:
        self.sim = sim
        self.bdev = bdev
        self.block_size = block_size
        self.page_size = sim.pgdat.page_size
        self.sectors_per_block = block_size // 512
        self.bufs: dict[int, xfs_buf] = {}
        self.lru: dict[xfs_buf, None] = {}
        self.stats = {"reads": 0, "writes": 0, "hits": 0, "misses": 0, "shrunk": 0}
        self.shrinker = Shrinker(f"xfs-buf:{bdev.name}", partial(xfs_buftarg_shrink_count, self),
                                 partial(xfs_buftarg_shrink_scan, self))
        register_shrinker(sim, self.shrinker)

    def pages_for(self, length: int) -> int:
        return max(1, length * self.block_size // self.page_size)


def xfs_buf_alloc_pages(btp: xfs_buftarg, bp: xfs_buf, readahead: bool = False):
    """``xfs_buf_alloc_pages``: order-0 pages in bulk, ``GFP_NOFS|__GFP_NOFAIL`` (readahead
    may fail)."""
    want = btp.pages_for(bp.b_length)
    gfp = GFP_NOFS if readahead else GFP_NOFS | __GFP_NOFAIL
    while len(bp.b_pages) < want:
        got = yield from alloc_pages_bulk(gfp, want - len(bp.b_pages), bp.b_pages)
        if not got:
            return False
    return True


def xfs_buf_get(btp: xfs_buftarg, daddr: int, length: int):
    """``xfs_buf_get``: the held buffer for ``daddr``, allocated (NOFAIL) on a miss, not read."""
    yield Run(XFS_BUF_LOOKUP_NS)
    bp = btp.bufs.get(daddr)
    if bp is not None:
        btp.stats["hits"] += 1
        bp.b_hold += 1
        bp.b_referenced = True
        btp.lru.pop(bp, None)
        return bp
    btp.stats["misses"] += 1
    bp = xfs_buf(daddr, length)
    yield from xfs_buf_alloc_pages(btp, bp)
    raced = btp.bufs.get(daddr)
    if raced is not None:                  # another task inserted it while we slept
        for pfn in bp.b_pages:
            free_pages(pfn, 0)
        raced.b_hold += 1
        btp.lru.pop(raced, None)
        return raced
    btp.bufs[daddr] = bp
    return bp


def xfs_buf_read(btp: xfs_buftarg, daddr: int, length: int):
    """``xfs_buf_read``: ``xfs_buf_get`` and, if not uptodate, read it and wait."""
    bp = yield from xfs_buf_get(btp, daddr, length)
    if not bp.b_uptodate:
        btp.stats["reads"] += 1
        spb = btp.sectors_per_block
        status = yield from submit_bio_wait(btp.bdev, REQ_OP_READ, daddr * spb, length * spb)
        if status:
            xfs_buf_relse(btp, bp)
            return None
        bp.b_uptodate = True
    return bp


def xfs_buf_relse(btp: xfs_buftarg, bp: xfs_buf) -> None:
    """``xfs_buf_relse``: drop the hold; an unheld buffer goes on the LRU."""
    bp.b_hold -= 1
    if bp.b_hold < 0:
        raise AssertionError(f"{bp!r}: hold count underflow")
    if bp.b_hold == 0:
        btp.lru[bp] = None


def xfs_buf_write_batch(btp: xfs_buftarg, bps: list[xfs_buf]):
    """``xfs_buf_delwri_submit``: write buffers (one bio each) and wait for all."""
    spb = btp.sectors_per_block
    for bp in bps:
        btp.stats["writes"] += 1
        yield from submit_bio_wait(btp.bdev, REQ_OP_WRITE, bp.b_daddr * spb, bp.b_length * spb)


def xfs_buf_free(btp: xfs_buftarg, bp: xfs_buf) -> None:
    """``xfs_buf_free``: return the pages."""
    del btp.bufs[bp.b_daddr]
    btp.lru.pop(bp, None)
    for pfn in bp.b_pages:
        free_pages(pfn, 0)
    bp.b_pages = []


def xfs_buftarg_shrink_count(btp: xfs_buftarg, sc: Any) -> int:
    """``xfs_buftarg_shrink_count``: buffers on the LRU."""
    return len(btp.lru)


def xfs_buftarg_shrink_scan(btp: xfs_buftarg, sc: Any):
    """``xfs_buftarg_shrink_scan`` (``xfs_buftarg_isolate``): free clean, unlogged buffers;
    referenced ones get a second chance."""
    freed = 0
    for bp in list(btp.lru)[:sc.nr_to_scan]:
        if bp.b_referenced:
            bp.b_referenced = False
            del btp.lru[bp]
            btp.lru[bp] = None
            continue
        if bp.b_hold or bp.li_state is not None:
            continue
        xfs_buf_free(btp, bp)
        freed += 1
    btp.stats["shrunk"] += freed
    yield Run(XFS_BUF_SHRINK_NS * max(1, freed))
    return freed


def xfs_buftarg_drain(btp: xfs_buftarg) -> None:
    """``xfs_buftarg_drain`` at unmount: free every buffer."""
    for bp in list(btp.bufs.values()):
        xfs_buf_free(btp, bp)
