"""The ext4-like filesystem: eviction paths, NOFAIL sites, orphans, xattr locking, configuration."""

from __future__ import annotations

import pytest

from reclaimlab.fs import buffer
from reclaimlab.fs.ext4 import Ext4Config, ext4_check_invariants
from reclaimlab.fs.ext4.inode import ext4_inode_loc
from reclaimlab.mm import filemap
from reclaimlab.mm.gfp import GFP_KERNEL
from reclaimlab.mm.page_alloc import alloc_pages
from reclaimlab.sim import PF_MEMALLOC
from reclaimlab.vfs import syscalls as sc
from reclaimlab.vfs.errors import KernelError
from reclaimlab.vfs.fs import O_CREAT, O_RDWR

from tests.fs.machine import Machine, inode_pas, write_back_while_open

W2_FRAMES = ["prune_icache_sb", "evict", "ext4_evict_inode", "ext4_clear_inode",
             "ext4_discard_preallocations", "ext4_mb_load_buddy_gfp"]


def write_files(n: int, nbytes: int, prefix: str = "/f"):
    for i in range(n):
        fd = yield from sc.sys_open(f"{prefix}{i}", O_CREAT | O_RDWR)
        yield from sc.sys_write(fd, nbytes)
        yield from sc.sys_close(fd)


def hog(limit: int):
    """Allocate unreclaimable pages until the allocator fails or ``limit`` pages are held."""
    pages = []
    while len(pages) < limit:
        pfn = yield from alloc_pages(GFP_KERNEL, 0)
        if pfn is None:
            break
        pages.append(pfn)
    return pages


def w2_machine(design: str) -> Machine:
    """Files with partly used preallocations cached on an ext4 fs; their page cache and the
    buddy cache dropped (as earlier reclaim would have); kswapd given up on the node
    (``kswapd_failures`` at the limit), so allocations reclaim directly."""
    m = Machine(design=design, memory_mb=64)
    sb = m.mount("ext4", journal_mb=8)

    def setup():
        yield from write_back_while_open(200)
        yield from sc.sys_drop_caches(1)

    m.run(setup())
    assert len(inode_pas(sb)) == 200
    filemap.invalidate_mapping_pages(sb.s_fs_info.s_buddy_cache)
    m.sim.pgdat.kswapd_failures = 16
    m.sb = sb
    return m


def test_small_files_use_the_locality_group_and_closed_large_files_need_no_preallocation():
    m = Machine(memory_mb=64)
    sb = m.mount("ext4", journal_mb=8)
    m.run(write_files(5, 40960))                       # 10 blocks each: <= s_mb_stream_request
    m.run(write_files(3, 102400, prefix="/big"))       # 25 blocks, closed before writeback
    assert all(not i.i_prealloc_list for i in sb.s_inodes), "delalloc: no blocks before writeback"
    m.run(sc.sys_sync())
    assert inode_pas(sb) == []
    lg = list(sb.s_fs_info.s_locality_groups.values())
    assert lg and sum(pa.pa_len - pa.pa_free for pa in lg) == 5 * 10


def test_inode_preallocations_survive_only_a_close_with_delayed_blocks_left():
    m = Machine(memory_mb=64)
    sb = m.mount("ext4", journal_mb=8)
    m.run(write_back_while_open(2))
    pas = inode_pas(sb)
    assert len(pas) == 2 and all(pa.pa_len == 32 and pa.pa_free == 12 for pa in pas)
    m.run(write_back_while_open(2, then=0, prefix="/g"))   # nothing left at close: discarded
    assert len(inode_pas(sb)) == 2


def test_w2_direct_reclaim_evicts_inode_with_preallocations_into_nofail_buddy_load():
    m = w2_machine("sync")
    m.run(hog(20000), comm="hog")
    warns = m.warnings("nofail_in_reclaim")
    assert warns, "expected the NOFAIL buddy load to warn in reclaim"
    _, task, _, info, _ = warns[0]
    stack = info["stack"]
    assert task.comm == "hog" and "try_to_free_pages" in stack
    assert all(f in stack for f in W2_FRAMES), stack
    assert stack.index("prune_icache_sb") < stack.index("ext4_mb_load_buddy_gfp")
    assert info["flags"] & PF_MEMALLOC and "__GFP_NOFAIL" in info["gfp"]
    assert m.sim.vfs.stats.evicted_in_reclaim > 0


@pytest.mark.parametrize("design", ["inodegc", "passive-ref"])
def test_w2_deferred_designs_run_the_cleanup_outside_reclaim(design):
    m = w2_machine(design)
    m.run(hog(20000), comm="hog")
    assert not m.warnings("nofail_in_reclaim")
    stats = m.sim.vfs.stats_dict()
    assert stats["evicted_in_reclaim"] == 0 and stats["deferred"] >= 200
    cleanups = [e for e in m.events if e[0] == "inode_cleanup"]
    assert cleanups and all(not e[1].flags & PF_MEMALLOC for e in cleanups)


