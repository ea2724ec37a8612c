"""The dentry cache (``fs/dcache.c``, mainline ~6.12), kernel-semantics §3 rule 8.

A dentry holds a reference on its parent and on its inode. ``dput`` to zero keeps a hashed dentry
cached on its superblock's LRU (``retain_dentry``: added unreferenced the first time,
``DCACHE_REFERENCED`` on later puts) and kills an unhashed one at once; ``__dentry_kill`` unhashes,
``iput``s the inode and drops the parent reference, cascading up the tree. ``d_delete`` (unlink)
turns a dentry only the caller holds into a negative one — the unlinking task does the final
``iput`` — and otherwise just unhashes it, so whoever drops the last reference later (a close, an
overlay inode's teardown, dcache reclaim) runs the inode's eviction.

``prune_dcache_sb`` (the sb shrinker): ``dentry_lru_isolate`` — referenced ⇒ off the LRU (lazy
removal), ``DCACHE_REFERENCED`` ⇒ cleared and rotated, else onto a private shrink list;
``shrink_dentry_list`` kills each still-unused dentry and, like the kernel's ``shrink_kill``, any
ancestor whose count drops to zero.

Simplified: no RCU walk, no ``d_lock``/``lockref`` (uncontended in a cooperative simulator), no
aliases (``i_dentry``), no ``d_op``; the hash is the parent's ``d_children`` map.
"""

from __future__ import annotations

from itertools import islice

from reclaimlab.mm.gfp import GFP_KERNEL
from reclaimlab.mm.slab import kmem_cache_alloc, kmem_cache_free

from . import inode as vfs_inode
from .fs import (
    DCACHE_DENTRY_KILLED, DCACHE_DONTCACHE, DCACHE_HASHED, DCACHE_LRU_LIST, DCACHE_REFERENCED,
    DCACHE_SHRINK_LIST, I_DONTCACHE, INODE_FREED_MARK, Dentry, Inode, SuperBlock, dentry_path,
)

__all__ = [
    "Dentry", "dentry_path", "d_alloc", "d_make_root", "d_instantiate", "d_add", "d_lookup",
    "dget", "dput", "d_delete", "d_drop", "d_unhashed", "d_is_negative", "retain_dentry",
    "__dentry_kill", "dentry_unlink_inode", "prune_dcache_sb", "shrink_dentry_list",
    "shrink_dcache_sb", "shrink_dcache_parent", "shrink_dcache_for_umount", "check_sb_dentries",
]


# ------------------------------------------------------------------ allocation
def __d_alloc(sb: SuperBlock, name: str, parent: Dentry | None):
    """``__d_alloc``: a dentry from the ``dentry`` slab (``GFP_KERNEL``); None on ENOMEM."""
    slab = yield from kmem_cache_alloc(sb.s_sim.vfs.dentry_cachep, GFP_KERNEL)
    if slab is None:
        return None
    dentry = Dentry(sb, name, parent)
    dentry.d_slab = slab
    return dentry


def d_alloc(parent: Dentry, name: str):
    """``d_alloc``: an unhashed negative child of ``parent`` (holding a reference on it), with
    one reference for the caller; None on ENOMEM."""
    dentry = yield from __d_alloc(parent.d_sb, name, parent)
    if dentry is not None:
        parent.d_count += 1
    return dentry


def d_make_root(inode: Inode):
    """``d_make_root``: the root dentry of a superblock for ``inode`` (consumes the inode
    reference; drops it on ENOMEM and returns None)."""
    root = yield from __d_alloc(inode.i_sb, "/", None)
    if root is None:
        yield from vfs_inode.iput(inode)
        return None
    root.d_inode = inode
    return root


def dentry_free(dentry: Dentry) -> None:
    """``dentry_free``: return the dentry to its slab."""
    if dentry.d_slab is not None:
        kmem_cache_free(dentry.d_sb.s_sim.vfs.dentry_cachep, dentry.d_slab)
        dentry.d_slab = None


# ------------------------------------------------------------------ hash and inode
def d_unhashed(dentry: Dentry) -> bool:
    """``d_unhashed``."""
    return not dentry.d_flags & DCACHE_HASHED


def d_is_negative(dentry: Dentry) -> bool:
    """``d_is_negative``."""
    return dentry.d_inode is None


def __d_rehash(dentry: Dentry) -> None:
    """``__d_rehash``: make ``dentry`` findable under its parent."""
    parent = dentry.d_parent
    children = parent.d_children
    if children is None:
        children = parent.d_children = {}
    old = children.get(dentry.d_name)
    if old is not None and old is not dentry:
        dentry.d_sb.s_sim.vfs.violation(f"__d_rehash: {old!r} already hashed")
        old.d_flags &= ~DCACHE_HASHED
    children[dentry.d_name] = dentry
    dentry.d_flags |= DCACHE_HASHED


