"""Memory management: page allocator, reclaim, shrinkers, page cache, slab, OOM (``mm/``).

Import the submodules directly (``reclaimlab.mm.page_alloc``, ``reclaimlab.mm.gfp`` ...).
"""
