"""The jbd2-like journal: credits, log space, commit, checkpoint, and the allocation context."""

from __future__ import annotations

import pytest

from reclaimlab.fs import buffer, journal as jbd2
from reclaimlab.fs.journal import (
    JournalConfig, jbd2__journal_start, jbd2_complete_transaction, jbd2_journal_dirty_metadata, jbd2_journal_force_commit,
    jbd2_journal_get_write_access, jbd2_journal_revoke, jbd2_journal_stop, journal_t,
)
from reclaimlab.mm.gfp import GFP_KERNEL, GFP_NOFS, __GFP_FS, __GFP_NOFAIL
from reclaimlab.sim import NSEC_PER_SEC, PF_MEMALLOC_NOFS, WaitQueue, current, wait_event, wake_up

from tests.fs.machine import Machine

LOG_START = 200_000


def make_journal(blocks: int = 1024, block_size: int = 4096, memory_mb: int = 128):
    m = Machine(memory_mb=memory_mb, disk_mb=2048)
    bdev = buffer.set_blocksize(m.sim, m.dev, block_size)
    j = journal_t(m.sim, "test", bdev, LOG_START, JournalConfig(blocks))
    return m, bdev, j


def modify(j: journal_t, bdev, blocks, credits: int | None = None):
    """One handle dirtying ``blocks``."""
    handle = yield from jbd2__journal_start(j, credits or len(blocks))
    for b in blocks:
        bh = yield from buffer.sb_getblk(bdev, b)
        buffer.set_buffer_uptodate(bh)
        yield from jbd2_journal_get_write_access(handle, bh)
        yield from jbd2_journal_dirty_metadata(handle, bh)
        buffer.brelse(bh)
    yield from jbd2_journal_stop(handle)


def test_a_handle_blocks_when_the_log_is_full_until_checkpoint_frees_space():
    m, bdev, j = make_journal()
    times = {}

    def fill_then_one_more():
        for t in range(4):                       # 4 commits of ~200 buffers: log ~80% full
            yield from modify(j, bdev, range(1000 * t, 1000 * t + 200))
            yield from jbd2_journal_force_commit(j)
        times["before"] = current().sim.now
        free_before = j.j_free
        yield from modify(j, bdev, [99_999])
        times["after"] = current().sim.now
        return free_before

    free_before = m.run(fill_then_one_more())
    assert free_before - jbd2.MIN_LOG_RESERVED_BLOCKS < j.j_max_transaction_buffers
    assert j.stats["log_space_waits"] >= 1 and j.stats["checkpoints"] >= 1
    assert m.tracepoints("jbd2_log_wait_for_space") and m.tracepoints("jbd2_checkpoint")
    assert j.j_free > free_before, "checkpointing moved the tail"
    assert times["after"] - times["before"] > 50_000, "the handle waited for checkpoint IO"
    assert jbd2.jbd2_journal_check_invariants(j) == []


def test_a_new_handle_waits_while_the_running_transaction_is_locked_for_commit():
    m, bdev, j = make_journal()
    wq = WaitQueue("test")
    state = {"a_holds": False, "release": False}
    log = []

    def holder():
        handle = yield from jbd2__journal_start(j, 4)
        state["a_holds"] = True
        wake_up(wq)
        yield 1_000_000                          # hold the handle for 1 ms
        log.append(("a_stop", current().sim.now))
        yield from jbd2_journal_stop(handle)

    def committer():
        yield from wait_event(wq, lambda: state["a_holds"])
        yield from jbd2_journal_force_commit(j)
        log.append(("committed", current().sim.now))

    def latecomer():
        yield from wait_event(wq, lambda: state["a_holds"])
        yield 10_000                              # after kjournald2 has locked the transaction
        log.append(("c_start", current().sim.now))
        handle = yield from jbd2__journal_start(j, 4)
        log.append(("c_got", current().sim.now))
        yield from jbd2_journal_stop(handle)

    m.sim.spawn(holder(), "a")
    m.sim.spawn(committer(), "b")
    m.run(latecomer(), comm="c")
    when = dict(log)
    assert when["c_got"] >= when["a_stop"] > when["c_start"]
    assert j.stats["locked_waits"] >= 1


def test_complete_transaction_commits_a_running_tid_and_returns_at_once_for_a_committed_one():
    m, bdev, j = make_journal()

    def log_then_complete_twice():
        yield from modify(j, bdev, [1, 2])
        tid = j.j_running_transaction.t_tid
        first = yield from jbd2_complete_transaction(j, tid)
        commits = j.stats["commits"]
        second = yield from jbd2_complete_transaction(j, tid)
        return tid, first, second, commits

    tid, first, second, commits = m.run(log_then_complete_twice())
    assert first and j.j_commit_sequence >= tid
    assert not second and j.stats["commits"] == commits


