"""The VFS structures (``include/linux/fs.h``, ``include/linux/dcache.h``): ``struct inode``,
``struct dentry``, ``struct super_block``, ``struct file``, their flag bits and the operation
tables a filesystem fills in.

Filesystems embed the VFS inode the Python way: their inode class subclasses ``Inode`` with extra
``__slots__`` (``struct ext4_inode_info`` embeds ``vfs_inode``), allocated by
``s_op.alloc_inode``. Operation tables are objects whose optional methods are ``None`` in the
base class, so ``if sb.s_op.evict_inode:`` reads like the kernel's ``if (op->evict_inode)``.

Host memory: every per-object structure uses ``__slots__``; an inode's page cache
(``i_mapping``) is created on first use, because most cached inodes of a metadata-heavy
workload never have one.
"""

from __future__ import annotations

from typing import Any, Callable

from reclaimlab.mm import filemap
from reclaimlab.sim import LockdepMap, RwSemaphore, WaitQueue

# ---------------------------------------------------------------- inode->i_state (fs.h)
I_DIRTY_SYNC = 1 << 0
I_DIRTY_DATASYNC = 1 << 1
I_DIRTY_PAGES = 1 << 2
I_NEW = 1 << 3
I_WILL_FREE = 1 << 4
I_FREEING = 1 << 5
I_CLEAR = 1 << 6
I_SYNC = 1 << 7
I_REFERENCED = 1 << 8
I_DIRTY_TIME = 1 << 11
I_CREATING = 1 << 15
I_DONTCACHE = 1 << 16
I_DIRTY_INODE = I_DIRTY_SYNC | I_DIRTY_DATASYNC
I_DIRTY = I_DIRTY_INODE | I_DIRTY_PAGES
I_DIRTY_ALL = I_DIRTY | I_DIRTY_TIME
# Simulator-only: set when the inode object was freed, so any later use is reported.
INODE_FREED_MARK = 1 << 30

# ---------------------------------------------------------------- inode->i_flags (fs.h)
S_DEAD = 1 << 4  # removed directory: no lookups or creations in it

# ---------------------------------------------------------------- i_mode (stat.h)
S_IFMT = 0o170000
S_IFDIR = 0o040000
S_IFREG = 0o100000
S_IFCHR = 0o020000


def S_ISDIR(mode: int) -> bool:
    return mode & S_IFMT == S_IFDIR


def S_ISREG(mode: int) -> bool:
    return mode & S_IFMT == S_IFREG


def S_ISCHR(mode: int) -> bool:
    return mode & S_IFMT == S_IFCHR


# ---------------------------------------------------------------- dentry->d_flags (dcache.h)
DCACHE_REFERENCED = 1 << 6
DCACHE_DONTCACHE = 1 << 7
DCACHE_LRU_LIST = 1 << 19
DCACHE_SHRINK_LIST = 1 << 18
DCACHE_DENTRY_KILLED = 1 << 14
# Stand-in for "d_hash is on the hash chain" (hlist_bl_unhashed() false).
DCACHE_HASHED = 1 << 28

# ---------------------------------------------------------------- sb->s_flags
SB_RDONLY = 1 << 0
SB_ACTIVE = 1 << 30
SB_BORN = 1 << 29
SB_DYING = 1 << 24

# ---------------------------------------------------------------- freeze levels (fs.h)
SB_UNFROZEN = 0
SB_FREEZE_WRITE = 1
SB_FREEZE_PAGEFAULT = 2
SB_FREEZE_FS = 3
SB_FREEZE_COMPLETE = 4
SB_FREEZE_LEVELS = SB_FREEZE_COMPLETE - 1
_SB_WRITERS_NAMES = ("sb_writers", "sb_pagefaults", "sb_internal")

# ---------------------------------------------------------------- open flags (fcntl.h)
O_RDONLY = 0o0
O_WRONLY = 0o1
O_RDWR = 0o2
O_ACCMODE = 0o3
O_CREAT = 0o100
O_EXCL = 0o200
O_TRUNC = 0o1000