def test_64k_blocks_make_metadata_reads_order4_nofail_and_warn_below_low():
    m = Machine(memory_mb=128, disk_mb=1024)
    sb = m.mount("ext4", block_size=65536, journal_mb=64)
    assert sb.s_fs_info.s_bdev.folio_order == 4
    free = m.sim.pgdat.zone.free_pages
    low = m.sim.pgdat.zone.watermark[1]

    def pressure_then_mkdirs():
        held = yield from hog(free - low + 8)
        for i in range(4):
            try:
                yield from sc.sys_mkdir(f"/d{i}")
            except KernelError as err:       # the non-NOFAIL order-4 buddy load may fail
                assert err.errno == "ENOMEM"
        return held

    m.run(pressure_then_mkdirs(), comm="mkdir")
    nofail4 = [e for e in m.events if e[0] == "alloc" and e[3]["order"] == 4
               and "__GFP_NOFAIL" in str(e[3].get("gfp", ""))]
    assert nofail4, "metadata folios of 64 KiB blocks are order-4 NOFAIL allocations"
    warns = m.warnings("nofail_costly_order")
    assert warns and warns[0][3]["order"] == 4
    assert "bdev_getblk" in warns[0][3]["stack"] and "grow_dev_folio" in warns[0][3]["stack"]


def test_unlink_then_unmount_frees_every_block_and_inode():
    m = Machine(design="sync")
    sb = m.mount("ext4", journal_mb=8)
    before = m.run(sc.sys_statfs("/"))

    def churn():
        yield from sc.sys_mkdir("/d")
        yield from write_files(30, 20000, "/d/f")
        yield from sc.sys_sync()
        for i in range(30):
            yield from sc.sys_unlink(f"/d/f{i}")
        yield from sc.sys_rmdir("/d")
        return (yield from sc.sys_statfs("/"))

    after = m.run(churn())
    assert after["f_bfree"] == before["f_bfree"] and after["f_ffree"] == before["f_ffree"]
    assert ext4_check_invariants(sb) == []
    m.run(sc.sys_umount("/"))
    assert m.sim.vfs.leaked() == [] and m.sim.vfs.check_invariants() == []


def test_failed_eviction_leaves_the_inode_on_the_on_disk_orphan_chain():
    m = Machine(design="sync")
    sb = m.mount("ext4", journal_mb=8)
    sbi = sb.s_fs_info

    def unlink_while_open_then_close_on_a_failing_disk():
        fd = yield from sc.sys_open("/victim", O_CREAT | O_RDWR)
        yield from sc.sys_write(fd, 8192)
        yield from sc.sys_fsync(fd)
        yield from sc.sys_unlink("/victim")
        yield from sc.sys_freeze("/")                  # jbd2_journal_flush: all checkpointed
        yield from sc.sys_thaw("/")
        ino = next(iter(sbi.s_orphan))
        buffer.invalidate_bdev(sbi.s_bdev)             # inode-table block no longer cached
        _, block = ext4_inode_loc(sbi, ino)
        spb = sbi.s_bdev.sectors_per_block
        m.dev.inject_error("read", block * spb, (block + 1) * spb, count=None)
        yield from sc.sys_close(fd)                    # final iput: eviction hits the IO error
        return ino

    ino = m.run(unlink_while_open_then_close_on_a_failing_disk())
    assert m.tracepoints("ext4_evict_inode_error")
    assert ino not in sbi.s_orphan and sbi.s_disk[ino].orphan, "on the on-disk orphan chain"
    assert (sb.s_id, ino) in m.sim.vfs.leaked()        # not freed — but recoverable at mount


def test_setxattr_takes_xattr_sem_inside_a_journal_handle_and_getxattr_allocates_under_it():
    m = Machine(design="sync")
    m.mount("ext4", journal_mb=8)

    def xattrs():
        fd = yield from sc.sys_open("/x", O_CREAT | O_RDWR)
        yield from sc.sys_close(fd)
        yield from sc.sys_setxattr("/x", "user.big", 8000)     # value in an EA inode
        return (yield from sc.sys_getxattr("/x", "user.big"))

    assert m.run(xattrs()) == 8000
    assert ("jbd2_handle", "&ei->xattr_sem") in m.lock_edges
    assert ("&ei->xattr_sem", "fs_reclaim") in m.lock_edges


