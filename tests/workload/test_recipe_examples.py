"""The two worked examples of docs/recipes.md, ported from public reproducers (validation.md W1
and W4), run under every design: the kernel's warning under ``sync``, none under the deferred
designs, and the space held by unlinked inodes released before unmount in all of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from reclaimlab.scenario import load_scenario, run_scenario
from reclaimlab.workload.recipe import check_recipe_paths

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
W1 = str(EXAMPLES / "recipe-overlay-unlink.toml")
W4 = str(EXAMPLES / "recipe-syzbot-discard-prealloc.toml")
DEFERRED = ("inodegc", "passive-ref")


@pytest.fixture(scope="module")
def w1():
    return {d: run_scenario(W1, design=d) for d in ("sync", *DEFERRED)}


@pytest.fixture(scope="module")
def w4():
    return {d: run_scenario(W4, design=d) for d in ("sync", *DEFERRED)}


def steps(result, op):
    return [s for s in result["recipe"][0]["steps"] if s["op"] == op]


def nofail_in_reclaim(result):
    return [w for w in result["warnings"] if w["kind"] == "nofail_in_reclaim"]


@pytest.mark.parametrize("path", [W1, W4])
def test_examples_load_and_every_path_is_on_a_mount(path):
    check_recipe_paths(load_scenario(path).scenario)


def test_w1_sync_hog_stops_when_the_free_blocks_are_back(w1):
    hog = steps(w1["sync"], "hog")[0]["value"]
    base = steps(w1["sync"], "statfs")[0]["value"]
    assert hog["stopped_by"] == "bfree" and hog["bfree"] == base


def test_w1_sync_warns_from_kswapd_evicting_through_the_overlay_dentry(w1):
    warns = nofail_in_reclaim(w1["sync"])
    assert warns and all(w["task"].startswith("kswapd0") for w in warns)
    for w in warns:
        assert is_subsequence(W1_SHAPE, w["stack"]), w["stack"]


# kernel-semantics.md §0, outermost first; ``destroy_inode`` twice: the VFS's, then the
# overlay's ``->destroy_inode`` (ovl_destroy_inode), which drops the real ext4 dentry.
W1_SHAPE = ["kswapd", "balance_pgdat", "shrink_node", "shrink_slab", "super_cache_scan",
            "prune_dcache_sb", "__dentry_kill", "destroy_inode", "ovl_destroy_inode", "dput",
            "__dentry_kill", "iput", "evict", "ext4_evict_inode", "__alloc_pages_slowpath"]


def is_subsequence(shape: list[str], stack: list[str]) -> bool:
    frames = iter(stack)
    return all(any(f == name for f in frames) for name in shape)


@pytest.mark.parametrize("design", DEFERRED)
def test_w1_deferred_designs_do_not_warn_and_evict_outside_reclaim(w1, design):
    result = w1[design]
    assert not nofail_in_reclaim(result)
    assert result["inodes"]["evicted_in_reclaim"] == 0
    assert result["inodes"]["deferred"] >= 64


@pytest.mark.parametrize("design", ["sync", *DEFERRED])
def test_w1_space_of_the_unlinked_files_is_back_before_unmount(w1, design):
    result = w1[design]
    base, written, unlinked, *_, final = [s["value"] for s in steps(result, "statfs")]
    assert base - written == 64 * 16          # 64 files of 64 KiB, 4 KiB blocks
    assert unlinked == written                # held by the unlinked inodes the overlay pins
    assert final == base                      # released (by the workers when deferred)
    assert steps(result, "umount")[-1]["error"] is None
    assert result["inodes"]["leaked"] == 0 and result["invariants"]["ok"]


def test_w4_sync_reclaim_evicts_cached_inodes(w4):
    result = w4["sync"]
    assert result["inodes"]["evicted_in_reclaim"] > 0


def test_w4_sync_warns_in_ext4_discard_preallocations_from_the_inode_lru(w4):
    warns = nofail_in_reclaim(w4["sync"])
    assert warns
    assert all(is_subsequence(W4_SHAPE, w["stack"]) for w in warns), warns


# validation.md W2/W4, outermost first, from shrink_slab on (the kernel reports came from direct
# reclaim, try_to_free_pages; in the model kswapd reaches the small inode LRU first).
W4_SHAPE = ["shrink_slab", "super_cache_scan", "prune_icache_sb", "evict",
            "ext4_evict_inode", "ext4_clear_inode", "ext4_discard_preallocations",
            "ext4_mb_load_buddy_gfp", "__alloc_pages_slowpath"]


@pytest.mark.parametrize("design", DEFERRED)
def test_w4_deferred_designs_do_not_warn(w4, design):
    result = w4[design]
    assert not nofail_in_reclaim(result)
    assert result["inodes"]["evicted_in_reclaim"] == 0


@pytest.mark.parametrize("design", ["sync", *DEFERRED])
def test_w4_space_is_back_after_the_unlinks(w4, design):
    result = w4[design]
    base, written, final = [s["value"] for s in steps(result, "statfs")]
    assert written < base and final - written >= 256 * 2   # 256 files of 8 KiB
    assert final == w4["sync"]["recipe"][0]["steps"][-1]["value"]
    assert result["inodes"]["leaked"] == 0 and result["invariants"]["ok"]