class SuperOperations:
    """``struct super_operations``. Optional methods are None here; a filesystem subclasses.

    Generators: ``alloc_inode(sb)`` (returns the inode or None on ENOMEM), ``destroy_inode``,
    ``evict_inode``, ``write_inode(inode, wbc)``, ``dirty_inode(inode, flags)``,
    ``sync_fs(sb, wait)``, ``put_super(sb)``, ``freeze_fs(sb)``, ``unfreeze_fs(sb)``,
    ``free_cached_objects(sb, nr_to_scan)`` (returns freed), ``inactive(inode)`` (inodegc).
    Plain: ``free_inode(inode)``, ``drop_inode(inode) -> bool``, ``statfs(sb) -> dict``,
    ``nr_cached_objects(sb) -> int``, ``needs_inactive(inode) -> bool`` (evicting the inode is
    hard: the designs of ``vfs.designs`` key on it).
    """

    alloc_inode: Callable[..., Any] | None = None
    destroy_inode: Callable[..., Any] | None = None
    free_inode: Callable[..., Any] | None = None
    evict_inode: Callable[..., Any] | None = None
    drop_inode: Callable[..., Any] | None = None
    write_inode: Callable[..., Any] | None = None
    dirty_inode: Callable[..., Any] | None = None
    sync_fs: Callable[..., Any] | None = None
    statfs: Callable[..., Any] | None = None
    nr_cached_objects: Callable[..., Any] | None = None
    free_cached_objects: Callable[..., Any] | None = None
    put_super: Callable[..., Any] | None = None
    freeze_fs: Callable[..., Any] | None = None
    unfreeze_fs: Callable[..., Any] | None = None
    inactive: Callable[..., Any] | None = None
    needs_inactive: Callable[..., Any] | None = None


class InodeOperations:
    """``struct inode_operations``; all generators. Missing ones make the VFS return
    ``EPERM`` (namespace operations) or ``EOPNOTSUPP`` (xattrs).

    ``lookup(dir, dentry)``: find ``dentry.d_name`` in ``dir`` and ``d_add`` the inode or None.
    ``create(dir, dentry, mode)`` / ``mkdir(dir, dentry, mode)``: ``d_instantiate`` a new inode.
    ``unlink(dir, dentry)`` / ``rmdir(dir, dentry)``: drop the link (``drop_nlink`` /
    ``clear_nlink``); the VFS then calls ``d_delete``.
    ``rename(old_dir, old_dentry, new_dir, new_dentry)``; ``setxattr(dentry, name, size)``;
    ``getxattr(dentry, name) -> size``.
    """

    lookup: Callable[..., Any] | None = None
    create: Callable[..., Any] | None = None
    mkdir: Callable[..., Any] | None = None
    unlink: Callable[..., Any] | None = None
    rmdir: Callable[..., Any] | None = None
    rename: Callable[..., Any] | None = None
    setxattr: Callable[..., Any] | None = None
    getxattr: Callable[..., Any] | None = None


class FileOperations:
    """``struct file_operations``; None ⇒ the VFS's generic page-cache implementation
    (``vfs.file``). Generators: ``open(inode, file)``, ``release(inode, file)``,
    ``read(file, nbytes) -> int``, ``write(file, nbytes) -> int``, ``fsync(file, datasync)``."""

    open: Callable[..., Any] | None = None
    release: Callable[..., Any] | None = None
    read: Callable[..., Any] | None = None
    write: Callable[..., Any] | None = None
    fsync: Callable[..., Any] | None = None


class AddressSpaceOperations:
    """``struct address_space_operations``; generators.

    ``read_folio(file, folio)``: fill a folio that is not uptodate (IO) and set ``uptodate``.
    ``write_begin(file, mapping, index)``: reserve/allocate the blocks behind page ``index``
    before the VFS dirties it (may raise ``KernelError("ENOSPC")``).
    ``writepages(mapping, nr) -> written``: write back up to ``nr`` dirty folios; called only by
    writeback (flusher threads, sync, fsync), never by reclaim.
    """

    read_folio: Callable[..., Any] | None = None
    write_begin: Callable[..., Any] | None = None
    writepages: Callable[..., Any] | None = None


class FileSystemType:
    """``struct file_system_type``. ``mount(sim, dev, opts)`` is a generator returning a filled
    ``SuperBlock`` (``s_op``, ``s_root`` set) — ``dev`` is a ``BlockDevice`` or None.
    ``native_design`` is the eviction design the ``native`` switch picks for this filesystem:
    ``"sync"`` (ext4) or ``"inodegc"`` (XFS)."""

    name: str = "none"
    native_design: str = "sync"
    requires_dev: bool = True

    def mount(self, sim: Any, dev: Any, opts: dict):  # pragma: no cover - abstract
        raise NotImplementedError
        yield


