"""The inode cache and the inode lifecycle (``fs/inode.c``, mainline ~6.12), kernel-semantics §3.

Lifecycle: ``alloc_inode`` → ``iget_locked``/``new_inode`` (hashed, on the sb list, ``I_NEW``)
→ ``unlock_new_inode`` → references (``ihold``/``__iget``/``iput``) → final ``iput`` →
``iput_final``: cached on the inode LRU (nlink > 0, hashed, ``SB_ACTIVE``) or ``I_FREEING`` and
``evict`` → ``->evict_inode`` → unhash, wake waiters → ``destroy_inode`` → ``->free_inode`` once
the passive reference count ``i_obj_count`` reaches 0.

The eviction design switch is consulted at the two places the kernel calls ``evict`` for an
unreferenced inode — ``iput_final`` and ``dispose_list`` (``prune_icache_sb``, ``evict_inodes``)
— through ``evict_designs.evict_or_defer``; ``inode_uses_inodegc`` tells a filesystem whether its
``->evict_inode``/``->destroy_inode`` must defer the blocking part to inodegc.

Simplified: ``i_lock`` is not modelled — a spinlock is never held across a yield, so in a
cooperative simulator it is never contended and ``inode_lru_isolate`` rule (a) cannot fire;
``mapping_shrinkable`` is CONFIG_HIGHMEM's (always true: the mm model never calls
``inode_add_lru`` when a mapping's last folios are reclaimed, so inodes with page cache stay on the
LRU and rule (d) invalidates their clean folios); RCU-delayed freeing is immediate.

Filesystems must change ``i_nlink`` through ``set_nlink``/``inc_nlink``/``drop_nlink``/
``clear_nlink`` (the VFS tracks unlinked inodes for ``sim.vfs.leaked()``) and call
``note_inode_blocks_freed(inode)`` when an unlinked inode's blocks and on-disk inode are freed.
Events: ``note_inode_cleanup`` (``inode_cleanup``), ``note_inode_deferred`` (``inode_deferred``),
``note_inode_freed`` (``inode_evicted``: the object is freed).
"""

from __future__ import annotations

from itertools import islice
from typing import Any

from reclaimlab.mm import filemap
from reclaimlab.mm.gfp import GFP_KERNEL
from reclaimlab.mm.slab import kmem_cache_alloc, kmem_cache_free
from reclaimlab.sim import PF_MEMALLOC, cond_resched, current, wait_event, wake_up

from . import designs, evict_designs, fs_writeback
from .fs import (  # noqa: F401  (re-exported: the inode API in one import)
    I_CLEAR, I_CREATING, I_DIRTY, I_DIRTY_ALL, I_DIRTY_DATASYNC, I_DIRTY_INODE, I_DIRTY_PAGES,
    I_DIRTY_SYNC, I_DIRTY_TIME, I_DONTCACHE, I_FREEING, I_NEW, I_REFERENCED, I_SYNC, I_WILL_FREE,
    INODE_FREED_MARK, S_IFCHR, S_IFDIR, S_IFMT, S_IFREG, S_ISCHR, S_ISDIR, S_ISREG, SB_ACTIVE,
    Inode, SuperBlock,
)

LRU_REMOVED = "removed"
LRU_ROTATE = "rotate"
LRU_SKIP = "skip"


# ------------------------------------------------------------------ events and statistics
def note_inode_cleanup(inode: Inode, deferred: bool) -> None:
    """Report that the current task starts the filesystem's blocking cleanup of ``inode``
    (``evict_inode`` under sync, the deferred evict under passive-ref, inactivation under
    inodegc): event ``inode_cleanup``; counted in ``evicted_in_reclaim`` under ``PF_MEMALLOC``."""
    sim = inode.i_sb.s_sim
    task = current()
    stats = sim.vfs.stats
    stats.cleanups += 1
    if task is not None and task.flags & PF_MEMALLOC:
        stats.evicted_in_reclaim += 1
    sim.emit("inode_cleanup", task, inode, {"ino": inode.i_ino, "deferred": deferred})


def note_inode_deferred(inode: Inode) -> None:
    """Report that ``inode``'s cleanup was handed to a background context (``inode_deferred``)."""
    sim = inode.i_sb.s_sim
    sim.vfs.stats.deferred += 1
    sim.emit("inode_deferred", current(), inode, {"ino": inode.i_ino})