def test_a_handle_holds_jbd2_handle_a_nofs_scope_and_journal_info_for_its_lifetime():
    m, bdev, j = make_journal()
    seen = {}

    def task():
        me = current()
        handle = yield from jbd2__journal_start(j, 2)
        seen["inside"] = (me.journal_info is handle, bool(me.flags & PF_MEMALLOC_NOFS),
                          [lk.name for lk in me.held_locks])
        nested = yield from jbd2__journal_start(j, 2)
        seen["nested_same"] = nested is handle and handle.h_ref == 2
        yield from jbd2_journal_stop(nested)
        yield from jbd2_journal_stop(handle)
        seen["after"] = (me.journal_info, bool(me.flags & PF_MEMALLOC_NOFS),
                         [lk.name for lk in me.held_locks])

    m.run(task())
    assert seen["inside"] == (True, True, ["jbd2_handle"])
    assert seen["nested_same"]
    assert seen["after"] == (None, False, [])


def test_journal_heads_revokes_and_nofs_transactions_are_nofail(monkeypatch):
    m, bdev, j = make_journal()
    calls = []
    real = jbd2.kmem_cache_alloc

    def spy(cache, gfp):
        calls.append((cache.name, gfp))
        return (yield from real(cache, gfp))

    monkeypatch.setattr(jbd2, "kmem_cache_alloc", spy)

    def task():
        handle = yield from jbd2__journal_start(j, 4, GFP_NOFS)
        bh = yield from buffer.sb_getblk(bdev, 7)
        yield from jbd2_journal_get_write_access(handle, bh)
        yield from jbd2_journal_revoke(handle, 8)
        buffer.brelse(bh)
        yield from jbd2_journal_stop(handle)

    m.run(task())
    gfp = dict(calls)
    assert gfp["jbd2_journal_head"] & __GFP_NOFAIL
    assert gfp["jbd2_revoke_record_s"] & __GFP_NOFAIL
    assert gfp["jbd2_transaction_s"] & __GFP_NOFAIL      # the caller's mask had no __GFP_FS
    assert not gfp["jbd2_journal_handle"] & __GFP_NOFAIL


def test_transaction_struct_is_not_nofail_for_a_gfp_kernel_caller(monkeypatch):
    m, bdev, j = make_journal()
    calls = []
    real = jbd2.kmem_cache_alloc
    monkeypatch.setattr(jbd2, "kmem_cache_alloc",
                        lambda cache, gfp: (calls.append((cache.name, gfp)), real(cache, gfp))[1])

    def task():
        handle = yield from jbd2__journal_start(j, 1, GFP_KERNEL)
        yield from jbd2_journal_stop(handle)

    m.run(task())
    gfp = dict(calls)["jbd2_transaction_s"]
    assert gfp & __GFP_FS and not gfp & __GFP_NOFAIL


def test_modifying_a_64k_buffer_under_commit_makes_an_order4_nofail_frozen_copy(monkeypatch):
    m, bdev, j = make_journal(blocks=1024, block_size=65536, memory_mb=256)
    orders = []
    real = jbd2.alloc_pages

    def spy(gfp, order=0):
        orders.append((gfp, order))
        return (yield from real(gfp, order))

    monkeypatch.setattr(jbd2, "alloc_pages", spy)

    def task():
        yield from modify(j, bdev, range(5, 55))         # 50 buffers for the commit to tag
        jbd2.__jbd2_log_start_commit(j, j.j_running_transaction.t_tid)
        while j.j_committing_transaction is None:       # kjournald2 switched transactions...
            yield 1000
        shadowed = j.j_committing_transaction.t_shadow  # ...and is not writing the log yet
        yield from modify(j, bdev, [5])                  # the buffer is in the committing one
        yield from jbd2_journal_force_commit(j)
        return shadowed

    assert m.run(task()) is False
    assert any(order == 4 and gfp & __GFP_NOFAIL for gfp, order in orders)
    assert jbd2.jbd2_journal_check_invariants(j) == []


def test_modifying_a_buffer_the_commit_is_writing_to_the_log_waits_for_that_io():
    m, bdev, j = make_journal()
    seen = {}

    def task():
        yield from modify(j, bdev, [5])
        jbd2.__jbd2_log_start_commit(j, j.j_running_transaction.t_tid)
        while j.j_committing_transaction is None or not j.j_committing_transaction.t_shadow:
            yield 1000                                   # the log write of block 5 is in flight
        committing = j.j_committing_transaction
        yield from modify(j, bdev, [5])
        seen["shadowed_after"] = committing.t_shadow

    m.run(task())
    assert j.stats["shadow_waits"] >= 1
    assert seen["shadowed_after"] is False, "the handle went on only after the log IO"
    assert jbd2.jbd2_journal_check_invariants(j) == []


