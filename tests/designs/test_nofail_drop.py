"""nofail-drop on the ext4-like filesystem: what a failed eviction allocation costs.

The proposal drops ``__GFP_NOFAIL`` from the eviction path when the evicting task has
``PF_MEMALLOC``. Reclaim context may use every reserve (``ALLOC_NO_WATERMARKS``), so such an
allocation fails only when memory is truly gone — the tests take every free page first, from a
``PF_MEMALLOC`` task, and then evict in that task. Then, per the mechanism: no NOFAIL warning and
no endless retry; the filesystem's error path instead — ``ext4_error`` (an ``fs_errors`` entry;
read-only under ``errors=remount-ro``), preallocated blocks left allocated, an unlinked inode
left on the orphan list (``leaked``).
"""

from __future__ import annotations

from reclaimlab.fs import buffer
from reclaimlab.mm import filemap
from reclaimlab.mm.gfp import GFP_KERNEL, __GFP_NOWARN
from reclaimlab.mm.page_alloc import alloc_pages, free_pages
from reclaimlab.sim import (
    PF_KSWAPD, PF_MEMALLOC, memalloc_noreclaim_restore, memalloc_noreclaim_save,
)
from reclaimlab.vfs import syscalls as sc
from reclaimlab.vfs.errors import KernelError
from reclaimlab.vfs.fs import O_CREAT, O_RDWR, SB_RDONLY
from reclaimlab.vfs.dcache import dput, prune_dcache_sb
from reclaimlab.vfs.inode import prune_icache_sb
from reclaimlab.vfs.namei import filename_lookup

from tests.fs.machine import Machine, write_back_while_open

KSWAPD = PF_MEMALLOC | PF_KSWAPD


def write_files(n: int, nbytes: int, prefix: str = "/f"):
    for i in range(n):
        fd = yield from sc.sys_open(f"{prefix}{i}", O_CREAT | O_RDWR)
        yield from sc.sys_write(fd, nbytes)
        yield from sc.sys_close(fd)


def take_every_page():
    """In a PF_MEMALLOC task: allocate until the allocator has nothing left, reserves included."""
    pages = []
    while (pfn := (yield from alloc_pages(GFP_KERNEL | __GFP_NOWARN, 0))) is not None:
        pages.append(pfn)
    return pages


def cached_with_preallocations(errors: str):
    """The W2 shape: files with partly used preallocations, cached and clean; their page cache
    and the buddy cache dropped (so discarding the preallocations must allocate)."""
    m = Machine(design="nofail-drop", memory_mb=64)
    sb = m.mount("ext4", journal_mb=8, errors=errors)
    m.run(write_back_while_open(20))
    m.run(sc.sys_drop_caches(1))
    filemap.invalidate_mapping_pages(sb.s_fs_info.s_buddy_cache)
    m.sim.pgdat.kswapd_failures = 16        # kswapd gave up: only our task reclaims
    return m, sb


def prune_without_memory(sb):
    """The superblock shrinker's work — dentries (whose final iput evicts), then the inode LRU —
    with no free page left."""
    pages = yield from take_every_page()
    for _ in range(2):                                 # the first pass clears referenced bits
        yield from prune_dcache_sb(sb, 1 << 20)
        yield from prune_icache_sb(sb, 1 << 20)
    for pfn in pages:
        free_pages(pfn, 0)


def test_a_failed_preallocation_discard_is_an_ext4_error_and_goes_read_only():
    """W2 under nofail-drop: the buddy load fails instead of warning and looping; ext4_error
    makes the filesystem read-only (errors=remount-ro) and later modifications get EROFS. No
    unlinked inode is involved, so nothing is leaked."""
    m, sb = cached_with_preallocations("remount-ro")
    with_pas = [i.i_ino for i in sb.s_inodes if getattr(i, "i_prealloc_list", None)]
    assert with_pas
    m.run(prune_without_memory(sb), comm="kswapd0", flags=KSWAPD)
    assert not m.warnings("nofail_in_reclaim")
    errors = m.sim.vfs.fs_errors
    assert errors and {e["ino"] for e in errors} <= set(with_pas)
    assert all(e["fs"] == sb.s_id for e in errors) and errors[-1]["read_only"]
    assert sb.s_flags & SB_RDONLY
    try:
        m.run(write_files(1, 0, "/after"))
        raise AssertionError("a read-only filesystem accepted a create")
    except KernelError as err:
        assert err.errno == "EROFS"
    assert m.sim.vfs.leaked() == []


def test_with_errors_continue_the_filesystem_stays_writable():
    """errors=continue (ext4's default): the error is recorded, the filesystem stays read-write."""
    m, sb = cached_with_preallocations("continue")
    m.run(prune_without_memory(sb), comm="kswapd0", flags=KSWAPD)
    assert m.sim.vfs.fs_errors and not any(e["read_only"] for e in m.sim.vfs.fs_errors)
    m.run(write_files(1, 4096, "/after"))
    assert not sb.s_flags & SB_RDONLY


def test_a_failed_delete_leaves_the_inode_on_the_orphan_list():
    """W1 under nofail-drop: the final iput (a dentry reference, as an overlay inode holds) of
    an unlinked inode dropped in reclaim, its inode-table
    block not cached: sb_getblk fails, ext4_evict_inode takes its error path and the inode stays
    on the on-disk orphan chain — counted in leaked, named in fs_errors."""
    m = Machine(design="nofail-drop", memory_mb=64)
    sb = m.mount("ext4", journal_mb=8)
    sbi = sb.s_fs_info

    def unlink_then_close_in_reclaim_without_memory():
        yield from sc.sys_mkdir("/d0")                 # directories spread over groups:
        yield from sc.sys_mkdir("/d1")                 # /d1's inodes are in group 1
        fd = yield from sc.sys_open("/d1/victim", O_CREAT | O_RDWR)
        yield from sc.sys_write(fd, 8192)
        yield from sc.sys_fsync(fd)
        yield from sc.sys_close(fd)
        pin = yield from filename_lookup(m.sim.vfs, "/d1/victim")  # as an overlay inode pins it
        yield from sc.sys_unlink("/d1/victim")
        yield from sc.sys_freeze("/")                  # checkpointed: buffers clean
        yield from sc.sys_thaw("/")
        yield from write_files(1, 0, "/other")         # a running transaction (group 0 only)
        buffer.invalidate_bdev(sbi.s_bdev)             # the inode-table block is not cached;
        buffer.brelse((yield from buffer.sb_bread(sbi.s_bdev, 0)))  # ext4 pins its superblock
        ino = next(iter(sbi.s_orphan))
        m.sim.pgdat.kswapd_failures = 16
        noreclaim = memalloc_noreclaim_save()          # as direct reclaim: PF_MEMALLOC
        pages = yield from take_every_page()
        yield from dput(pin)                           # the final iput evicts
        memalloc_noreclaim_restore(noreclaim)
        for pfn in pages:
            free_pages(pfn, 0)
        return ino

    ino = m.run(unlink_then_close_in_reclaim_without_memory(), until=m.sim.now + 10**10)
    assert not m.warnings("nofail_in_reclaim")
    assert [e["ino"] for e in m.sim.vfs.fs_errors] == [ino]
    assert "delete" in m.sim.vfs.fs_errors[0]["error"]
    assert sbi.s_disk[ino].orphan and (sb.s_id, ino) in m.sim.vfs.leaked()