def note_inode_blocks_freed(inode: Inode) -> None:
    """The filesystem freed the blocks and the on-disk inode of an unlinked inode
    (``ext4_free_inode``, ``xfs_ifree``): it is no longer a leak candidate."""
    inode.i_sb.s_sim.vfs.unlinked.pop((inode.i_sb.s_id, inode.i_ino), None)


def note_inode_freed(inode: Inode) -> None:
    """Report that the inode object was freed (event ``inode_evicted``; counted as evicted).
    The VFS calls it from ``i_callback``; a filesystem that keeps its inodes after
    ``->destroy_inode`` and frees them itself (XFS: ``__xfs_inode_free``) calls it there."""
    sim = inode.i_sb.s_sim
    sim.vfs.stats.evicted += 1
    sim.emit("inode_evicted", current(), inode, {"ino": inode.i_ino})


def _check_live(inode: Inode, what: str) -> bool:
    if inode.i_state & INODE_FREED_MARK:
        inode.i_sb.s_sim.vfs.violation(f"{what}: use after free of {inode!r}")
        return False
    return True


# ------------------------------------------------------------------ nlink (fs/inode.c)
def _note_unlinked(inode: Inode) -> None:
    inode.i_sb.s_sim.vfs.unlinked[(inode.i_sb.s_id, inode.i_ino)] = None


def clear_nlink(inode: Inode) -> None:
    """``clear_nlink``: the inode has no more links (rmdir, last unlink)."""
    if inode.i_nlink:
        inode.i_nlink = 0
        _note_unlinked(inode)


def drop_nlink(inode: Inode) -> None:
    """``drop_nlink``: one link fewer; at 0 the inode becomes an unlinked (orphan) inode."""
    if inode.i_nlink <= 0:
        inode.i_sb.s_sim.vfs.violation(f"drop_nlink: i_nlink underflow on {inode!r}")
        return
    inode.i_nlink -= 1
    if inode.i_nlink == 0:
        _note_unlinked(inode)


def inc_nlink(inode: Inode) -> None:
    """``inc_nlink``."""
    if inode.i_nlink == 0:
        inode.i_sb.s_sim.vfs.unlinked.pop((inode.i_sb.s_id, inode.i_ino), None)
    inode.i_nlink += 1


def set_nlink(inode: Inode, nlink: int) -> None:
    """``set_nlink``."""
    if nlink == 0:
        clear_nlink(inode)
    else:
        inode.i_nlink = nlink


# ------------------------------------------------------------------ allocation
def inode_init_always(sb: SuperBlock, inode: Inode) -> None:
    """``inode_init_always``: reset the VFS part of a freshly allocated inode."""
    inode.i_sb = sb
    inode.i_count = 1
    inode.i_obj_count = 1
    inode.i_state = 0
    inode.i_nlink = 1
    inode.i_data = None
    sb.s_sim.vfs.stats.allocated += 1


def alloc_inode(sb: SuperBlock):
    """``alloc_inode``: ``->alloc_inode`` or the ``inode_cache`` slab (``GFP_KERNEL``; may enter
    reclaim), then ``inode_init_always``. Returns the inode, or None on ENOMEM."""
    ops = sb.s_op
    if ops.alloc_inode:
        inode = yield from ops.alloc_inode(sb)
    else:
        slab = yield from kmem_cache_alloc(sb.s_sim.vfs.inode_cachep, GFP_KERNEL)
        if slab is None:
            return None
        inode = Inode()
        inode.i_slab = slab
    if inode is None:
        return None
    inode_init_always(sb, inode)
    return inode


def new_inode(sb: SuperBlock):
    """``new_inode``: allocate an inode and put it on the sb list (not hashed). None on ENOMEM."""
    inode = yield from alloc_inode(sb)
    if inode is not None:
        inode_sb_list_add(inode)
    return inode


def inode_sb_list_add(inode: Inode) -> None:
    """``inode_sb_list_add``."""
    inode.i_sb.s_inodes[inode] = None


def inode_sb_list_del(inode: Inode) -> None:
    """``inode_sb_list_del``."""
    inode.i_sb.s_inodes.pop(inode, None)


