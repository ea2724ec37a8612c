"""A jbd2-like journal: circular log, handles with credits, commit kthread, checkpointing.

Models ``fs/jbd2/{journal,transaction,commit,checkpoint,revoke}.c`` (mainline ~6.12):

- the log is ``j_total_len`` blocks on the filesystem's device; ``j_free`` counts blocks not
  holding a committed-but-not-checkpointed transaction. A running transaction may grow to
  ``j_max_transaction_buffers`` (a quarter of the log) before it is committed;
- ``start_this_handle`` joins the running transaction (creating it if needed — the transaction
  struct is ``__GFP_NOFAIL`` when the caller's mask lacks ``__GFP_FS``), and waits: while the
  running transaction is locked for commit (``wait_transaction_locked``), when it is full (starts
  its commit and waits), and when the log has less than a transaction's worth of space
  (``__jbd2_log_wait_for_space``: checkpoint IO under ``j_checkpoint_mutex``, or wait for the
  committing transaction);
- a handle modifying a buffer that the committing transaction is writing to the log (and has
  no frozen copy of) sleeps until that log IO completes (``BH_Shadow`` in
  ``do_get_write_access``); before the commit reaches the buffer it takes a frozen copy instead.
  Simplified: every buffer of the transaction is shadowed for the whole log write;
- a handle holds the lockdep map ``jbd2_handle`` and a ``memalloc_nofs_save`` scope for its whole
  life and sits in ``current->journal_info``; nested starts only take another reference;
- ``kjournald2`` commits when asked or when the running transaction is ``j_commit_interval`` old
  (5 s): lock, wait for ``t_updates`` to drain, write descriptor + metadata + revoke + commit
  blocks to the log, then file the buffers on the transaction's checkpoint list (dirty in the
  block device's page cache, so flushers or a checkpoint write them home);
- checkpointed buffers written home by the flushers leave the checkpoint lists at the next
  commit (``__jbd2_journal_clean_checkpoint_list``) or, under memory pressure, through the
  journal's shrinker (``jbd2_journal_shrink_scan``, 5.16+), which lets reclaim free their folios;
- journal heads (``journal_alloc_journal_head``), revoke records and frozen copies of buffers
  being committed (``jbd2_alloc``) are ``GFP_NOFS|__GFP_NOFAIL`` allocations.

Simplified: no fast commits, no reserved handles, no barriers (``jbd2_journal_lock_updates``); the
log wraps implicitly (one sequential write per commit); a buffer's checkpoint membership moves to
the newest transaction that committed it; journal superblock updates are one block write when the
tail moves; no abort path other than an explicit error when no progress is possible.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from reclaimlab.fs import buffer
from reclaimlab.fs.buffer import BufferCache, buffer_head
from reclaimlab.mm.gfp import GFP_NOFS, __GFP_FS, __GFP_NOFAIL
from reclaimlab.mm.page_alloc import alloc_pages, free_pages
from reclaimlab.mm.shrinker import DEFAULT_SEEKS, Shrinker, register_shrinker, unregister_shrinker
from reclaimlab.mm.slab import kmem_cache_alloc, kmem_cache_create, kmem_cache_free
from reclaimlab.sim import (
    NSEC_PER_SEC, LockdepMap, Mutex, Run, WaitQueue, current, lock_map_acquire, lock_map_release,
    memalloc_nofs_restore, memalloc_nofs_save, mutex_lock, mutex_unlock, wait_event, wake_up,
)

JBD2_MIN_JOURNAL_BLOCKS = 1024
MIN_LOG_RESERVED_BLOCKS = 32      # jbd2_log_space_left's "allow for rounding errors"
JBD2_NR_BATCH = 64                # buffers written per checkpoint batch
JBD2_DEFAULT_MAX_COMMIT_AGE = 5   # seconds

# Transaction states (include/linux/jbd2.h, the subset modelled).
T_RUNNING, T_LOCKED, T_COMMIT, T_FINISHED = "T_RUNNING", "T_LOCKED", "T_COMMIT", "T_FINISHED"

# Object sizes (x86-64) for the slab caches jbd2 creates.
JOURNAL_HEAD_SIZE = 112
JBD2_HANDLE_SIZE = 56
JBD2_REVOKE_RECORD_SIZE = 32
TRANSACTION_SIZE = 256

# CPU cost of modelled operations, in ns (order of magnitude of the kernel's code paths).
START_HANDLE_NS = 300             # start_this_handle, uncontended
STOP_HANDLE_NS = 200              # jbd2_journal_stop
GET_WRITE_ACCESS_NS = 250         # do_get_write_access, buffer already journalled
DIRTY_METADATA_NS = 150           # jbd2_journal_dirty_metadata
# The bursts of the per-buffer and per-handle paths, built once: a ``Run`` is only read.
_START_HANDLE = Run(START_HANDLE_NS)
_STOP_HANDLE = Run(STOP_HANDLE_NS)
_GET_WRITE_ACCESS = Run(GET_WRITE_ACCESS_NS)
_DIRTY_METADATA = Run(DIRTY_METADATA_NS)
COMMIT_NS_PER_BUFFER = 400        # commit: tag, checksum, refile per metadata buffer
CHECKPOINT_NS_PER_BUFFER = 150    # checkpoint list walk per buffer


@dataclass
class JournalConfig:
    """Journal geometry and timing; defaults are mke2fs/jbd2 defaults."""

    blocks: int                                   # j_total_len, in filesystem blocks
    commit_interval_ns: int = JBD2_DEFAULT_MAX_COMMIT_AGE * NSEC_PER_SEC
    nofs_scope: bool = True                       # handles run in memalloc_nofs_save (4.13+)

    def __post_init__(self) -> None:
        if self.blocks < JBD2_MIN_JOURNAL_BLOCKS:
            raise ValueError(
                f"journal of {self.blocks} blocks is smaller than JBD2_MIN_JOURNAL_BLOCKS "
                f"({JBD2_MIN_JOURNAL_BLOCKS}): a transaction may use a quarter of the log, and a "
                f"smaller log cannot hold one transaction plus the commit overhead")
        if self.commit_interval_ns <= 0:
            raise ValueError(f"journal commit interval must be > 0 ns, "
                             f"got {self.commit_interval_ns}")


class Jbd2Caches:
    """jbd2's global slab caches (``jbd2_journal_head_cache``, ``jbd2_handle_cache``, ...)."""

    def __init__(self, sim: Any) -> None:
        self.journal_head = kmem_cache_create(sim, "jbd2_journal_head", JOURNAL_HEAD_SIZE)
        self.handle = kmem_cache_create(sim, "jbd2_journal_handle", JBD2_HANDLE_SIZE)
        self.revoke_record = kmem_cache_create(sim, "jbd2_revoke_record_s", JBD2_REVOKE_RECORD_SIZE)
        self.transaction = kmem_cache_create(sim, "jbd2_transaction_s", TRANSACTION_SIZE)
        self.frozen: dict[int, Any] = {}     # jbd2_slab[]: caches for sub-page frozen copies

    def frozen_cache(self, sim: Any, size: int) -> Any:
        if size not in self.frozen:
            self.frozen[size] = kmem_cache_create(sim, f"jbd2_{size // 1024}k", size)
        return self.frozen[size]