def test_kjournald2_commits_the_running_transaction_after_the_commit_interval():
    m, bdev, j = make_journal()
    m.run(modify(j, bdev, [1, 2, 3]))
    m.sim.run(until=6 * NSEC_PER_SEC)
    starts = m.tracepoints("jbd2_start_commit")
    assert starts and 5 * NSEC_PER_SEC <= starts[0][4] < 5 * NSEC_PER_SEC + 10_000_000
    assert j.stats["commits"] == 1 and j.j_running_transaction is None


@pytest.mark.parametrize("blocks", [0, 100, 1023])
def test_a_journal_smaller_than_a_transaction_is_rejected(blocks):
    with pytest.raises(ValueError, match="smaller than"):
        JournalConfig(blocks)


def test_rejournalling_a_checkpointed_buffer_takes_it_away_from_writeback_until_commit():
    """__jbd2_journal_file_buffer clears BH_Dirty (it becomes journal-dirty): the home write of a
    buffer in the running transaction must wait for its commit, which dirties it again."""
    m, bdev, j = make_journal()

    def commit_then_modify_again():
        yield from modify(j, bdev, [7])
        yield from jbd2_journal_force_commit(j)
        bh = jbd2.buffer.__find_get_block(bdev, 7)
        dirty_after_commit = buffer.buffer_dirty(bh)
        yield from modify(j, bdev, [7])
        dirty_while_journalled = buffer.buffer_dirty(bh)
        yield from jbd2_journal_force_commit(j)
        buffer.brelse(bh)
        return dirty_after_commit, dirty_while_journalled, buffer.buffer_dirty(bh)

    assert m.run(commit_then_modify_again()) == (True, False, True)


def test_checkpointing_a_buffer_journalled_again_forces_the_newer_commit_first():
    """__cp_buffer_busy: a buffer on an old checkpoint list but in the running transaction is
    not home yet; jbd2_log_do_checkpoint commits the newer transaction before moving the tail."""
    m, bdev, j = make_journal()

    def run():
        yield from modify(j, bdev, [5, 6])
        yield from jbd2_journal_force_commit(j)
        yield from modify(j, bdev, [5])
        commits = j.stats["commits"]
        yield from jbd2.jbd2_log_checkpoint_all(j)
        return commits

    commits = m.run(run())
    assert j.stats["commits"] == commits + 1
    assert j.j_checkpoint_transactions == [] and jbd2.jbd2_journal_check_invariants(j) == []


def test_the_journal_shrinker_releases_written_back_checkpointed_buffers_for_reclaim():
    """jbd2_journal_shrink_scan: once a checkpointed buffer was written home (here by the block
    device's writepages, as the flushers do), the shrinker drops its journal head, and
    try_to_free_buffers (release_folio) may then free the folio; a dirty one stays pinned."""
    from reclaimlab.mm.shrinker import shrink_control

    m, bdev, j = make_journal()

    def run():
        yield from modify(j, bdev, [3000, 4000])
        yield from jbd2_journal_force_commit(j)
        counted = jbd2.jbd2_journal_shrink_count(j, None)
        yield from bdev.mapping.a_ops.writepages(bdev.mapping, 1)   # block 3000's folio only
        sc = shrink_control(GFP_KERNEL, 0)
        sc.nr_to_scan = 128
        freed = yield from jbd2.jbd2_journal_shrink_scan(j, sc)
        return counted, freed

    assert m.run(run()) == (2, 1)
    assert jbd2.jbd2_journal_shrink_count(j, None) == 1
    f3000 = buffer._folio_buffers(bdev, 3000)[3000].b_folio
    f4000 = buffer._folio_buffers(bdev, 4000)[4000].b_folio
    assert bdev.mapping.a_ops.release_folio(f3000)
    assert not bdev.mapping.a_ops.release_folio(f4000)


def test_the_flushers_write_committed_metadata_home_once_it_has_expired():
    """The block device's inode is on the writeback lists like any dirty inode: after a commit
    dirties the metadata in bd_mapping, wb_workfn writes it once dirty_expire has passed, with
    no checkpoint, sync or unmount involved."""
    from reclaimlab.vfs import syscalls

    m = Machine(memory_mb=128)
    cfg = m.sim.vfs.config
    cfg.dirty_expire_interval_ns = NSEC_PER_SEC
    cfg.dirty_writeback_interval_ns = NSEC_PER_SEC // 2
    m.mount("ext4", commit_s=1.0)

    def create():
        fd = yield from syscalls.sys_open("/f", syscalls.O_CREAT | syscalls.O_RDWR)
        yield from syscalls.sys_close(fd)

    m.run(create())
    mapping = m.dev.bd_mapping
    j = m.sim.vfs.super_blocks[0].s_fs_info.s_journal
    m.sim.run(until=m.sim.now + 1_200_000_000)           # the commit interval has passed
    committed_dirty = len(mapping.dirty)
    m.sim.run(until=m.sim.now + 3 * NSEC_PER_SEC)        # expired, and a flusher period later
    assert j.stats["checkpoints"] == 0 and committed_dirty > 0
    assert not mapping.dirty and mapping.dirtied_when is None