# ------------------------------------------------------------------ hash
def insert_inode_hash(inode: Inode) -> None:
    """``insert_inode_hash``: make the inode findable by ``iget``."""
    table = inode.i_sb.s_inode_hash
    old = table.get(inode.i_ino)
    if old is not None and old is not inode:
        inode.i_sb.s_sim.vfs.violation(f"insert_inode_hash: {inode!r} already hashed")
    table[inode.i_ino] = inode


def remove_inode_hash(inode: Inode) -> None:
    """``remove_inode_hash``."""
    table = inode.i_sb.s_inode_hash
    if table.get(inode.i_ino) is inode:
        del table[inode.i_ino]


def inode_unhashed(inode: Inode) -> bool:
    """``inode_unhashed``."""
    return inode.i_sb.s_inode_hash.get(inode.i_ino) is not inode


def __wait_on_freeing_inode(inode: Inode):
    """``__wait_on_freeing_inode``: a lookup found ``I_FREEING|I_WILL_FREE``; sleep until
    ``evict`` unhashes it (kernel-semantics §3 rule 5)."""
    table = inode.i_sb.s_inode_hash
    ino = inode.i_ino
    yield from wait_event(inode.i_sb.s_sim.vfs.inode_wait, lambda: table.get(ino) is not inode)


def wait_on_inode(inode: Inode):
    """``wait_on_inode``: sleep while the inode is ``I_NEW`` (being read in by another task)."""
    yield from wait_event(inode.i_sb.s_sim.vfs.inode_wait,
                          lambda: not inode.i_state & I_NEW)


def find_inode_fast(sb: SuperBlock, ino: int):
    """``find_inode_fast``: the hashed inode ``ino`` with a new reference, waiting out one that
    is being freed; None if not cached."""
    while True:
        inode = sb.s_inode_hash.get(ino)
        if inode is None:
            return None
        if inode.i_state & (I_FREEING | I_WILL_FREE):
            yield from __wait_on_freeing_inode(inode)
            continue
        __iget(inode)
        return inode


def ilookup(sb: SuperBlock, ino: int):
    """``ilookup``: cached inode ``ino`` (referenced, fully read in) or None."""
    while True:
        inode = yield from find_inode_fast(sb, ino)
        if inode is None:
            return None
        yield from wait_on_inode(inode)
        if not inode_unhashed(inode):
            return inode
        yield from iput(inode)


def iget_locked(sb: SuperBlock, ino: int):
    """``iget_locked``: the cached inode ``ino``, or a new hashed ``I_NEW`` inode the caller
    fills in and releases with ``unlock_new_inode`` (or ``iget_failed``). None on ENOMEM."""
    while True:
        inode = yield from ilookup(sb, ino)
        if inode is not None:
            return inode
        new = yield from alloc_inode(sb)
        if new is None:
            return None
        if ino in sb.s_inode_hash:
            # Someone hashed ino while we slept in the allocator: use theirs.
            yield from destroy_inode(new)
            continue
        new.i_ino = ino
        new.i_state = I_NEW
        insert_inode_hash(new)
        inode_sb_list_add(new)
        return new


def insert_inode_locked(inode: Inode):
    """``insert_inode_locked``: hash a new inode as ``I_NEW|I_CREATING`` unless ``i_ino`` is
    live (returns False, the kernel's -EBUSY); waits out an old inode being freed."""
    sb = inode.i_sb
    while True:
        old = sb.s_inode_hash.get(inode.i_ino)
        if old is None:
            inode.i_state |= I_NEW | I_CREATING
            insert_inode_hash(inode)
            return True
        if not old.i_state & (I_FREEING | I_WILL_FREE):
            return False
        yield from __wait_on_freeing_inode(old)


def unlock_new_inode(inode: Inode) -> None:
    """``unlock_new_inode``: clear ``I_NEW`` and wake lookups waiting for it."""
    inode.i_state &= ~(I_NEW | I_CREATING)
    wake_up(inode.i_sb.s_sim.vfs.inode_wait)


def iget_failed(inode: Inode):
    """``iget_failed``: reading the inode failed — unhash (``make_bad_inode``), unlock, drop."""
    remove_inode_hash(inode)
    unlock_new_inode(inode)
    yield from iput(inode)


