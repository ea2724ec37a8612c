"""Every design on `overlay-unlink` (validation.md W1/D1): what each mechanism implies there.

The shape: the last reference to an unlinked ext4 inode is an overlay inode pinned by an unused
overlay dentry, so dcache reclaim (kswapd, direct reclaim: ``PF_MEMALLOC``) drops it —
``prune_dcache_sb → __dentry_kill → ovl_destroy_inode → dput → iput → evict`` — never
``inode_lru_isolate``. A design keeps the ext4 cleanup (journal handle, inode-table and bitmap
buffers) out of reclaim only if it acts on that path. Expectations below follow from each
design's mechanism (vfs/designs.py), not from earlier runs' numbers.
"""

from __future__ import annotations

import pytest

from tests.designs.runs import from_eviction, run_all, warning_stacks

DESIGNS = ("sync", "inodegc", "passive-ref", "evict-async", "deferred-reclaim",
           "skip-unlinked", "split-evict", "nofail-drop")
INLINE = ("sync", "skip-unlinked", "nofail-drop")       # the dentry -> iput path evicts inline
DEFERRING = ("evict-async", "deferred-reclaim", "split-evict")


@pytest.fixture(scope="module")
def runs():
    return run_all("overlay-unlink", DESIGNS)


def test_the_scenario_reproduces_w1_under_sync(runs):
    """The baseline every other expectation is measured against: under sync, reclaim runs the
    deletion of unlinked ext4 inodes."""
    assert runs["sync"]["reclaim_cleanups"]["unlinked"] > 0


@pytest.mark.parametrize("design", INLINE)
def test_designs_that_leave_the_dentry_path_alone_still_evict_in_reclaim(runs, design):
    """skip-unlinked changes only inode_lru_isolate (Jan Kara's objection: the overlay path goes
    through the dentry LRU); nofail-drop changes only allocation flags. Both still run the
    unlinked inodes' deletion in reclaim, and so close the D1 lockdep chain
    (fs_reclaim --> jbd2_handle) the same way sync does."""
    r = runs[design]
    assert r["reclaim_cleanups"]["unlinked"] > 0
    assert r["inodes"]["evicted_in_reclaim"] > 0
    sync_lockdep = bool(warning_stacks(runs["sync"], "lockdep_circular"))
    assert bool(warning_stacks(r, "lockdep_circular")) == sync_lockdep


@pytest.mark.parametrize("design", ("evict-async", "deferred-reclaim"))
def test_hard_inodes_never_clean_up_in_reclaim(runs, design):
    """evict-async punts every inode the fs marks hard to a worker; deferred-reclaim moves every
    hard inode met in reclaim to its deferred list: no hard inode's cleanup runs in reclaim."""
    r = runs[design]
    assert r["reclaim_cleanups"]["hard"] == 0
    assert r["inodes"]["deferred"] > 0


def test_split_evict_defers_every_unlinked_inode(runs):
    """split-evict defers the disk-space part of every nlink == 0 eviction, wherever it starts."""
    r = runs["split-evict"]
    assert r["reclaim_cleanups"]["unlinked"] == 0
    assert r["inodes"]["deferred"] > 0


@pytest.mark.parametrize("design", DEFERRING)
def test_deferring_designs_take_the_journal_out_of_reclaim(runs, design):
    """With no unlinked-inode deletion in reclaim, no journal handle is started under
    fs_reclaim by eviction and no eviction allocates NOFAIL in reclaim."""
    r = runs[design]
    assert not [s for s in warning_stacks(r, "lockdep_circular") if from_eviction(s)]
    assert not [s for s in warning_stacks(r, "nofail_in_reclaim") if from_eviction(s)]


def test_nofail_drop_never_warns_from_eviction(runs):
    """nofail-drop strips __GFP_NOFAIL from the eviction path's buffer-cache and buddy
    allocations under PF_MEMALLOC: those sites cannot raise nofail_in_reclaim."""
    for stack in warning_stacks(runs["nofail-drop"], "nofail_in_reclaim"):
        if from_eviction(stack):
            assert not {"ext4_getblk_evict", "ext4_mb_load_buddy_gfp"} & set(stack), stack


@pytest.mark.parametrize("design", DESIGNS)
def test_every_unlinked_inode_is_freed_unless_an_error_kept_it(runs, design):
    """Deferred work is flushed by sync/unmount, so nothing leaks — except inodes whose deletion
    failed and stayed on the orphan list (only nofail-drop lets an eviction allocation fail)."""
    r = runs[design]
    orphaned = {e["ino"] for e in r.get("fs_errors", []) if "delete" in e["error"]}
    assert r["inodes"]["leaked"] == len(orphaned)
    assert r["invariants"]["ok"], r["invariants"]["violations"][:3]
    assert r["outcome"] == "completed"


@pytest.mark.parametrize("design", DEFERRING)
def test_reclaim_is_cheaper_when_eviction_work_leaves_it(runs, design):
    """Direct reclaim that runs journal transactions takes longer than direct reclaim that hands
    them to a worker, and the slowest allocation waits on it: total direct-reclaim time and
    the maximum allocation latency are no higher than under sync."""
    sync, r = runs["sync"], runs[design]
    assert r["direct_reclaim"]["total_ns"] <= sync["direct_reclaim"]["total_ns"]
    assert r["alloc_latency_ns"]["max"] <= sync["alloc_latency_ns"]["max"]
