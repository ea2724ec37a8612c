"""The buddy allocator: split on allocation, merge on free, invariants for any sequence."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from reclaimlab.mm.buddy import MAX_PAGE_ORDER, free_area
from reclaimlab.mm.mm_types import MemMap

NR_PAGES = 3 * 1024 + 512 + 7   # not a multiple of the max block: edge blocks are smaller


def fresh(nr: int = NR_PAGES) -> free_area:
    return free_area(MemMap(nr))


def test_initial_state_uses_largest_aligned_blocks():
    fa = fresh()
    assert fa.nr_free == NR_PAGES
    assert len(fa.free_lists[MAX_PAGE_ORDER]) == 3
    assert [len(fa.free_lists[o]) for o in range(MAX_PAGE_ORDER)] == [1, 1, 1, 0, 0, 0, 0, 0,
                                                                      0, 1]
    assert fa.check_invariants() == []


def test_split_then_merge_restores_one_block():
    fa = free_area(MemMap(1024))
    a = fa.rmqueue_smallest(0)
    assert [len(fa.free_lists[o]) for o in range(MAX_PAGE_ORDER)] == [1] * MAX_PAGE_ORDER
    b = fa.rmqueue_smallest(3)
    assert b % 8 == 0 and not a <= b < a + 1
    fa.free_one_page(a, 0)
    fa.free_one_page(b, 3)
    assert list(fa.free_lists[MAX_PAGE_ORDER]) == [0]
    assert fa.check_invariants() == []


def test_high_order_fails_when_fragmented():
    fa = free_area(MemMap(1024))
    pfns = [fa.rmqueue_smallest(0) for _ in range(1024)]
    for pfn in pfns[::2]:          # free every other page: 512 free pages, no pair adjacent
        fa.free_one_page(pfn, 0)
    assert fa.nr_free == 512
    assert fa.rmqueue_smallest(1) is None
    assert fa.check_invariants() == []


def test_double_free_is_refused():
    import pytest
    fa = fresh()
    pfn = fa.rmqueue_smallest(2)
    fa.free_one_page(pfn, 2)
    with pytest.raises(ValueError):
        fa.free_one_page(pfn, 2)


ops = st.lists(st.one_of(
    st.tuples(st.just("alloc"), st.integers(0, MAX_PAGE_ORDER)),
    st.tuples(st.just("free"), st.integers(0, 10_000)),
), max_size=120)


@settings(max_examples=150, deadline=None)
@given(ops)
def test_invariants_under_any_alloc_free_sequence(sequence):
    fa = fresh()
    held: list[tuple[int, int]] = []
    for op, arg in sequence:
        if op == "alloc":
            pfn = fa.rmqueue_smallest(arg)
            if pfn is None:
                assert not fa.has_block(arg)
                continue
            assert pfn % (1 << arg) == 0
            held.append((pfn, arg))
        elif held:
            pfn, order = held.pop(arg % len(held))
            fa.free_one_page(pfn, order)
        # pages conserved
        assert fa.nr_free + sum(1 << o for _, o in held) == NR_PAGES
        # no two held blocks overlap
        spans = sorted((p, p + (1 << o)) for p, o in held)
        assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:]))
    assert fa.check_invariants() == []
    for pfn, order in held:
        fa.free_one_page(pfn, order)
    # merges complete: freeing everything restores the initial block structure
    assert [sorted(fl) for fl in fa.free_lists] == [sorted(fl) for fl in fresh().free_lists]
    assert fa.check_invariants() == []
