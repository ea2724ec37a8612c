"""Overlay superblock and inodes (``fs/overlayfs/super.c``, ``inode.c``, ``util.c``),
kernel-semantics §7.

An overlay inode pins the real dentries it stands for: ``oi_upper`` (``__upperdentry``) and
``oi_lower`` (the lower stack; one layer here). ``ovl_destroy_inode`` drops them with ``dput``, so
when dcache reclaim of the overlay superblock kills an overlay dentry, the last reference to a real
dentry — and through it to a real inode of another superblock — can be dropped inside the overlay
shrinker: if that real file was unlinked meanwhile, its whole eviction runs there (W1). Overlay
inodes are never cached unreferenced (``drop_inode = generic_delete_inode``) and are not hashed
(each overlay dentry gets its own inode: no hard links across the overlay).

Mount options: ``lowerdir`` (required), ``upperdir`` and ``workdir`` (both or neither) — absolute
paths of existing directories on mounted filesystems; the overlay holds their dentries and is a
dependent of those superblocks (they cannot be unmounted under it). Without ``upperdir`` the
overlay is read-only (``EROFS`` on modification). ``tunables`` must be empty (there are none).

Simplified: a single lower layer; no redirect/metacopy/index/xino; the workdir is only checked;
``sync_fs`` syncs the upper filesystem (``ovl_sync_fs``).
"""

from __future__ import annotations

from typing import Any

from reclaimlab.mm.gfp import GFP_KERNEL
from reclaimlab.mm.slab import kmem_cache_alloc, kmem_cache_create, kmem_cache_free
from reclaimlab.sim import down_read, up_read
from reclaimlab.vfs import dcache
from reclaimlab.vfs import inode as vfs_inode
from reclaimlab.vfs.errors import KernelError, unwinding
from reclaimlab.vfs.fs import S_ISDIR, Dentry, FileSystemType, Inode, SuperBlock, SuperOperations
from reclaimlab.vfs.namei import filename_lookup
from reclaimlab.vfs.super import alloc_super, kill_super, sync_filesystem, vfs_statfs

OVL_INODE_SLAB_SIZE = 760  # sizeof(struct ovl_inode) with its embedded VFS inode


class OvlInode(Inode):
    """``struct ovl_inode``: the VFS inode plus the real dentries it pins."""

    __slots__ = ("oi_upper", "oi_lower")

    def __init__(self) -> None:
        super().__init__()
        self.oi_upper: Dentry | None = None
        self.oi_lower: Dentry | None = None


class OvlFs:
    """``struct ovl_fs`` (``sb->s_fs_info``): the layer roots and the real superblocks."""

    def __init__(self, upper_root: Dentry | None, lower_root: Dentry,
                 work_root: Dentry | None) -> None:
        self.upper_root = upper_root
        self.lower_root = lower_root
        self.work_root = work_root
        self.next_ino = 1

    @property
    def upper_sb(self) -> SuperBlock | None:
        return self.upper_root.d_sb if self.upper_root is not None else None

    def layers(self) -> list[Dentry]:
        return [d for d in (self.upper_root, self.lower_root, self.work_root) if d is not None]


def ovl_real(inode: OvlInode) -> Dentry:
    """``ovl_dentry_real``: the upper dentry if copied up, else the lower one."""
    return inode.oi_upper if inode.oi_upper is not None else inode.oi_lower  # type: ignore


def ovl_destroy_inode(inode: OvlInode):
    """``ovl_destroy_inode``: ``dput`` the upper dentry, ``ovl_stack_put`` the lower — the dput
    that, from dcache reclaim, can drop the last reference to a real unlinked inode (W1)."""
    upper, lower = inode.oi_upper, inode.oi_lower
    inode.oi_upper = inode.oi_lower = None
    yield from dcache.dput(upper)
    yield from ovl_stack_put(lower)


class OvlSuperOps(SuperOperations):
    """``ovl_super_operations``."""

    def alloc_inode(self, sb: SuperBlock):
        """``ovl_alloc_inode``: from the ``ovl_inode`` slab."""
        slab = yield from kmem_cache_alloc(sb.s_type.inode_cachep(sb.s_sim), GFP_KERNEL)
        if slab is None:
            return None
        oi = OvlInode()
        oi.i_slab = slab
        return oi

    destroy_inode = staticmethod(ovl_destroy_inode)

    def free_inode(self, inode: OvlInode) -> None:
        """``ovl_free_inode``."""
        kmem_cache_free(inode.i_sb.s_type.inode_cachep(inode.i_sb.s_sim), inode.i_slab)

    drop_inode = staticmethod(vfs_inode.generic_delete_inode)

    def statfs(self, sb: SuperBlock) -> dict:
        """``ovl_statfs``: the upper (or only) real filesystem's numbers."""
        ofs: OvlFs = sb.s_fs_info
        return vfs_statfs(ovl_real_root(ofs).d_sb)

    def sync_fs(self, sb: SuperBlock, wait: int):
        """``ovl_sync_fs``: with ``wait``, ``sync_filesystem`` of the upper superblock."""
        upper = sb.s_fs_info.upper_sb
        if not wait or upper is None:
            return
        yield from down_read(upper.s_umount)
        try:
            yield from sync_filesystem(upper)
        finally:
            if not unwinding():
                up_read(upper.s_umount)

    def put_super(self, sb: SuperBlock):
        """``ovl_put_super`` → ``ovl_free_fs``: release the layers."""
        ofs: OvlFs = sb.s_fs_info
        for root in ofs.layers():
            if sb in root.d_sb.s_dependents:
                root.d_sb.s_dependents.remove(sb)
            yield from dcache.dput(root)