def test_expanding_extra_isize_trylocks_xattr_sem_under_the_handle():
    m = Machine(design="sync")
    sb = m.mount("ext4", journal_mb=8)

    def create_then_dirty():
        fd = yield from sc.sys_open("/old", O_CREAT | O_RDWR)
        inode = next(i for i in sb.s_inodes if i.i_ino != 2 and not i.i_mode & 0o040000)
        inode.i_disk.extra_isize = 0                   # an inode made by an older mkfs
        yield from sc.sys_write(fd, 4096)
        yield from sc.sys_fsync(fd)                    # writeback marks the inode dirty
        yield from sc.sys_close(fd)
        return inode

    inode = m.run(create_then_dirty())
    assert inode.i_disk.extra_isize == sb.s_fs_info.s_want_extra_isize
    assert ("jbd2_handle", "&ei->xattr_sem") not in m.lock_edges     # a trylock: no dependency


@pytest.mark.parametrize("opts, message", [
    ({"block_size": 3000}, "power of two"),
    ({"block_size": 512}, "at least 1024"),
    ({"block_size": 131072}, "64 KiB"),
    ({"block_size": 65536, "journal_mb": 16}, "smaller than one transaction"),
    ({"journal_mb": 1, "block_size": 4096}, "smaller than one transaction"),
    ({"inode_size": 100}, "inode size"),
    ({"no_such_option": 1}, "unknown mount option"),
])
def test_bad_configuration_is_rejected_with_a_clear_message(opts, message):
    with pytest.raises(ValueError, match=message):
        Ext4Config.from_options(opts)


def test_mount_rejects_a_device_too_small_for_the_journal():
    m = Machine(disk_mb=32)
    with pytest.raises(ValueError, match="too small"):
        m.mount("ext4", journal_mb=64)


def test_enospc_when_delayed_allocation_runs_out():
    m = Machine()
    m.mount("ext4", journal_mb=8, max_blocks=32768 * 2)

    def fill():
        fd = yield from sc.sys_open("/big", O_CREAT | O_RDWR)
        yield from sc.sys_write(fd, 512 * 1024 * 1024)

    with pytest.raises(KernelError) as err:
        m.run(fill())
    assert err.value.errno == "ENOSPC"


def test_fsync_commits_the_transaction_that_logged_the_inode_and_waits_for_it():
    m = Machine(design="sync")
    sb = m.mount("ext4", journal_mb=8)
    journal = sb.s_fs_info.s_journal

    def write_fsync_then_overwrite_fsync():
        fd = yield from sc.sys_open("/db", O_CREAT | O_RDWR)
        inode = next(i for i in sb.s_inodes if i.i_ino != 2 and not i.i_mode & 0o040000)
        yield from sc.sys_write(fd, 16384)
        yield from sc.sys_fsync(fd)
        yield from sc.sys_close(fd)
        commits = journal.stats["commits"]
        # An overwrite: the size does not change, the VFS inode is not dirtied; writeback
        # logs the inode in a new transaction, which the fsync must see committed.
        fd = yield from sc.sys_open("/db", O_RDWR)
        yield from sc.sys_write(fd, 16384)
        yield from sc.sys_fsync(fd)
        yield from sc.sys_close(fd)
        return inode, commits

    inode, commits_before = m.run(write_fsync_then_overwrite_fsync())
    assert journal.stats["commits"] > commits_before
    assert journal.j_commit_sequence >= inode.i_sync_tid > 0, "fsync returned after the commit"


def test_fsync_of_an_inode_already_committed_starts_no_commit_but_flushes_the_device():
    m = Machine(design="sync")
    sb = m.mount("ext4", journal_mb=8)
    journal = sb.s_fs_info.s_journal

    def fsync_twice():
        fd = yield from sc.sys_open("/db", O_CREAT | O_RDWR)
        yield from sc.sys_write(fd, 16384)
        yield from sc.sys_fsync(fd)
        commits, flushes = journal.stats["commits"], m.dev.stats.flushes
        yield from sc.sys_fsync(fd)                    # nothing logged since
        yield from sc.sys_close(fd)
        return commits, flushes

    commits, flushes = m.run(fsync_twice())
    assert journal.stats["commits"] == commits
    assert m.dev.stats.flushes == flushes + 1


def test_only_the_last_writers_close_discards_the_inode_preallocation():
    m = Machine(memory_mb=64)
    sb = m.mount("ext4", journal_mb=8)
    seen = {}

    def two_writers():
        a = yield from sc.sys_open("/f", O_CREAT | O_RDWR)
        b = yield from sc.sys_open("/f", O_RDWR)
        yield from sc.sys_write(a, 73728)
        yield from sc.sys_fsync(a)                 # written back while open: an inode PA
        yield from sc.sys_close(a)
        seen["after_first"] = len(inode_pas(sb))   # i_writecount was 2: kept
        yield from sc.sys_close(b)
        seen["after_last"] = len(inode_pas(sb))

    m.run(two_writers())
    assert seen == {"after_first": 1, "after_last": 0}