def __d_drop(dentry: Dentry) -> None:
    """``__d_drop``: unhash (lookups no longer find it; existing references stay valid)."""
    if dentry.d_flags & DCACHE_HASHED:
        dentry.d_flags &= ~DCACHE_HASHED
        children = dentry.d_parent.d_children
        if children is not None and children.get(dentry.d_name) is dentry:
            del children[dentry.d_name]


d_drop = __d_drop


def d_instantiate(dentry: Dentry, inode: Inode | None) -> None:
    """``d_instantiate``: attach ``inode`` (the dentry takes over the caller's reference)."""
    dentry.d_inode = inode


def d_add(dentry: Dentry, inode: Inode | None) -> None:
    """``d_add``: instantiate (``inode`` may be None: a negative dentry) and hash."""
    d_instantiate(dentry, inode)
    __d_rehash(dentry)


def d_lookup(parent: Dentry, name: str) -> Dentry | None:
    """``d_lookup``: the hashed child ``name`` of ``parent`` with a new reference, or None."""
    children = parent.d_children
    if children is None:
        return None
    dentry = children.get(name)
    if dentry is not None:
        dentry.d_count += 1
    return dentry


def dget(dentry: Dentry) -> Dentry:
    """``dget``."""
    if dentry.d_flags & DCACHE_DENTRY_KILLED:
        dentry.d_sb.s_sim.vfs.violation(f"dget: use after free of {dentry!r}")
    dentry.d_count += 1
    return dentry


# ------------------------------------------------------------------ LRU
def d_lru_add(dentry: Dentry) -> None:
    """``d_lru_add``."""
    dentry.d_flags |= DCACHE_LRU_LIST
    dentry.d_sb.s_dentry_lru[dentry] = None


def d_lru_del(dentry: Dentry) -> None:
    """``d_lru_del``."""
    dentry.d_flags &= ~DCACHE_LRU_LIST
    dentry.d_sb.s_dentry_lru.pop(dentry, None)


def retain_dentry(dentry: Dentry) -> bool:
    """``retain_dentry``: should an unused dentry stay cached? Yes if hashed and not dontcache;
    then it is put on the LRU, or marked ``DCACHE_REFERENCED`` if already there."""
    if not dentry.d_flags & DCACHE_HASHED or dentry.d_flags & DCACHE_DONTCACHE:
        return False
    inode = dentry.d_inode
    if inode is not None and inode.i_state & I_DONTCACHE:
        return False
    if not dentry.d_flags & DCACHE_LRU_LIST:
        d_lru_add(dentry)
    elif not dentry.d_flags & DCACHE_REFERENCED:
        dentry.d_flags |= DCACHE_REFERENCED
    return True


# ------------------------------------------------------------------ killing
def dentry_unlink_inode(dentry: Dentry):
    """``dentry_unlink_inode``: detach the inode and drop the dentry's reference on it."""
    inode = dentry.d_inode
    dentry.d_inode = None
    if inode is not None:
        yield from vfs_inode.iput(inode)


def __dentry_kill(dentry: Dentry):
    """``__dentry_kill``: unhash, off the LRU, ``iput`` the inode, free (unless a shrink list
    owns it), drop the parent reference. Returns the parent if that was its last reference."""
    if dentry.d_flags & DCACHE_LRU_LIST and not dentry.d_flags & DCACHE_SHRINK_LIST:
        d_lru_del(dentry)
    __d_drop(dentry)
    dentry.d_flags |= DCACHE_DENTRY_KILLED
    yield from dentry_unlink_inode(dentry)
    if not dentry.d_flags & DCACHE_SHRINK_LIST:
        dentry_free(dentry)
    parent = dentry.d_parent
    if parent is dentry:
        return None
    parent.d_count -= 1
    if parent.d_count < 0:
        parent.d_sb.s_sim.vfs.violation(f"__dentry_kill: d_count underflow on {parent!r}")
    return parent if parent.d_count == 0 else None


def dput(dentry: Dentry | None):
    """``dput``: drop a reference; at zero keep the dentry cached (``retain_dentry``) or kill it
    and continue with the parent if that was its last reference."""
    if dentry is None:
        return
    if dentry.d_count <= 0 or dentry.d_flags & DCACHE_DENTRY_KILLED:
        dentry.d_sb.s_sim.vfs.violation(f"dput: d_count underflow or dead {dentry!r}")
        return
    dentry.d_count -= 1
    if dentry.d_count:
        return
    while dentry is not None:
        if retain_dentry(dentry):
            return
        dentry = yield from __dentry_kill(dentry)


def d_delete(dentry: Dentry):
    """``d_delete`` (after a successful unlink/rmdir): if the caller holds the only reference,
    make the dentry negative now (the final ``iput`` happens here); else unhash it and leave the
    inode to the last holder."""
    if dentry.d_count == 1:
        yield from dentry_unlink_inode(dentry)
    else:
        __d_drop(dentry)