# ------------------------------------------------------------------ references
def __iget(inode: Inode) -> None:
    """``__iget``: take a live reference (the inode may stay on the LRU: removed lazily)."""
    if _check_live(inode, "__iget"):
        inode.i_count += 1


def ihold(inode: Inode) -> None:
    """``ihold``: take a reference on an inode the caller already holds one on."""
    if inode.i_count <= 0:
        inode.i_sb.s_sim.vfs.violation(f"ihold: {inode!r} has no reference")
    __iget(inode)


def igrab(inode: Inode) -> Inode | None:
    """``igrab``: a reference unless the inode is being freed."""
    if inode.i_state & (I_FREEING | I_WILL_FREE):
        return None
    __iget(inode)
    return inode


def iobj_get(inode: Inode) -> None:
    """Passive reference on the memory object (``i_obj_count``, Bacik's 2025 rework): keeps the
    ``struct inode`` allocated, not live."""
    if _check_live(inode, "iobj_get"):
        inode.i_obj_count += 1


def iobj_put(inode: Inode) -> None:
    """Drop a passive reference; the last one frees the object (``i_callback``)."""
    if not _check_live(inode, "iobj_put"):
        return
    inode.i_obj_count -= 1
    if inode.i_obj_count < 0:
        inode.i_sb.s_sim.vfs.violation(f"iobj_put: i_obj_count underflow on {inode!r}")
    elif inode.i_obj_count == 0:
        i_callback(inode)


def iput(inode: Inode | None):
    """``iput``: drop a live reference; the last one runs ``iput_final``. A nlink > 0 inode with
    only ``I_DIRTY_TIME`` gets its timestamps marked dirty first (kernel-semantics §3 rule 1),
    except under ``deferred-reclaim`` (``designs.iput_dirties_lazytime``)."""
    if inode is None or not _check_live(inode, "iput"):
        return
    while True:
        if inode.i_count <= 0:
            inode.i_sb.s_sim.vfs.violation(f"iput: i_count underflow on {inode!r}")
            return
        if inode.i_count == 1 and inode.i_nlink and inode.i_state & I_DIRTY_TIME \
                and designs.iput_dirties_lazytime(inode):
            inode.i_state &= ~I_DIRTY_TIME
            yield from fs_writeback.mark_inode_dirty_sync(inode)
            continue
        inode.i_count -= 1
        if inode.i_count == 0:
            yield from iput_final(inode)
        return


def generic_drop_inode(inode: Inode) -> bool:
    """``generic_drop_inode``: evict on last iput iff unlinked or unhashed."""
    return not inode.i_nlink or inode_unhashed(inode)


def generic_delete_inode(inode: Inode) -> bool:
    """``generic_delete_inode``: never cache an unreferenced inode (overlayfs's ``drop_inode``)."""
    return True


def iput_final(inode: Inode):
    """``iput_final``: cache the inode on the LRU, or set ``I_FREEING`` and evict it (inline or
    deferred, per the design). Unmounting/dontcache: write the inode back first (``I_WILL_FREE``)."""
    sb = inode.i_sb
    op = sb.s_op
    drop = op.drop_inode(inode) if op.drop_inode else generic_drop_inode(inode)
    if not drop and not inode.i_state & I_DONTCACHE and sb.s_flags & SB_ACTIVE:
        inode_add_lru(inode)
        return
    if not drop:
        inode.i_state |= I_WILL_FREE
        yield from fs_writeback.write_inode_now(inode, True)
        inode.i_state &= ~I_WILL_FREE
    inode.i_state |= I_FREEING
    inode_lru_list_del(inode)
    yield from evict_designs.evict_or_defer(inode)


# ------------------------------------------------------------------ LRU
def inode_add_lru(inode: Inode, rotate: bool = True) -> None:
    """``__inode_add_lru``: an unused, clean inode of an active sb goes on the LRU; one already
    there gets ``I_REFERENCED`` (second chance)."""
    if inode.i_state & (I_DIRTY_ALL | I_SYNC | I_FREEING | I_WILL_FREE) or inode.i_count:
        return
    sb = inode.i_sb
    if not sb.s_flags & SB_ACTIVE:
        return
    lru = sb.s_inode_lru
    if inode in lru:
        if rotate:
            inode.i_state |= I_REFERENCED
    else:
        lru[inode] = None