def jbd2_caches(sim: Any) -> Jbd2Caches:
    """The simulation's jbd2 caches, created on first use (``jbd2_journal_init_caches``)."""
    caches = getattr(sim, "jbd2", None)
    if caches is None:
        caches = sim.jbd2 = Jbd2Caches(sim)
    return caches


class journal_head:
    """``struct journal_head``: a buffer's journalling state."""

    __slots__ = ("bh", "obj", "b_transaction", "b_next_transaction", "b_cp_transaction",
                 "b_frozen", "b_modified_tid")

    def __init__(self, bh: buffer_head, obj: Any) -> None:
        self.bh = bh
        self.obj = obj
        self.b_transaction: transaction_t | None = None
        self.b_next_transaction: transaction_t | None = None
        self.b_cp_transaction: transaction_t | None = None
        self.b_frozen: tuple[str, Any] | None = None
        self.b_modified_tid = 0          # transaction whose handle was charged a credit for it


class transaction_t:
    """``transaction_t``: one compound transaction."""

    __slots__ = ("t_tid", "t_state", "t_updates", "t_outstanding_credits", "t_buffers",
                 "t_revokes", "t_checkpoint_list", "t_log_blocks", "t_expires", "t_timer", "obj",
                 "t_handle_count", "t_shadow")

    def __init__(self, tid: int, obj: Any) -> None:
        self.t_tid = tid
        self.t_state = T_RUNNING
        self.t_updates = 0
        self.t_outstanding_credits = 0
        self.t_buffers: list[journal_head] = []
        self.t_revokes: list[Any] = []
        self.t_checkpoint_list: list[journal_head] = []
        self.t_log_blocks = 0
        self.t_expires = 0
        self.t_timer: Any = None
        self.obj = obj
        self.t_handle_count = 0
        self.t_shadow = False            # its metadata buffers are being written to the log

    def __repr__(self) -> str:
        return f"transaction {self.t_tid} ({self.t_state})"


class handle_t:
    """``handle_t``: one atomic filesystem operation's share of a transaction."""

    __slots__ = ("h_journal", "h_transaction", "h_total_credits", "h_ref", "h_sync", "obj",
                 "saved_alloc_context")

    def __init__(self, journal: "journal_t", obj: Any, nblocks: int) -> None:
        self.h_journal = journal
        self.h_transaction: transaction_t | None = None
        self.h_total_credits = nblocks
        self.h_ref = 1
        self.h_sync = False
        self.obj = obj
        self.saved_alloc_context = 0


