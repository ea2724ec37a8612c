"""Memory management (``mm/``): page allocator, reclaim, shrinkers, page cache, slab, OOM.

Import the submodules directly. The API other layers use:

- ``gfp``: flags with kernel names (``GFP_KERNEL``, ``GFP_NOFS``, ``__GFP_NOFAIL`` ...),
  ``current_gfp_context(gfp)``, ``gfp_names(gfp)``.
- ``page_alloc``: ``MemoryConfig``; ``pglist_data(sim, config)`` (becomes ``sim.pgdat`` and
  starts kswapd); ``yield from alloc_pages(gfp, order) -> pfn | None``;
  ``free_pages(pfn, order, pgdat=None)``; ``yield from alloc_pages_bulk(gfp, n, out)``;
  ``sim.pgdat.stats`` (``MmStats``), ``sim.pgdat.check_invariants()``,
  ``sim.pgdat.fs_reclaim_map``, ``sim.pgdat.wakeup_flusher_threads`` (hook set by the VFS).
- ``slab``: ``kmem_cache_create(sim, name, size, flags=0)``,
  ``yield from kmem_cache_alloc(cache, gfp) -> obj | None``, ``kmem_cache_free(cache, obj)``.
- ``filemap``: ``address_space(sim, host, min_order=0)``,
  ``yield from filemap_get_folio(mapping, index, gfp, create=True) -> folio | None``,
  ``folio_mark_dirty``, ``truncate_inode_pages``, ``invalidate_mapping_pages``, the writeback
  helpers, bulk ``page_cache_ra_unbounded`` / ``generic_perform_write``.
- ``shrinker``: ``Shrinker``, ``register_shrinker``, ``unregister_shrinker``, ``SHRINK_STOP``.
- ``anon``: ``get_task_mm(task)``, ``yield from do_anonymous_page(mm, n)``, ``exit_mmap(mm)``.
- ``vmscan``: kswapd, ``try_to_free_pages``, ``shrink_node``, ``drop_slab``.

Events emitted (``sim.emit``): ``alloc``, ``alloc_warn``, ``oom_kill``, ``oom_panic``,
``mm_vmscan_direct_reclaim_begin/end``, ``mm_vmscan_kswapd_wake/sleep``,
``mm_shrink_slab_start/end``.
"""