def inode_lru_list_del(inode: Inode) -> None:
    """``inode_lru_list_del``."""
    inode.i_sb.s_inode_lru.pop(inode, None)


def inode_lru_isolate(inode: Inode, dispose: list[Inode]) -> str:
    """``inode_lru_isolate`` (kernel-semantics §3 rule 6): (a) ``i_lock`` trylock — not modelled;
    (b) referenced, any state but ``I_REFERENCED`` ⇒ drop from the LRU; (c) ``I_REFERENCED`` ⇒
    clear and rotate; (d) page cache ⇒ ``invalidate_mapping_pages`` (clean folios), rotate if
    some remain; (e) ``I_FREEING`` and onto ``dispose``. Design ``skip-unlinked`` skips a costly
    inode before (d) when the caller is in reclaim (``designs.lru_isolate_skip``)."""
    lru = inode.i_sb.s_inode_lru
    if inode.i_count or inode.i_state & ~I_REFERENCED:
        del lru[inode]
        return LRU_REMOVED
    if inode.i_state & I_REFERENCED:
        inode.i_state &= ~I_REFERENCED
        del lru[inode]
        lru[inode] = None
        return LRU_ROTATE
    if designs.lru_isolate_skip(inode):
        return LRU_SKIP
    mapping = inode.i_data
    if mapping is not None and mapping.nrpages:
        filemap.invalidate_mapping_pages(mapping)
        if mapping.nrpages:
            del lru[inode]
            lru[inode] = None
            return LRU_ROTATE
    inode.i_state |= I_FREEING
    del lru[inode]
    dispose.append(inode)
    return LRU_REMOVED


def dispose_list(dispose: list[Inode]):
    """``dispose_list``: evict every isolated inode — filesystem eviction code runs here, inside
    the shrinker or unmount (or is deferred, per the design)."""
    for inode in dispose:
        yield from evict_designs.evict_or_defer(inode)
        yield from cond_resched()


def prune_icache_sb(sb: SuperBlock, nr_to_scan: int):
    """``prune_icache_sb``: walk ``nr_to_scan`` LRU inodes oldest first, isolate, dispose.
    Returns the number of inodes freed (isolated for eviction)."""
    dispose: list[Inode] = []
    for inode in list(islice(sb.s_inode_lru, nr_to_scan)):
        if inode in sb.s_inode_lru:
            inode_lru_isolate(inode, dispose)
    yield from dispose_list(dispose)
    return len(dispose)


def evict_inodes(sb: SuperBlock):
    """``evict_inodes`` (unmount): every unused inode not already new or being freed is set
    ``I_FREEING`` and disposed, until none is left."""
    while True:
        dispose = []
        for inode in list(sb.s_inodes):
            if inode.i_count or inode.i_state & (I_NEW | I_FREEING | I_WILL_FREE):
                continue
            inode.i_state |= I_FREEING
            inode_lru_list_del(inode)
            dispose.append(inode)
        if not dispose:
            return
        yield from dispose_list(dispose)


# ------------------------------------------------------------------ eviction
def inode_uses_inodegc(inode: Inode) -> bool:
    """True when ``inode``'s filesystem must defer its blocking eviction work to the inodegc
    workers (design ``inodegc``, or ``native`` on a filesystem whose native design it is):
    ``->evict_inode`` then only truncates the page cache and ``->destroy_inode`` queues."""
    return inode.i_sb.s_evict_design == "inodegc"


def truncate_inode_pages_final(mapping: Any) -> None:
    """``truncate_inode_pages_final``: drop the whole page cache (None: the inode never had one)."""
    if mapping is not None and mapping.nrpages:
        filemap.truncate_inode_pages(mapping)


def clear_inode(inode: Inode) -> None:
    """``clear_inode``: the end of ``->evict_inode``: state becomes ``I_FREEING|I_CLEAR``."""
    vfs = inode.i_sb.s_sim.vfs
    if inode.i_data is not None and inode.i_data.nrpages:
        vfs.violation(f"clear_inode: {inode!r} still has page cache")
    if not inode.i_state & I_FREEING or inode.i_state & I_CLEAR:
        vfs.violation(f"clear_inode: bad i_state {inode.i_state:#x} on {inode!r}")
    inode.i_state = I_FREEING | I_CLEAR