class journal_t:
    """``journal_t``: an internal journal occupying ``blocks`` blocks of ``bdev`` at ``first``."""

    def __init__(self, sim: Any, name: str, bdev: BufferCache, first: int,
                 config: JournalConfig) -> None:
        self.sim = sim
        self.j_devname = name
        self.j_dev = bdev
        self.j_first = first
        self.j_total_len = config.blocks
        self.j_free = config.blocks
        self.j_max_transaction_buffers = config.blocks // 4
        self.j_commit_interval = config.commit_interval_ns
        self.config = config
        self.j_running_transaction: transaction_t | None = None
        self.j_committing_transaction: transaction_t | None = None
        self.j_checkpoint_transactions: list[transaction_t] = []
        self.j_transaction_sequence = 1
        self.j_commit_sequence = 0
        self.j_commit_request = 0
        self.j_head = 0                       # next log block to write, relative to j_first
        self.j_unmount = False
        self.j_wait_transaction_locked = WaitQueue(f"{name}:j_wait_transaction_locked")
        self.j_wait_updates = WaitQueue(f"{name}:j_wait_updates")
        self.j_wait_commit = WaitQueue(f"{name}:j_wait_commit")
        self.j_wait_done_commit = WaitQueue(f"{name}:j_wait_done_commit")
        # wait_on_bit_io(BH_Shadow) of the transaction's buffers (one queue for all of them)
        self.j_wait_shadow = WaitQueue(f"{name}:BH_Shadow")
        self.j_checkpoint_mutex = Mutex("&journal->j_checkpoint_mutex")
        self.j_trans_commit_map = LockdepMap("jbd2_handle")
        self.caches = jbd2_caches(sim)
        self.j_shrinker = Shrinker(f"jbd2-journal:{name}", partial(jbd2_journal_shrink_count, self),
                                   partial(jbd2_journal_shrink_scan, self), seeks=DEFAULT_SEEKS)
        register_shrinker(sim, self.j_shrinker)
        self.j_task = sim.kthread_run(kjournald2, f"jbd2/{name}", self)
        self.stats = {"commits": 0, "checkpoints": 0, "log_space_waits": 0,
                      "locked_waits": 0, "shadow_waits": 0, "handles": 0}

    def __repr__(self) -> str:
        return f"journal {self.j_devname}"


# ------------------------------------------------------------------ space accounting
def jbd2_log_space_left(journal: journal_t) -> int:
    """``jbd2_log_space_left``: free log blocks minus what the committing transaction may use."""
    free = journal.j_free - MIN_LOG_RESERVED_BLOCKS
    if journal.j_committing_transaction is not None:
        free -= journal.j_committing_transaction.t_outstanding_credits
    return max(free, 0)


