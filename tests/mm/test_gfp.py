"""GFP composites, their printing, and scoped allocation contexts (kernel-semantics §1)."""

from __future__ import annotations

from reclaimlab.mm import gfp as G
from reclaimlab.sim import (
    Simulation, current, memalloc_noio_restore, memalloc_noio_save, memalloc_nofs_restore,
    memalloc_nofs_save,
)


def test_composites():
    assert G.GFP_KERNEL == G.__GFP_DIRECT_RECLAIM | G.__GFP_KSWAPD_RECLAIM | G.__GFP_IO | G.__GFP_FS
    assert G.GFP_NOFS == G.GFP_KERNEL & ~G.__GFP_FS
    assert G.GFP_NOIO == G.GFP_NOFS & ~G.__GFP_IO
    assert G.GFP_ATOMIC == G.__GFP_HIGH | G.__GFP_KSWAPD_RECLAIM
    assert G.GFP_NOWAIT == G.__GFP_KSWAPD_RECLAIM
    assert not G.gfpflags_allow_blocking(G.GFP_ATOMIC) and G.gfpflags_allow_blocking(G.GFP_NOIO)


def test_gfp_names_prints_like_pGg():
    assert G.gfp_names(G.GFP_NOFS | G.__GFP_NOFAIL) == "GFP_NOFS|__GFP_NOFAIL"
    assert G.gfp_names(G.GFP_KERNEL) == "GFP_KERNEL"
    assert G.gfp_names(G.GFP_KERNEL | G.__GFP_NORETRY | G.__GFP_NOWARN) == \
        "GFP_KERNEL|__GFP_NOWARN|__GFP_NORETRY"
    assert G.gfp_names(0) == "0"


def test_current_gfp_context_applies_nested_scopes():
    sim = Simulation()
    seen = []

    def prog():
        seen.append(G.current_gfp_context(G.GFP_KERNEL))
        nofs = memalloc_nofs_save()
        seen.append(G.current_gfp_context(G.GFP_KERNEL))
        noio = memalloc_noio_save()
        seen.append(G.current_gfp_context(G.GFP_KERNEL | G.__GFP_NOFAIL))
        memalloc_noio_restore(noio)
        seen.append(G.current_gfp_context(G.GFP_KERNEL))
        memalloc_nofs_restore(nofs)
        seen.append(G.current_gfp_context(G.GFP_KERNEL))
        assert current() is not None
        yield 0
    sim.spawn(prog(), "t")
    sim.run()
    assert seen == [G.GFP_KERNEL, G.GFP_NOFS, G.GFP_NOIO | G.__GFP_NOFAIL, G.GFP_NOFS,
                    G.GFP_KERNEL]
