"""The jbd2-like journal: credits, log space, commit, checkpoint, and the allocation context."""

from __future__ import annotations

import pytest

from reclaimlab.fs import buffer, journal as jbd2
from reclaimlab.fs.journal import (
    JournalConfig, jbd2__journal_start, jbd2_journal_dirty_metadata, jbd2_journal_force_commit,
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
        yield from modify(j, bdev, [5])
        jbd2.__jbd2_log_start_commit(j, j.j_running_transaction.t_tid)
        while j.j_committing_transaction is None:       # let kjournald2 start writing the log
            yield 1000
        yield from modify(j, bdev, [5])                  # the buffer is in the committing one
        yield from jbd2_journal_force_commit(j)

    m.run(task())
    assert any(order == 4 and gfp & __GFP_NOFAIL for gfp, order in orders)
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