# Scenario ``[[fs]]`` keys that are the mount's, not the filesystem's options.
_MOUNT_KEYS = ("tunables", "type", "mountpoint", "device", "lazytime")


def parse_mount_options(fs_name: str, config_cls: type, opts: dict) -> Any:
    """``parse_monolithic_mount_data``/``fs_parse``: build ``config_cls`` (a dataclass) from the
    ``[[fs]]`` keys with ``tunables`` merged in. ``inodegc_*`` keys belong to the inodegc
    machinery and are skipped; an unknown key is rejected, as ``fs_parse`` rejects an unknown
    parameter (simplified: a ``ValueError`` instead of ``-EINVAL``)."""
    merged = {k: v for k, v in opts.items() if k not in _MOUNT_KEYS}
    merged.update(opts.get("tunables", {}))
    merged = {k: v for k, v in merged.items() if not k.startswith("inodegc_")}
    known = config_cls.__dataclass_fields__
    bad = sorted(k for k in merged if k not in known)
    if bad:
        raise ValueError(f"{fs_name}: unknown mount option(s) {', '.join(bad)} "
                         f"(known: {', '.join(known)})")
    return config_cls(**merged)


class Inode:
    """``struct inode``.

    ``i_count`` is the live reference count, ``i_obj_count`` the passive reference on the memory
    object (Josef Bacik's 2025 rework): the inode is freed when ``destroy_inode`` has run and
    ``i_obj_count`` reaches 0. ``i_data`` is the page cache (``struct address_space``) or None
    until first used through ``i_mapping``; ``i_aops`` are the operations it gets. ``i_slab`` is
    the slab object id backing this inode. Hash, sb list and LRU membership are the
    superblock's ``s_inode_hash``, ``s_inodes`` and ``s_inode_lru`` (insertion-ordered dicts).
    """

    __slots__ = ("i_ino", "i_sb", "i_mode", "i_nlink", "i_count", "i_obj_count", "i_state",
                 "i_size", "i_blocks", "i_op", "i_fop", "i_aops", "i_data", "i_rwsem",
                 "i_private", "i_slab", "dirtied_when", "i_flags", "i_writecount",
                 "__weakref__")  # detectors remember freed inodes without keeping them alive

    def __init__(self) -> None:
        self.i_ino = 0
        self.i_sb: SuperBlock = None  # type: ignore[assignment]
        self.i_mode = 0
        self.i_nlink = 1
        self.i_count = 1
        self.i_obj_count = 1
        self.i_state = 0
        self.i_size = 0
        self.i_blocks = 0
        self.i_op: InodeOperations | None = None
        self.i_fop: FileOperations | None = None
        self.i_aops: AddressSpaceOperations | None = None
        self.i_data: Any = None
        self.i_rwsem: RwSemaphore | None = None
        self.i_private: Any = None
        self.i_slab: Any = None
        self.dirtied_when = 0
        self.i_flags = 0
        self.i_writecount = 0  # open files that may write (get_write_access)

    @property
    def i_mapping(self) -> Any:
        """``inode->i_mapping``: the page cache, created on first use
        (``address_space_init_once``)."""
        m = self.i_data
        if m is None:
            sb = self.i_sb
            m = self.i_data = filemap.address_space(sb.s_sim, self, min_order=sb.s_min_folio_order)
            m.a_ops = self.i_aops
        return m

    def __repr__(self) -> str:
        sb = self.i_sb
        return f"inode {sb.s_id if sb is not None else '?'}:{self.i_ino}"


class Dentry:
    """``struct dentry``: ``d_count`` is the lockref count; ``d_children`` maps names to the hashed
    children (the dcache hash chain for this parent and the ``d_children`` list in one); a root
    dentry is its own parent."""

    __slots__ = ("d_name", "d_parent", "d_inode", "d_sb", "d_count", "d_flags", "d_children",
                 "d_fsdata", "d_slab")

    def __init__(self, sb: "SuperBlock", name: str, parent: "Dentry | None") -> None:
        self.d_name = name
        self.d_parent = parent if parent is not None else self
        self.d_inode: Inode | None = None
        self.d_sb = sb
        self.d_count = 1
        self.d_flags = 0
        self.d_children: dict[str, Dentry] | None = None
        self.d_fsdata: Any = None
        self.d_slab: Any = None

    def __repr__(self) -> str:
        return f"dentry {self.d_sb.s_id}:{dentry_path(self)}"


