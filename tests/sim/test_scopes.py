"""Scoped allocation context nests and restores (include/linux/sched/mm.h)."""

from reclaimlab.sim import (
    PF_MEMALLOC, PF_MEMALLOC_NOFS, PF_MEMALLOC_NOIO, Simulation, current, memalloc_noio_restore,
    memalloc_noio_save, memalloc_nofs_restore, memalloc_nofs_save, memalloc_noreclaim_restore,
    memalloc_noreclaim_save,
)


def test_nested_nofs_and_noio_scopes_restore_in_reverse_order():
    sim = Simulation()
    seen = []

    def t():
        me = current()
        outer = memalloc_nofs_save()
        inner = memalloc_nofs_save()  # nested: the inner restore must keep NOFS set
        io = memalloc_noio_save()
        seen.append(me.flags & (PF_MEMALLOC_NOFS | PF_MEMALLOC_NOIO))
        yield 1
        memalloc_noio_restore(io)
        memalloc_nofs_restore(inner)
        seen.append(me.flags & (PF_MEMALLOC_NOFS | PF_MEMALLOC_NOIO))
        memalloc_nofs_restore(outer)
        seen.append(me.flags & (PF_MEMALLOC_NOFS | PF_MEMALLOC_NOIO))

    sim.spawn(t(), "t")
    sim.run()
    assert seen == [PF_MEMALLOC_NOFS | PF_MEMALLOC_NOIO, PF_MEMALLOC_NOFS, 0]


def test_noreclaim_scope_keeps_a_preexisting_pf_memalloc():
    sim = Simulation()
    seen = []

    def kswapd_like():
        me = current()
        old = memalloc_noreclaim_save()
        seen.append(bool(me.flags & PF_MEMALLOC))
        memalloc_noreclaim_restore(old)
        yield 0
        seen.append(bool(me.flags & PF_MEMALLOC))

    sim.spawn(kswapd_like(), "kswapd0", flags=PF_MEMALLOC)
    sim.spawn(kswapd_like(), "plain")
    sim.run()
    assert seen == [True, True, True, False]