def evict_begin(inode: Inode):
    """The start of ``evict``: take an ``I_FREEING`` inode off the io and sb lists, wait for
    writeback (``I_SYNC``)."""
    sb = inode.i_sb
    if not inode.i_state & I_FREEING or inode in sb.s_inode_lru:
        sb.s_sim.vfs.violation(f"evict: {inode!r} not I_FREEING or still on the LRU")
    fs_writeback.inode_io_list_del(inode)
    inode_sb_list_del(inode)
    yield from fs_writeback.inode_wait_for_writeback(inode)


def evict_end(inode: Inode):
    """The end of ``evict``: unhash, wake lookups waiting in ``__wait_on_freeing_inode``,
    ``destroy_inode``."""
    remove_inode_hash(inode)
    wake_up(inode.i_sb.s_sim.vfs.inode_wait)
    yield from destroy_inode(inode)


def evict(inode: Inode):
    """``evict``: ``evict_begin``, ``->evict_inode`` (or truncate + ``clear_inode``),
    ``evict_end``."""
    sb = inode.i_sb
    vfs = sb.s_sim.vfs
    yield from evict_begin(inode)
    op = sb.s_op
    if op.evict_inode:
        if not inode_uses_inodegc(inode):
            note_inode_cleanup(inode, sb.s_evict_design == "passive-ref")
        yield from op.evict_inode(inode)
    else:
        truncate_inode_pages_final(inode.i_data)
        clear_inode(inode)
    if inode.i_state != I_FREEING | I_CLEAR:
        vfs.violation(f"evict: ->evict_inode left i_state {inode.i_state:#x} on {inode!r}")
    yield from evict_end(inode)


def destroy_inode(inode: Inode):
    """``destroy_inode``: ``->destroy_inode``, then the free (``->free_inode`` or the slab) once
    ``i_obj_count`` drops to 0. A filesystem with ``destroy_inode`` and no ``free_inode`` owns
    the object from here (XFS) and reports its real free with ``note_inode_freed``; one that
    keeps working on it after ``->destroy_inode`` (inodegc) takes ``iobj_get`` there and
    ``iobj_put`` when done."""
    op = inode.i_sb.s_op
    if op.destroy_inode:
        yield from op.destroy_inode(inode)
        if not op.free_inode:
            _release_mapping(inode)
            return
    iobj_put(inode)


def _release_mapping(inode: Inode) -> None:
    """Forget the (truncated) page cache; a recycled inode gets a new one on first use."""
    if inode.i_data is not None:
        filemap.mapping_release(inode.i_data)
        inode.i_data = None


def i_callback(inode: Inode) -> None:
    """``i_callback`` (the RCU callback, run at once): ``->free_inode`` or free to the slab."""
    sb = inode.i_sb
    vfs = sb.s_sim.vfs
    if inode.i_count:
        vfs.violation(f"free_inode: {inode!r} freed with i_count {inode.i_count}")
    if inode in sb.s_inodes or sb.s_inode_hash.get(inode.i_ino) is inode:
        vfs.violation(f"free_inode: {inode!r} freed while on the sb list or hashed")
    _release_mapping(inode)
    if sb.s_op.free_inode:
        sb.s_op.free_inode(inode)
    elif inode.i_slab is not None:
        kmem_cache_free(vfs.inode_cachep, inode.i_slab)
    inode.i_slab = None
    inode.i_state |= INODE_FREED_MARK
    note_inode_freed(inode)


# ------------------------------------------------------------------ invariants
def check_sb_inodes(sb: SuperBlock) -> list[str]:
    """Refcount sanity of a live superblock's inodes (``sim.vfs.check_invariants``)."""
    out = []
    for inode in sb.s_inodes:
        if inode.i_count < 0 or inode.i_obj_count < 0:
            out.append(f"{inode!r}: negative count i_count={inode.i_count} "
                       f"i_obj_count={inode.i_obj_count}")
        if inode.i_state & INODE_FREED_MARK:
            out.append(f"{inode!r}: freed but still on the sb list")
    for inode in sb.s_inode_lru:
        if inode.i_nlink == 0 and not inode.i_state & I_FREEING and inode.i_count == 0:
            out.append(f"{inode!r}: unlinked inode on the LRU")
        if inode not in sb.s_inodes:
            out.append(f"{inode!r}: on the LRU but not on the sb list")
    return out