def dentry_path(dentry: Dentry) -> str:
    """``dentry_path_raw``: the dentry's path from its superblock root."""
    parts = []
    while dentry.d_parent is not dentry:
        parts.append(dentry.d_name)
        dentry = dentry.d_parent
    return "/" + "/".join(reversed(parts))


class SbWriters:
    """``struct sb_writers``: freeze level, writers per level, and one lockdep map per level
    and filesystem type (``sb_writers#ext4``, ``sb_pagefaults#ext4``, ``sb_internal#ext4``)."""

    __slots__ = ("frozen", "count", "wait_unfrozen", "wait_drained", "lock_map")

    def __init__(self, fs_type: FileSystemType) -> None:
        self.frozen = SB_UNFROZEN
        self.count = [0] * SB_FREEZE_LEVELS
        self.wait_unfrozen = WaitQueue(f"{fs_type.name}:sb_writers.wait_unfrozen")
        self.wait_drained = WaitQueue(f"{fs_type.name}:sb_writers.rw_sem")
        maps = fs_type.__dict__.get("_sb_writers_maps")
        if maps is None:
            # One lock class per filesystem type, as the kernel's type->s_writers_key[]: an
            # overlay write nests the upper filesystem's sb_writers inside its own.
            maps = tuple(LockdepMap(f"{n}#{fs_type.name}") for n in _SB_WRITERS_NAMES)
            setattr(fs_type, "_sb_writers_maps", maps)
        self.lock_map = maps


class SuperBlock:
    """``struct super_block``. ``s_umount`` is the rw_semaphore the shrinker trylocks;
    ``s_inodes`` (sb list), ``s_inode_hash`` (ino → inode), ``s_inode_lru`` and ``s_dentry_lru``
    are insertion-ordered dicts (LRU order: oldest first). ``s_wb`` is the writeback state
    (``vfs.fs_writeback``), ``s_evict`` the passive-ref eviction queue (``vfs.evict_designs``),
    ``s_deferred_evict`` the other designs' deferred-eviction queue (``vfs.evict_queue``),
    ``s_evict_design`` the design the switch resolved for this superblock. ``s_fs_info`` belongs
    to the filesystem; ``s_min_folio_order`` is the page-cache folio order for bs > PS."""

    def __init__(self, sim: Any, fs_type: FileSystemType, bdev: Any = None,
                 s_id: str | None = None) -> None:
        self.s_sim = sim
        self.s_type = fs_type
        self.s_bdev = bdev
        self.s_id = s_id or (bdev.name if bdev is not None else fs_type.name)
        self.s_op: SuperOperations = SuperOperations()
        self.s_flags = 0
        self.s_umount = RwSemaphore(f"&type->s_umount_key#{fs_type.name}")
        self.s_root: Dentry | None = None
        self.s_fs_info: Any = None
        self.s_blocksize = 4096
        self.s_min_folio_order = 0
        self.s_inodes: dict[Inode, None] = {}
        self.s_inode_hash: dict[int, Inode] = {}
        self.s_inode_lru: dict[Inode, None] = {}
        self.s_dentry_lru: dict[Dentry, None] = {}
        self.s_writers = SbWriters(fs_type)
        self.s_shrink: Any = None
        self.s_wb: Any = None
        self.s_evict: Any = None
        self.s_deferred_evict: Any = None
        self.s_evict_design = "sync"
        self.s_mounts = 0
        self.s_dependents: list[SuperBlock] = []

    def __repr__(self) -> str:
        return f"sb {self.s_type.name}:{self.s_id}"


class File:
    """``struct file``: holds a reference on ``f_dentry`` (and so on its inode)."""

    __slots__ = ("f_dentry", "f_inode", "f_op", "f_flags", "f_pos", "f_count", "private_data",
                 "f_slab")

    def __init__(self, dentry: Dentry, flags: int) -> None:
        self.f_dentry = dentry
        self.f_inode = dentry.d_inode
        self.f_op = self.f_inode.i_fop if self.f_inode is not None else None
        self.f_flags = flags
        self.f_pos = 0
        self.f_count = 1
        self.private_data: Any = None
        self.f_slab: Any = None

    def __repr__(self) -> str:
        return f"file {self.f_dentry!r}"