# ------------------------------------------------------------------ shrinking
def dentry_lru_isolate(dentry: Dentry, dispose: list[Dentry]) -> None:
    """``dentry_lru_isolate``: referenced ⇒ off the LRU; ``DCACHE_REFERENCED`` ⇒ clear and
    rotate; else move to ``dispose`` (``d_lru_shrink_move``)."""
    lru = dentry.d_sb.s_dentry_lru
    if dentry.d_count:
        d_lru_del(dentry)
        return
    if dentry.d_flags & DCACHE_REFERENCED:
        dentry.d_flags &= ~DCACHE_REFERENCED
        del lru[dentry]
        lru[dentry] = None
        return
    del lru[dentry]
    dentry.d_flags |= DCACHE_SHRINK_LIST
    dispose.append(dentry)


def shrink_dentry_list(dispose: list[Dentry]):
    """``shrink_dentry_list``: kill each dentry still unused (``shrink_kill``: ancestors whose
    count drops to zero go too); free those another path killed meanwhile."""
    for dentry in dispose:
        dentry.d_flags &= ~(DCACHE_SHRINK_LIST | DCACHE_LRU_LIST)
        if dentry.d_flags & DCACHE_DENTRY_KILLED:
            dentry_free(dentry)
            continue
        if dentry.d_count:
            continue
        victim: Dentry | None = dentry
        while victim is not None:
            victim = yield from __dentry_kill(victim)


def prune_dcache_sb(sb: SuperBlock, nr_to_scan: int):
    """``prune_dcache_sb``: isolate up to ``nr_to_scan`` LRU dentries oldest first and kill them.
    Returns the number of dentries put on the shrink list."""
    dispose: list[Dentry] = []
    lru = sb.s_dentry_lru
    for dentry in list(islice(lru, nr_to_scan)):
        if dentry in lru:
            dentry_lru_isolate(dentry, dispose)
    yield from shrink_dentry_list(dispose)
    return len(dispose)


def shrink_dcache_sb(sb: SuperBlock):
    """``shrink_dcache_sb``: kill every unused dentry on the LRU, ignoring ``DCACHE_REFERENCED``
    (``dentry_lru_isolate_shrink``; drop_caches)."""
    lru = sb.s_dentry_lru
    while lru:
        dispose = []
        for dentry in list(lru):
            if dentry.d_count:
                d_lru_del(dentry)
            else:
                del lru[dentry]
                dentry.d_flags |= DCACHE_SHRINK_LIST
                dispose.append(dentry)
        yield from shrink_dentry_list(dispose)


def _tree(root: Dentry) -> list[Dentry]:
    """Hashed descendants of ``root``, children before parents (``d_walk`` post-order)."""
    out: list[Dentry] = []
    stack = [(root, False)]
    while stack:
        dentry, seen = stack.pop()
        if seen:
            out.append(dentry)
            continue
        stack.append((dentry, True))
        if dentry.d_children:
            stack.extend((c, False) for c in reversed(list(dentry.d_children.values())))
    return out


def shrink_dcache_parent(parent: Dentry):
    """``shrink_dcache_parent``: kill every unused descendant of ``parent``, until none is left."""
    while True:
        dispose = []
        for dentry in _tree(parent):
            if dentry is parent or dentry.d_count or dentry.d_flags & DCACHE_SHRINK_LIST:
                continue
            if dentry.d_flags & DCACHE_LRU_LIST:
                del dentry.d_sb.s_dentry_lru[dentry]
            dentry.d_flags |= DCACHE_SHRINK_LIST
            dispose.append(dentry)
        if not dispose:
            return
        yield from shrink_dentry_list(dispose)


def shrink_dcache_for_umount(sb: SuperBlock):
    """``shrink_dcache_for_umount``: kill the whole tree; dentries still referenced are a bug
    ("Dentry still in use" — recorded as a violation and left alone)."""
    root = sb.s_root
    if root is None:
        return
    sb.s_root = None
    yield from shrink_dcache_parent(root)
    for dentry in _tree(root):
        if dentry is not root or dentry.d_count > 1:
            sb.s_sim.vfs.violation(f"umount: dentry still in use {dentry!r} "
                                   f"(count {dentry.d_count})")
    yield from dput(root)


# ------------------------------------------------------------------ invariants
def check_sb_dentries(sb: SuperBlock) -> list[str]:
    """Refcount and use-after-free sanity of a live superblock's dentries."""
    out = []
    roots = [sb.s_root] if sb.s_root is not None else []
    for dentry in (d for r in roots for d in _tree(r)):
        if dentry.d_count < 0:
            out.append(f"{dentry!r}: negative d_count {dentry.d_count}")
        inode = dentry.d_inode
        if inode is not None and inode.i_state & INODE_FREED_MARK:
            out.append(f"{dentry!r}: points to freed {inode!r}")
    for dentry in sb.s_dentry_lru:
        if dentry.d_flags & DCACHE_DENTRY_KILLED:
            out.append(f"{dentry!r}: killed dentry on the LRU")
    return out