def ovl_stack_put(lower: Dentry | None):
    """``ovl_stack_put``: ``dput`` each lower dentry (one layer here)."""
    yield from dcache.dput(lower)


def ovl_real_root(ofs: OvlFs) -> Dentry:
    return ofs.upper_root if ofs.upper_root is not None else ofs.lower_root


def ovl_new_inode(sb: SuperBlock, upper: Dentry | None, lower: Dentry | None):
    """``ovl_get_inode``: an overlay inode standing for ``upper``/``lower`` (references taken
    over from the caller); attributes copied from the real inode (``ovl_copyattr``)."""
    from .file import OVL_FILE_OPS
    from .namei import OVL_DIR_IOPS, OVL_FILE_IOPS

    inode = yield from vfs_inode.new_inode(sb)
    if inode is None:
        yield from dcache.dput(upper)
        yield from dcache.dput(lower)
        raise KernelError("ENOMEM", "ovl_get_inode")
    ofs: OvlFs = sb.s_fs_info
    inode.i_ino = ofs.next_ino
    ofs.next_ino += 1
    inode.oi_upper = upper
    inode.oi_lower = lower
    ovl_copyattr(inode)
    # The overlay's own link count: it never frees blocks, so it is not tracked as unlinked.
    inode.i_nlink = max(ovl_real(inode).d_inode.i_nlink, 1)
    inode.i_op = OVL_DIR_IOPS if S_ISDIR(inode.i_mode) else OVL_FILE_IOPS
    inode.i_fop = OVL_FILE_OPS
    return inode


def ovl_copyattr(inode: OvlInode) -> None:
    """``ovl_copyattr``: mode, size and blocks from the real inode."""
    real = ovl_real(inode).d_inode
    inode.i_mode = real.i_mode
    inode.i_size = real.i_size
    inode.i_blocks = real.i_blocks


def _layer(sim: Any, path: str | None, what: str):
    """Resolve a layer directory (``ovl_mount_dir``), with a clear error."""
    if path is None:
        return None
    try:
        dentry = yield from filename_lookup(sim.vfs, path)
    except KernelError as e:
        raise KernelError(e.errno, f"overlay: {what} {path}: no such directory "
                                   "(is its filesystem mounted?)") from None
    if not S_ISDIR(dentry.d_inode.i_mode):
        yield from dcache.dput(dentry)
        raise KernelError("ENOTDIR", f"overlay: {what} {path} is not a directory")
    return dentry


class OverlayFsType(FileSystemType):
    """``ovl_fs_type``: ``mount(sim, None, {"lowerdir", "upperdir", "workdir"})``."""

    name = "overlay"
    requires_dev = False
    native_design = "sync"

    def inode_cachep(self, sim: Any) -> Any:
        """``ovl_inode_cachep``, created on first use per simulation."""
        cache = getattr(sim.vfs, "ovl_inode_cachep", None)
        if cache is None:
            cache = sim.vfs.ovl_inode_cachep = kmem_cache_create(sim, "ovl_inode",
                                                                 OVL_INODE_SLAB_SIZE)
        return cache

    def mount(self, sim: Any, dev: Any, opts: dict):
        """``ovl_fill_super``: resolve the layers, make the root overlay inode and dentry."""
        unknown = set(opts) - {"lowerdir", "upperdir", "workdir", "tunables"}
        if unknown or opts.get("tunables"):
            raise KernelError("EINVAL", f"overlay: unknown options "
                                        f"{sorted(unknown) or sorted(opts['tunables'])}")
        if "lowerdir" not in opts:
            raise KernelError("EINVAL", "overlay: missing 'lowerdir'")
        if ("upperdir" in opts) != ("workdir" in opts):
            raise KernelError("EINVAL", "overlay: 'upperdir' and 'workdir' go together")
        taken: list[Dentry] = []
        try:
            for key in ("lowerdir", "upperdir", "workdir"):
                taken.append((yield from _layer(sim, opts.get(key), key)))
        except KernelError:
            for d in taken:
                yield from dcache.dput(d)
            raise
        lower, upper, work = taken
        if upper is not None and work.d_sb is not upper.d_sb:
            for d in taken:
                yield from dcache.dput(d)
            raise KernelError("EXDEV", "overlay: workdir and upperdir must be on the same fs")
        sb = alloc_super(sim, self, None, "overlay")
        sb.s_op = OvlSuperOps()
        ofs = sb.s_fs_info = OvlFs(upper, lower, work)
        root = yield from ovl_new_inode(sb, dcache.dget(upper) if upper else None,
                                        dcache.dget(lower))
        sb.s_root = yield from dcache.d_make_root(root)
        if sb.s_root is None:
            raise KernelError("ENOMEM", "overlay root")
        for layer in ofs.layers():
            if sb not in layer.d_sb.s_dependents:
                layer.d_sb.s_dependents.append(sb)
        return sb

    def kill_sb(self, sb: SuperBlock):
        """``kill_anon_super``."""
        yield from kill_super(sb)
