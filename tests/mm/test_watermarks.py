"""Watermarks follow calculate_min_free_kbytes / __setup_per_zone_wmarks (kernel-semantics §1).

Expected values are computed here from the documented formula, not from the code under test:
min_free_kbytes = sqrt(16 * lowmem_kB) clamped to [128, 262144]; min = min_free_kbytes in
pages; gap = max(min / 4, managed * watermark_scale_factor / 10000); low = min + gap;
high = min + 2 * gap.
"""

from __future__ import annotations

import math

import pytest


def expected(memory_bytes: int, page_size: int = 4096, scale: int = 10,
             min_free_kbytes: int | None = None) -> tuple[int, int, int]:
    managed = memory_bytes // page_size
    if min_free_kbytes is None:
        min_free_kbytes = min(max(math.isqrt(16 * (memory_bytes // 1024)), 128), 262144)
    pages_min = min_free_kbytes * 1024 // page_size
    gap = max(pages_min // 4, managed * scale // 10000)
    return pages_min, pages_min + gap, pages_min + 2 * gap


@pytest.mark.parametrize("gib", [1, 16])
def test_watermarks_match_kernel_formula(node, gib):
    sim, pgdat, _ = node(gib << 10)
    assert tuple(pgdat.zone.watermark) == expected(gib << 30)


def test_one_gib_numbers_by_hand(node):
    # sqrt(16 * 1048576) = 4096 kB = 1024 pages; 0.1% of 262144 pages = 262 > 1024/4.
    sim, pgdat, _ = node(1024)
    assert pgdat.min_free_kbytes == 4096
    assert pgdat.zone.watermark == [1024, 1286, 1548]


def test_sixteen_gib_numbers_by_hand(node):
    # sqrt(16 * 16 GiB in kB) = 16384 kB = 4096 pages; 0.1% of 4 Mi pages = 4194.
    sim, pgdat, _ = node(16 << 10)
    assert pgdat.zone.watermark == [4096, 8290, 12484]


def test_small_machine_gap_is_a_quarter_of_min(node):
    # 256 MiB: min 2048 kB = 512 pages; 0.1% of 65536 = 65 < 512/4 = 128.
    sim, pgdat, _ = node(256)
    assert pgdat.zone.watermark == [512, 640, 768]


def test_tunables_override(node):
    sim, pgdat, _ = node(1024, min_free_kbytes=65536, watermark_scale_factor=200)
    assert tuple(pgdat.zone.watermark) == expected(1 << 30, scale=200, min_free_kbytes=65536)


def test_min_free_kbytes_is_clamped():
    from reclaimlab.mm.page_alloc import calculate_min_free_kbytes
    assert calculate_min_free_kbytes(16) == 128
    assert calculate_min_free_kbytes(1 << 40) == 262144


def test_bad_scale_factor_rejected(node):
    with pytest.raises(ValueError):
        node(64, watermark_scale_factor=0)