def _log_blocks_needed(journal: journal_t, t: transaction_t) -> int:
    """Log blocks a commit of ``t`` writes: descriptors + metadata + revoke blocks + commit."""
    bs = journal.j_dev.block_size
    tags_per_desc = max(1, (bs - 12) // 16)
    revokes_per_block = max(1, (bs - 16) // 8)
    nbuf = len(t.t_buffers)
    return (nbuf + -(-nbuf // tags_per_desc) + -(-len(t.t_revokes) // revokes_per_block) + 1)


# ------------------------------------------------------------------ handles
def jbd2__journal_start(journal: journal_t, nblocks: int, gfp: int = GFP_NOFS):
    """``jbd2__journal_start``: a handle for ``nblocks`` metadata buffers, in ``journal_info``."""
    task = current()
    handle = task.journal_info
    if handle is not None:
        if handle.h_journal is not journal:
            raise AssertionError(f"{task!r}: nested handle on {journal!r} inside one on "
                                 f"{handle.h_journal!r}")
        handle.h_ref += 1
        return handle
    if nblocks > journal.j_max_transaction_buffers:
        raise ValueError(f"JBD2: {task.comm} wants too many credits ({nblocks} > "
                         f"{journal.j_max_transaction_buffers}) on {journal!r}")
    obj = yield from kmem_cache_alloc(journal.caches.handle, gfp)
    handle = handle_t(journal, obj, nblocks)
    yield from start_this_handle(journal, handle, gfp)
    task.journal_info = handle
    journal.stats["handles"] += 1
    return handle


def jbd2_might_wait_for_commit(journal: journal_t) -> None:
    """``jbd2_might_wait_for_commit``: tell lockdep this context may wait for a commit."""
    lock_map_acquire(journal.j_trans_commit_map)
    lock_map_release(journal.j_trans_commit_map)


def start_this_handle(journal: journal_t, handle: handle_t, gfp: int):
    """``start_this_handle``: join (or create) the running transaction, waiting as needed."""
    yield _START_HANDLE
    jbd2_might_wait_for_commit(journal)
    while True:
        if journal.j_running_transaction is None:
            yield from jbd2_get_transaction(journal, gfp)
            continue
        if (yield from add_transaction_credits(journal, handle.h_total_credits)):
            continue
        break
    t = journal.j_running_transaction
    handle.h_transaction = t
    t.t_updates += 1
    t.t_handle_count += 1
    lock_map_acquire(journal.j_trans_commit_map, read=True)
    if journal.config.nofs_scope:
        handle.saved_alloc_context = memalloc_nofs_save()


def jbd2_get_transaction(journal: journal_t, gfp: int):
    """Allocate and install a new running transaction (``jbd2_get_transaction``).

    ``start_this_handle`` adds ``__GFP_NOFAIL`` when the mask lacks ``__GFP_FS``: the caller may be
    inside writeback and must not fail.
    """
    if not gfp & __GFP_FS:
        gfp |= __GFP_NOFAIL
    obj = yield from kmem_cache_alloc(journal.caches.transaction, gfp)
    if journal.j_running_transaction is not None:      # another task installed one meanwhile
        kmem_cache_free(journal.caches.transaction, obj)
        return
    t = transaction_t(journal.j_transaction_sequence, obj)
    journal.j_transaction_sequence += 1
    t.t_expires = journal.sim.now + journal.j_commit_interval
    t.t_timer = journal.sim.call_at(t.t_expires, commit_timeout, (journal, t.t_tid))
    journal.j_running_transaction = t


def commit_timeout(arg: tuple[journal_t, int]) -> None:
    """``commit_timeout``: the running transaction is ``j_commit_interval`` old: wake
    kjournald2."""
    journal, tid = arg
    t = journal.j_running_transaction
    if t is not None and t.t_tid == tid:
        __jbd2_log_start_commit(journal, tid)


def add_transaction_credits(journal: journal_t, blocks: int):
    """``add_transaction_credits``: reserve ``blocks``; True if the caller must retry after a
    wait."""
    t = journal.j_running_transaction
    if t.t_state != T_RUNNING:
        yield from wait_transaction_locked(journal)
        return True
    if t.t_outstanding_credits + blocks > journal.j_max_transaction_buffers:
        yield from wait_transaction_locked(journal)
        return True
    if jbd2_log_space_left(journal) < journal.j_max_transaction_buffers:
        jbd2_might_wait_for_commit(journal)
        yield from __jbd2_log_wait_for_space(journal)
        return True
    t.t_outstanding_credits += blocks
    return False


def wait_transaction_locked(journal: journal_t):
    """``wait_transaction_locked``: make sure the running transaction is being committed and
    sleep until kjournald2 has switched it to committing (a new one may then start)."""
    t = journal.j_running_transaction
    __jbd2_log_start_commit(journal, t.t_tid)
    jbd2_might_wait_for_commit(journal)
    journal.stats["locked_waits"] += 1
    yield from wait_event(journal.j_wait_transaction_locked,
                          lambda: journal.j_running_transaction is not t)


def jbd2_journal_stop(handle: handle_t):
    """``jbd2_journal_stop``: drop a reference; the last one returns unused credits."""
    handle.h_ref -= 1
    if handle.h_ref > 0:
        return
    task = current()
    journal = handle.h_journal
    t = handle.h_transaction
    yield _STOP_HANDLE
    t.t_outstanding_credits -= handle.h_total_credits
    t.t_updates -= 1
    if t.t_updates == 0:
        wake_up(journal.j_wait_updates)
    lock_map_release(journal.j_trans_commit_map)
    if journal.config.nofs_scope:
        memalloc_nofs_restore(handle.saved_alloc_context)
    task.journal_info = None
    kmem_cache_free(journal.caches.handle, handle.obj)
    if handle.h_sync:
        __jbd2_log_start_commit(journal, t.t_tid)
        yield from jbd2_log_wait_commit(journal, t.t_tid)


def jbd2_journal_extend(handle: handle_t, nblocks: int) -> int:
    """``jbd2_journal_extend``: add credits in place; 0 on success, 1 if the transaction cannot
    take them (the caller restarts)."""
    journal = handle.h_journal
    t = handle.h_transaction
    if t.t_state != T_RUNNING or \
            t.t_outstanding_credits + nblocks > journal.j_max_transaction_buffers:
        return 1
    t.t_outstanding_credits += nblocks
    handle.h_total_credits += nblocks
    return 0


def jbd2_journal_restart(handle: handle_t, nblocks: int):
    """``jbd2__journal_restart``: leave the current transaction (asking for its commit) and start
    again with ``nblocks`` credits in the next one — blocking like any ``start_this_handle``."""
    journal = handle.h_journal
    t = handle.h_transaction
    t.t_outstanding_credits -= handle.h_total_credits
    t.t_updates -= 1
    if t.t_updates == 0:
        wake_up(journal.j_wait_updates)
    lock_map_release(journal.j_trans_commit_map)
    if journal.config.nofs_scope:
        memalloc_nofs_restore(handle.saved_alloc_context)
    __jbd2_log_start_commit(journal, t.t_tid)
    handle.h_total_credits = nblocks
    yield from start_this_handle(journal, handle, GFP_NOFS)


def journal_current_handle() -> handle_t | None:
    """``journal_current_handle``: the handle in ``current->journal_info``."""
    return current().journal_info


# ------------------------------------------------------------------ buffers in a transaction
def jbd2_journal_add_journal_head(journal: journal_t, bh: buffer_head):
    """``jbd2_journal_add_journal_head``: attach a journal head, ``GFP_NOFS|__GFP_NOFAIL``."""
    if bh.b_jh is None:
        obj = yield from kmem_cache_alloc(journal.caches.journal_head, GFP_NOFS | __GFP_NOFAIL)
        if bh.b_jh is None:
            bh.b_jh = journal_head(bh, obj)
            bh.b_count += 1            # the journal head pins the buffer
        else:
            kmem_cache_free(journal.caches.journal_head, obj)
    return bh.b_jh


def jbd2_journal_get_write_access(handle: handle_t, bh: buffer_head):
    """``jbd2_journal_get_write_access``: declare intent to modify a metadata buffer.

    A buffer owned by the committing transaction gets a frozen copy first while the commit has
    not reached it yet (``do_get_write_access`` → ``jbd2_alloc(GFP_NOFS|__GFP_NOFAIL)``):
    block-sized, so order 4 for 64 KiB blocks on 4 KiB pages. Once the commit is writing it to
    the log without a copy (``BH_Shadow``) the handle waits for that IO instead
    (``wait_on_shadow``). ``do_get_write_access`` first waits for a home write in
    flight (``lock_buffer``); filing the buffer on the running transaction clears its dirty bit
    (``__jbd2_journal_file_buffer``: ``test_clear_buffer_dirty`` → ``BH_JBDDirty``), so
    writeback never writes uncommitted metadata home; the commit dirties it again.
    """
    journal = handle.h_journal
    yield _GET_WRITE_ACCESS
    if bh.b_state & buffer.BH_Lock:  # wait_on_buffer's own test: most buffers are not under IO
        yield from buffer.wait_on_buffer(bh)
    jh = bh.b_jh
    if jh is None:
        jh = yield from jbd2_journal_add_journal_head(journal, bh)
    t = handle.h_transaction
    while True:
        if jh.b_transaction is journal.j_committing_transaction and jh.b_transaction is not None:
            if jh.b_frozen is None and jh.b_transaction.t_shadow:
                yield from wait_on_shadow(journal, jh)
                continue
            if jh.b_frozen is None:
                # The copy is allocated with no lock held and the state re-checked
                # (``goto repeat``): the commit may finish while the allocation sleeps.
                frozen = yield from jbd2_alloc(journal, bh.b_size, GFP_NOFS | __GFP_NOFAIL)
                if jh.b_frozen is None and jh.b_transaction is journal.j_committing_transaction \
                        and jh.b_transaction is not None:
                    jh.b_frozen = frozen
                else:
                    jbd2_free(frozen)
                continue
            jh.b_next_transaction = t
        elif jh.b_transaction is None:
            buffer.clear_buffer_dirty(bh)
            jh.b_transaction = t
            t.t_buffers.append(jh)
        return


def wait_on_shadow(journal: journal_t, jh: journal_head):
    """``do_get_write_access``'s ``wait_on_bit_io(&bh->b_state, BH_Shadow)``: the committing
    transaction is writing this buffer (not a frozen copy of it) to the log, so its contents may
    not change until that IO completes — the handle sleeps uninterruptibly, then retries."""
    committing = jh.b_transaction
    journal.stats["shadow_waits"] += 1
    yield from wait_event(journal.j_wait_shadow,
                          lambda: jh.b_transaction is not committing or not committing.t_shadow)


def jbd2_journal_dirty_metadata(handle: handle_t, bh: buffer_head):
    """``jbd2_journal_dirty_metadata``: the buffer joins the transaction; a credit on first
    use."""
    yield _DIRTY_METADATA
    jh = bh.b_jh
    if jh is None:
        raise AssertionError(f"dirty_metadata without get_write_access on block {bh.b_blocknr}")
    t = handle.h_transaction
    if (jh.b_transaction is t or jh.b_next_transaction is t) and jh.b_modified_tid != t.t_tid:
        jh.b_modified_tid = t.t_tid
        handle.h_total_credits -= 1
        if handle.h_total_credits < 0:
            raise AssertionError(f"JBD2: handle of {current()!r} ran out of credits "
                                 f"(block {bh.b_blocknr})")


def jbd2_journal_revoke(handle: handle_t, blocknr: int):
    """``jbd2_journal_revoke``: record a freed metadata block (revoke record, NOFAIL)."""
    journal = handle.h_journal
    obj = yield from kmem_cache_alloc(journal.caches.revoke_record, GFP_NOFS | __GFP_NOFAIL)
    handle.h_transaction.t_revokes.append((blocknr, obj))


def jbd2_alloc(journal: journal_t, size: int, gfp: int):
    """``jbd2_alloc``: a block-sized buffer — a slab object below a page, else pages."""
    page_size = journal.j_dev.page_size
    if size < page_size:
        cache = journal.caches.frozen_cache(journal.sim, size)
        obj = yield from kmem_cache_alloc(cache, gfp)
        return ("slab", (cache, obj))
    order = (size // page_size).bit_length() - 1
    pfn = yield from alloc_pages(gfp, order)
    return ("pages", (pfn, order))


def jbd2_free(frozen: tuple[str, Any]) -> None:
    """``jbd2_free``."""
    kind, what = frozen
    if kind == "slab":
        kmem_cache_free(*what)
    else:
        free_pages(*what)


# ------------------------------------------------------------------ commit
def __jbd2_log_start_commit(journal: journal_t, tid: int) -> bool:
    """``__jbd2_log_start_commit``: ask kjournald2 to commit transaction ``tid``."""
    if journal.j_commit_request >= tid:
        return False
    journal.j_commit_request = tid
    wake_up(journal.j_wait_commit)
    return True


def jbd2_log_wait_commit(journal: journal_t, tid: int):
    """``jbd2_log_wait_commit``: sleep until transaction ``tid`` has committed."""
    yield from wait_event(journal.j_wait_done_commit, lambda: journal.j_commit_sequence >= tid)


def jbd2_complete_transaction(journal: journal_t, tid: int):
    """``jbd2_complete_transaction``: if ``tid`` is the running transaction, ask for its commit;
    wait until ``tid`` has committed. Nothing to wait for when it already has. Returns whether
    it waited (the commit then sent the device flush fsync needs)."""
    running, committing = journal.j_running_transaction, journal.j_committing_transaction
    if running is not None and running.t_tid == tid:
        __jbd2_log_start_commit(journal, tid)
    elif committing is None or committing.t_tid != tid:
        return False
    yield from jbd2_log_wait_commit(journal, tid)
    return True


def jbd2_journal_force_commit(journal: journal_t):
    """``jbd2_journal_force_commit``: commit the running transaction (if any) and wait for it."""
    t = journal.j_running_transaction or journal.j_committing_transaction
    if t is None:
        return
    __jbd2_log_start_commit(journal, t.t_tid)
    yield from jbd2_log_wait_commit(journal, t.t_tid)


def kjournald2(journal: journal_t):
    """``kjournald2``: the commit thread; sleeps until a commit is requested or the log unmounts."""
    def work_to_do() -> bool:
        return journal.j_unmount or journal.j_commit_request > journal.j_commit_sequence

    while True:
        t = journal.j_running_transaction
        if t is not None and journal.j_commit_request >= t.t_tid:
            yield from jbd2_journal_commit_transaction(journal)
            continue
        if journal.j_unmount:
            journal.j_task = None
            wake_up(journal.j_wait_done_commit)
            return
        yield from wait_event(journal.j_wait_commit, work_to_do, state="S")


def jbd2_journal_commit_transaction(journal: journal_t):
    """``jbd2_journal_commit_transaction``: lock, drain updates, write the log, file checkpoints."""
    task = current()
    sim = journal.sim
    t = journal.j_running_transaction
    sim.emit("tracepoint", task, journal, {"name": "jbd2_start_commit", "tid": t.t_tid})
    t.t_state = T_LOCKED
    if t.t_timer is not None:
        t.t_timer.cancel()
    __jbd2_journal_clean_checkpoint_list(journal)
    yield from wait_event(journal.j_wait_updates, lambda: t.t_updates == 0)
    t.t_state = T_COMMIT
    journal.j_committing_transaction = t
    journal.j_running_transaction = None
    wake_up(journal.j_wait_transaction_locked)
    t.t_log_blocks = _log_blocks_needed(journal, t)
    yield Run(COMMIT_NS_PER_BUFFER * len(t.t_buffers))
    t.t_shadow = True                     # jbd2_journal_write_metadata_buffer: BJ_Shadow
    yield from jbd2_write_log(journal, t.t_log_blocks)
    t.t_shadow = False                    # the log IO is done: clear_buffer_shadow, wake_up_bit
    wake_up(journal.j_wait_shadow)
    journal.j_free -= t.t_log_blocks
    jbd2_journal_file_checkpoints(journal, t)
    for _, obj in t.t_revokes:
        kmem_cache_free(journal.caches.revoke_record, obj)
    t.t_revokes = []
    t.t_state = T_FINISHED
    journal.j_committing_transaction = None
    journal.j_commit_sequence = t.t_tid
    journal.j_checkpoint_transactions.append(t)
    journal.stats["commits"] += 1
    sim.emit("tracepoint", task, journal, {"name": "jbd2_end_commit", "tid": t.t_tid,
                                           "log_blocks": t.t_log_blocks})
    jbd2_cleanup_journal_tail_nowrite(journal)
    wake_up(journal.j_wait_done_commit)
    wake_up(journal.j_wait_transaction_locked)


def jbd2_write_log(journal: journal_t, nblocks: int):
    """Write ``nblocks`` of log at the head (``jbd2_journal_next_log_block`` + ``submit_bh``)."""
    start = journal.j_first + journal.j_head
    first = min(nblocks, journal.j_total_len - journal.j_head)
    yield from buffer.submit_bio_wait(journal.j_dev, "write", start, first)
    if nblocks > first:                       # the log wraps
        yield from buffer.submit_bio_wait(journal.j_dev, "write", journal.j_first, nblocks - first)
    journal.j_head = (journal.j_head + nblocks) % journal.j_total_len


def jbd2_journal_file_checkpoints(journal: journal_t, t: transaction_t) -> None:
    """After a commit: each buffer goes to ``t``'s checkpoint list and is dirtied in the bdev cache.

    A buffer already re-used by the next transaction is refiled there and stays journal-dirty
    rather than dirty (``__jbd2_journal_refile_buffer``), so writeback cannot write the running
    transaction's content home before it commits.
    """
    for jh in t.t_buffers:
        if jh.b_cp_transaction is not None and jh.b_cp_transaction is not t:
            jh.b_cp_transaction.t_checkpoint_list.remove(jh)
        jh.b_cp_transaction = t
        t.t_checkpoint_list.append(jh)
        if jh.b_frozen is not None:
            jbd2_free(jh.b_frozen)
            jh.b_frozen = None
        nxt = jh.b_next_transaction
        jh.b_next_transaction = None
        jh.b_transaction = nxt
        if nxt is not None:
            nxt.t_buffers.append(jh)      # stays journal-dirty: its home write waits again
        else:
            buffer.mark_buffer_dirty(jh.bh)
    t.t_buffers = []


# ------------------------------------------------------------------ checkpoint
def __jbd2_log_wait_for_space(journal: journal_t):
    """``__jbd2_log_wait_for_space``: checkpoint, or wait for the commit, until a transaction
    fits."""
    nblocks = journal.j_max_transaction_buffers
    journal.stats["log_space_waits"] += 1
    journal.sim.emit("tracepoint", current(), journal,
                     {"name": "jbd2_log_wait_for_space", "free": journal.j_free})
    while jbd2_log_space_left(journal) < nblocks:
        yield from mutex_lock(journal.j_checkpoint_mutex)
        if jbd2_log_space_left(journal) < nblocks:
            committing = journal.j_committing_transaction
            if journal.j_checkpoint_transactions:
                yield from jbd2_log_do_checkpoint(journal)
            elif committing is not None:
                mutex_unlock(journal.j_checkpoint_mutex)
                yield from jbd2_log_wait_commit(journal, committing.t_tid)
                continue
            else:
                mutex_unlock(journal.j_checkpoint_mutex)
                raise AssertionError(
                    f"{journal!r}: needed {nblocks} log blocks and only had "
                    f"{jbd2_log_space_left(journal)} available, with nothing to checkpoint")
        mutex_unlock(journal.j_checkpoint_mutex)


def __cp_buffer_busy(jh: journal_head) -> bool:
    """``__cp_buffer_busy``: a checkpointed buffer is not yet home while it is dirty, under IO,
    or journalled again by a newer transaction (``b_transaction``)."""
    return jh.b_transaction is not None or bool(jh.bh.b_state & (buffer.BH_Dirty | buffer.BH_Lock))


def jbd2_log_do_checkpoint(journal: journal_t):
    """``jbd2_log_do_checkpoint``: write back the oldest transaction's buffers, advance the tail.
    A buffer journalled again by a newer transaction forces that transaction's commit first and
    the walk is retried (the commit moves the buffer to the newer checkpoint list)."""
    task = current()
    t = journal.j_checkpoint_transactions[0]
    while True:
        newer = next((jh.b_transaction for jh in t.t_checkpoint_list
                      if jh.b_transaction is not None), None)
        if newer is None:
            break
        __jbd2_log_start_commit(journal, newer.t_tid)
        yield from jbd2_log_wait_commit(journal, newer.t_tid)
        if not journal.j_checkpoint_transactions or journal.j_checkpoint_transactions[0] is not t:
            return
    journal.stats["checkpoints"] += 1
    journal.sim.emit("tracepoint", task, journal, {"name": "jbd2_checkpoint", "tid": t.t_tid,
                                                   "buffers": len(t.t_checkpoint_list)})
    yield Run(CHECKPOINT_NS_PER_BUFFER * len(t.t_checkpoint_list))
    dirty = [jh.bh for jh in t.t_checkpoint_list if buffer.buffer_dirty(jh.bh)]
    for i in range(0, len(dirty), JBD2_NR_BATCH):
        yield from buffer.write_dirty_buffers(dirty[i:i + JBD2_NR_BATCH])
    for jh in list(t.t_checkpoint_list):
        if not __cp_buffer_busy(jh):
            __jbd2_journal_remove_checkpoint(journal, jh)
    yield from jbd2_cleanup_journal_tail(journal)


def __jbd2_journal_clean_checkpoint_list(journal: journal_t) -> None:
    """``__jbd2_journal_clean_checkpoint_list``: drop buffers already written back (by the
    flushers or ``sync``) from the checkpoint lists, without IO; the tail may then move."""
    for t in list(journal.j_checkpoint_transactions):
        for jh in list(t.t_checkpoint_list):
            if not __cp_buffer_busy(jh):
                __jbd2_journal_remove_checkpoint(journal, jh)
    jbd2_cleanup_journal_tail_nowrite(journal)


def jbd2_journal_shrink_count(journal: journal_t, sc: Any) -> int:
    """``jbd2_journal_shrink_count``: buffers on the checkpoint lists
    (``j_checkpoint_jh_count``)."""
    return sum(len(t.t_checkpoint_list) for t in journal.j_checkpoint_transactions)


def jbd2_journal_shrink_scan(journal: journal_t, sc: Any):
    """``jbd2_journal_shrink_scan`` → ``jbd2_journal_shrink_checkpoint_list`` (5.16+, 4ba3fcdde7e3):
    release the journal heads of checkpointed buffers already written home (by the flushers),
    oldest transaction first, without IO, so reclaim can then free their folios
    (``try_to_free_buffers`` refuses a buffer with a journal head). Returns buffers freed."""
    freed = scanned = 0
    for t in list(journal.j_checkpoint_transactions):
        for jh in list(t.t_checkpoint_list):
            if scanned >= sc.nr_to_scan:
                break
            scanned += 1
            if not __cp_buffer_busy(jh):
                __jbd2_journal_remove_checkpoint(journal, jh)
                freed += 1
    # sc.nr_scanned is left at nr_to_scan, as the kernel's jbd2_journal_shrink_scan does: a
    # pass over lists holding only busy buffers still counts as scanned, so do_shrink_slab ends.
    yield Run(CHECKPOINT_NS_PER_BUFFER * max(scanned, 1))
    jbd2_cleanup_journal_tail_nowrite(journal)
    return freed


def jbd2_journal_flush(journal: journal_t):
    """``jbd2_journal_flush``: commit everything and checkpoint it all (freeze, unmount)."""
    yield from jbd2_journal_force_commit(journal)
    yield from jbd2_log_checkpoint_all(journal)


def __jbd2_journal_remove_checkpoint(journal: journal_t, jh: journal_head) -> None:
    """``__jbd2_journal_remove_checkpoint``: a clean buffer leaves the checkpoint list."""
    t = jh.b_cp_transaction
    if t is None:
        raise AssertionError(f"journal head of block {jh.bh.b_blocknr} is on a checkpoint list "
                             f"but has no b_cp_transaction")
    t.t_checkpoint_list.remove(jh)
    jh.b_cp_transaction = None
    if jh.b_transaction is None:
        jbd2_journal_put_journal_head(journal, jh)


def jbd2_journal_put_journal_head(journal: journal_t, jh: journal_head) -> None:
    """``jbd2_journal_put_journal_head``: detach and free an unused journal head."""
    bh = jh.bh
    bh.b_jh = None
    bh.b_count -= 1
    kmem_cache_free(journal.caches.journal_head, jh.obj)


def jbd2_cleanup_journal_tail_nowrite(journal: journal_t) -> bool:
    """Advance the tail past fully checkpointed transactions, freeing their log space."""
    moved = False
    cps = journal.j_checkpoint_transactions
    while cps and not cps[0].t_checkpoint_list:
        t = cps.pop(0)
        journal.j_free += t.t_log_blocks
        kmem_cache_free(journal.caches.transaction, t.obj)
        moved = True
    return moved


def jbd2_cleanup_journal_tail(journal: journal_t):
    """``jbd2_cleanup_journal_tail``: move the tail; the journal superblock is rewritten (one
    block)."""
    if jbd2_cleanup_journal_tail_nowrite(journal):
        yield from buffer.submit_bio_wait(journal.j_dev, "write", journal.j_first, 1)


def jbd2_log_checkpoint_all(journal: journal_t):
    """Checkpoint every committed transaction (``jbd2_journal_flush`` without the erase)."""
    yield from mutex_lock(journal.j_checkpoint_mutex)
    while journal.j_checkpoint_transactions:
        yield from jbd2_log_do_checkpoint(journal)
    mutex_unlock(journal.j_checkpoint_mutex)


def jbd2_journal_destroy(journal: journal_t):
    """``jbd2_journal_destroy``: commit what runs, checkpoint everything, stop kjournald2."""
    yield from jbd2_journal_flush(journal)
    unregister_shrinker(journal.sim, journal.j_shrinker)
    journal.j_unmount = True
    wake_up(journal.j_wait_commit)
    yield from wait_event(journal.j_wait_done_commit, lambda: journal.j_task is None)


def jbd2_journal_check_invariants(journal: journal_t) -> list[str]:
    """Simulator check: log accounting adds up and nothing is left behind after destroy."""
    bad = []
    used = sum(t.t_log_blocks for t in journal.j_checkpoint_transactions)
    if journal.j_free + used != journal.j_total_len:
        bad.append(f"{journal!r}: j_free {journal.j_free} + checkpointed {used} != "
                   f"log size {journal.j_total_len}")
    return bad
