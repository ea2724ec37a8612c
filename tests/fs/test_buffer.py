"""The buffer cache on the block device's page cache."""

from __future__ import annotations

import pytest

from reclaimlab.fs import buffer
from reclaimlab.mm import filemap

from tests.fs.machine import Machine


def cache(block_size: int):
    m = Machine(memory_mb=128)
    return m, buffer.set_blocksize(m.sim, m.dev, block_size)


def spy_allocs(m: Machine) -> list[tuple[int, str]]:
    return [(e[3]["order"], str(e[3].get("gfp", ""))) for e in m.events if e[0] == "alloc"]


@pytest.mark.parametrize("block_size, order", [(4096, 0), (16384, 2), (65536, 4)])
def test_getblk_allocates_a_block_sized_folio_nofail_without_fs(block_size, order):
    m, bdev = cache(block_size)
    bh = m.run(buffer.sb_getblk(bdev, 10))
    assert bh.b_folio.order == order and bdev.mapping.nrpages == 1 << order
    allocs = [a for a in spy_allocs(m) if a[0] == order]
    assert allocs and "__GFP_NOFAIL" in allocs[0][1] and "__GFP_FS" not in allocs[0][1]
    again = m.run(buffer.sb_getblk(bdev, 10))
    assert again is bh and bh.b_count == 2 and bdev.stats["hits"] == 1


def test_sub_page_blocks_share_a_folio():
    m, bdev = cache(1024)
    a = m.run(buffer.sb_getblk(bdev, 4))
    b = m.run(buffer.sb_getblk(bdev, 7))
    assert a.b_folio == b.b_folio and len(a.b_folio.private) == 4
    assert bdev.mapping.nrpages == 1


def test_bread_reads_once_and_marks_the_folio_uptodate():
    m, bdev = cache(4096)
    bh = m.run(buffer.sb_bread(bdev, 3))
    assert buffer.buffer_uptodate(bh) and bh.b_folio.uptodate and bdev.stats["reads"] == 1
    buffer.brelse(bh)
    m.run(buffer.sb_bread(bdev, 3))
    assert bdev.stats["reads"] == 1


def test_bread_returns_none_on_an_io_error():
    m, bdev = cache(4096)
    m.dev.inject_error("read", 8 * 5, 8 * 6)
    assert m.run(buffer.sb_bread(bdev, 5)) is None


def test_dirty_buffers_dirty_their_folio_and_writeback_cleans_it():
    m, bdev = cache(4096)
    bh = m.run(buffer.sb_getblk(bdev, 1))
    buffer.mark_buffer_dirty(bh)
    assert bh.b_folio.dirty
    written = m.run(bdev.mapping.a_ops.writepages(bdev.mapping, 16))
    assert written == 1 and not buffer.buffer_dirty(bh) and not bh.b_folio.dirty
    assert not bh.b_folio.writeback and bdev.stats["writes"] == 1


def test_release_folio_refuses_busy_buffers_and_frees_idle_ones():
    m, bdev = cache(4096)
    bh = m.run(buffer.sb_getblk(bdev, 2))
    aops = bdev.mapping.a_ops
    assert not aops.release_folio(bh.b_folio)           # referenced
    buffer.brelse(bh)
    buffer.mark_buffer_dirty(bh)
    assert not aops.release_folio(bh.b_folio)           # dirty
    m.run(buffer.sync_blockdev(bdev))
    assert aops.release_folio(bh.b_folio) and bh.b_folio.private is None
    filemap.invalidate_mapping_pages(bdev.mapping)
    assert bdev.mapping.nrpages == 0


def test_reclaimed_folio_takes_its_buffers_with_it():
    m, bdev = cache(4096)
    bh = m.run(buffer.sb_bread(bdev, 9))
    buffer.brelse(bh)
    buffer.invalidate_bdev(bdev)
    again = m.run(buffer.sb_bread(bdev, 9))
    assert again is not bh and bdev.stats["reads"] == 2


@pytest.mark.parametrize("size, message", [(1000, "power of two"), (512, "at least 1024"),
                                           (131072, "64 KiB")])
def test_set_blocksize_rejects_bad_sizes(size, message):
    m = Machine()
    with pytest.raises(ValueError, match=message):
        buffer.set_blocksize(m.sim, m.dev, size)


def test_getblk_beyond_the_device_is_an_error():
    m, bdev = cache(4096)
    with pytest.raises(ValueError, match="beyond the end"):
        m.run(buffer.sb_getblk(bdev, bdev.nr_blocks))


