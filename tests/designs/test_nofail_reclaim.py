"""Every proposed design on `nofail-reclaim` (validation.md W2/W4): cached nlink > 0 ext4 inodes
with block preallocations, evicted by direct reclaim through ``prune_icache_sb`` — the inode-LRU
path, with ``ext4_discard_preallocations`` as the hard part (the filesystem marks such inodes
hard). Nothing is unlinked. Expectations follow from each mechanism (vfs/designs.py).
"""

from __future__ import annotations

import pytest

from tests.designs.runs import from_eviction, run_all, warning_stacks

DESIGNS = ("sync", "evict-async", "deferred-reclaim", "skip-unlinked", "split-evict",
           "nofail-drop")


@pytest.fixture(scope="module")
def runs():
    return run_all("nofail-reclaim", DESIGNS)


def test_the_scenario_reproduces_the_w2_shape_under_sync(runs):
    """Baseline: reclaim evicts inodes the filesystem marks hard (preallocations to discard)."""
    assert runs["sync"]["reclaim_cleanups"]["hard"] > 0
    assert runs["sync"]["reclaim_cleanups"]["unlinked"] == 0


@pytest.mark.parametrize("design", ("skip-unlinked", "evict-async", "deferred-reclaim"))
def test_designs_acting_on_the_inode_lru_path_keep_hard_inodes_out_of_reclaim(runs, design):
    """skip-unlinked leaves hard inodes on the LRU when the caller has PF_MEMALLOC;
    evict-async punts their discard to a worker; deferred-reclaim puts them on its deferred
    list. Either way no hard inode's cleanup runs in reclaim, so no W2 warning."""
    r = runs[design]
    assert r["reclaim_cleanups"]["hard"] == 0
    assert not [s for s in warning_stacks(r, "nofail_in_reclaim") if from_eviction(s)]


@pytest.mark.parametrize("design", ("evict-async", "deferred-reclaim"))
def test_the_deferring_designs_still_evict_the_inodes(runs, design):
    """They defer the hard inodes' cleanup rather than skip it: as many inodes are freed as
    under sync, and the deferred count covers the hard ones sync evicted in reclaim."""
    r, sync = runs[design], runs["sync"]
    assert r["inodes"]["evicted"] == sync["inodes"]["evicted"]
    assert r["inodes"]["deferred"] >= sync["reclaim_cleanups"]["hard"]


@pytest.mark.parametrize("design", ("split-evict", "nofail-drop"))
def test_designs_that_keep_nlink_positive_eviction_inline_still_clean_up_in_reclaim(runs, design):
    """split-evict changes only nlink == 0 eviction and nofail-drop only allocation flags: with
    nothing unlinked, reclaim evicts the same hard inodes inline as under sync."""
    assert runs[design]["reclaim_cleanups"] == runs["sync"]["reclaim_cleanups"]
    assert runs[design]["inodes"]["deferred"] == 0


def test_nofail_drop_does_not_warn_from_the_sites_it_changes(runs):
    """Under nofail-drop the eviction path's buffer-cache and buddy allocations are not NOFAIL
    in reclaim, so none of them can raise nofail_in_reclaim."""
    for stack in warning_stacks(runs["nofail-drop"], "nofail_in_reclaim"):
        if from_eviction(stack):
            assert not {"ext4_getblk_evict", "ext4_mb_load_buddy_gfp"} & set(stack), stack


@pytest.mark.parametrize("design", DESIGNS)
def test_nothing_leaks_and_the_invariants_hold(runs, design):
    """No inode is unlinked here, so nothing can leak; deferred work is flushed at unmount."""
    r = runs[design]
    assert r["inodes"]["leaked"] == 0 and r["outcome"] == "completed"
    assert r["invariants"]["ok"], r["invariants"]["violations"][:3]
