"""ext4's in-core structures and on-disk geometry (``fs/ext4/ext4.h``), and the journal glue
(``fs/ext4/ext4_jbd2.c``).

``ext4_sb_info`` holds the geometry (groups, inode tables, the internal journal's location),
counters and the in-memory orphan list; ``ext4_inode_info`` embeds the VFS inode (a subclass of
``Inode``) and adds preallocations, ``xattr_sem`` and the inodegc flags; ``ext4_disk_inode`` is
what the inode table holds for an inode (the model keeps metadata *contents* in Python objects:
the buffer cache models the memory, IO and blocking of reaching them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reclaimlab.fs import buffer
from reclaimlab.fs.journal import (
    JBD2_MIN_JOURNAL_BLOCKS, jbd2__journal_start, jbd2_journal_dirty_metadata,
    jbd2_journal_extend, jbd2_journal_get_write_access, jbd2_journal_restart, jbd2_journal_stop,
)
from reclaimlab.mm.gfp import GFP_NOFS, __GFP_MOVABLE, __GFP_NOFAIL
from reclaimlab.sim import NSEC_PER_SEC, Run, RwSemaphore, current
from reclaimlab.vfs.designs import evict_gfp
from reclaimlab.vfs.errors import KernelError
from reclaimlab.vfs.fs import SB_RDONLY, Inode, parse_mount_options

EXT4_GOOD_OLD_INODE_SIZE = 128
EXT4_INODE_SIZE = 256                 # mke2fs default inode size
EXT4_WANT_EXTRA_ISIZE = 32            # sizeof(struct ext4_inode) - EXT4_GOOD_OLD_INODE_SIZE
EXT4_INODE_RATIO = 16384              # mke2fs default bytes-per-inode
EXT4_ROOT_INO = 2
EXT4_FIRST_INO = 11
EXT4_DIR_REC_AVG = 32                 # average directory entry (8 + name, rounded)

# Journal credits (fs/ext4/ext4_jbd2.h), extents, no quota.
EXT4_SINGLEDATA_TRANS_BLOCKS = 8
EXT4_XATTR_TRANS_BLOCKS = 6
EXT4_DATA_TRANS_BLOCKS = EXT4_SINGLEDATA_TRANS_BLOCKS + EXT4_XATTR_TRANS_BLOCKS - 2
EXT4_INDEX_EXTRA_TRANS_BLOCKS = 8
EXT4_MAX_TRANS_DATA = 64
EXT4_DIROP_CREDITS = EXT4_DATA_TRANS_BLOCKS + EXT4_INDEX_EXTRA_TRANS_BLOCKS + 3
EXT4_EVICT_MAX_CREDITS = EXT4_DATA_TRANS_BLOCKS + EXT4_MAX_TRANS_DATA + 6 - 3

# ei->i_state_flags
EXT4_STATE_NO_EXPAND = 1 << 0

# CPU cost of modelled operations, in ns.
EXT4_MARK_INODE_DIRTY_NS = 600        # ext4_do_update_inode: checksum + copy to the buffer
EXT4_DIROP_NS = 1_500                 # entry search/insert/delete in a directory block
EXT4_IGET_NS = 1_000                  # ext4_iget: decode the on-disk inode
# The bursts of the per-inode and per-entry paths, built once: a ``Run`` is only read.
EXT4_MARK_INODE_DIRTY = Run(EXT4_MARK_INODE_DIRTY_NS)
EXT4_DIROP = Run(EXT4_DIROP_NS)


@dataclass
class Ext4Config:
    """Mount configuration (``mke2fs`` geometry + mount options); defaults are mke2fs/ext4's."""

    block_size: int = 4096
    journal_mb: int = 64
    commit_s: float = 5.0
    inode_ratio: int = EXT4_INODE_RATIO
    inode_size: int = EXT4_INODE_SIZE
    want_extra_isize: int = EXT4_WANT_EXTRA_ISIZE   # s_want_extra_isize (debug_want_extra_isize)
    mb_prealloc_blocks: int = 512                   # cap of a normalised data request
    max_blocks: int | None = None                   # use only this much of the device
    errors: str = "continue"                        # errors=: EXT4_ERRORS_DEFAULT, or remount-ro

    @classmethod
    def from_options(cls, opts: dict) -> "Ext4Config":
        """Mount options (scenario ``[[fs]]`` keys, ``tunables`` merged in; ``inodegc_*`` keys are
        the inodegc machinery's); unknown keys rejected."""
        return parse_mount_options("ext4", cls, opts)

    def __post_init__(self) -> None:
        bs = self.block_size
        if not isinstance(bs, int) or bs < 1024 or bs & (bs - 1):
            raise ValueError(f"ext4: block size {bs} must be a power of two and at least "
                             f"1024 bytes")
        if bs > 65536:
            raise ValueError(f"ext4: block size {bs} is above the 64 KiB maximum")
        if self.inode_size < EXT4_GOOD_OLD_INODE_SIZE or self.inode_size & (self.inode_size - 1) \
                or self.inode_size > bs:
            raise ValueError(f"ext4: inode size {self.inode_size} must be a power of two between "
                             f"{EXT4_GOOD_OLD_INODE_SIZE} and the block size {bs}")
        if not 0 <= self.want_extra_isize <= self.inode_size - EXT4_GOOD_OLD_INODE_SIZE:
            raise ValueError(f"ext4: want_extra_isize {self.want_extra_isize} does not fit a "
                             f"{self.inode_size}-byte inode")
        jblocks = self.journal_blocks
        if jblocks < JBD2_MIN_JOURNAL_BLOCKS or jblocks // 4 < EXT4_EVICT_MAX_CREDITS:
            raise ValueError(
                f"ext4: a journal of {self.journal_mb} MiB is {jblocks} blocks of {bs} bytes; "
                f"jbd2 needs at least {JBD2_MIN_JOURNAL_BLOCKS} blocks so that one transaction "
                f"(a quarter of the log, >= {EXT4_EVICT_MAX_CREDITS} credits for an inode "
                f"deletion) fits: the journal is smaller than one transaction")
        if self.commit_s <= 0:
            raise ValueError(f"ext4: commit interval {self.commit_s} s must be > 0")
        if self.mb_prealloc_blocks < 1:
            raise ValueError("ext4: mb_prealloc_blocks must be >= 1")
        if self.errors not in ("continue", "remount-ro"):
            raise ValueError(f"ext4: errors={self.errors!r} must be continue or remount-ro "
                             f"(panic is not modelled)")

    @property
    def journal_blocks(self) -> int:
        return self.journal_mb * 1024 * 1024 // self.block_size

    @property
    def commit_interval_ns(self) -> int:
        return int(self.commit_s * NSEC_PER_SEC)


class ext4_disk_inode:
    """What the inode table holds for one inode (``struct ext4_inode``), plus the directory's
    entries (the contents of its directory blocks) and the xattrs (in-inode or block)."""

    __slots__ = ("mode", "nlink", "size", "extents", "dir", "xattrs", "xattr_block",
                 "extra_isize", "dtime", "orphan")

    def __init__(self, mode: int, extra_isize: int) -> None:
        self.mode = mode
        self.nlink = 1
        self.size = 0
        self.extents: list[list[int]] = []          # [lblk, pblk, len], sorted by lblk
        self.dir: dict[str, tuple[int, int]] | None = None   # name -> (ino, directory block idx)
        self.xattrs: dict[str, int] | None = None
        self.xattr_block: int | None = None
        self.extra_isize = extra_isize
        self.dtime = 0
        self.orphan = False                          # on the on-disk orphan chain


class ext4_inode_info(Inode):
    """``struct ext4_inode_info`` embedding ``vfs_inode``."""

    __slots__ = ("i_disk", "i_prealloc_list", "i_reserved", "xattr_sem", "i_state_flags",
                 "i_gcflags", "i_block_group", "i_ext4_slab", "i_sync_tid")

    def __init__(self) -> None:
        super().__init__()
        self.i_disk: ext4_disk_inode | None = None
        # Created on first use: most cached inodes never have either (host memory).
        self.i_prealloc_list: list[Any] | None = None
        self.i_reserved: dict[int, None] | None = None   # delalloc-reserved logical blocks
        self.xattr_sem: RwSemaphore | None = None
        self.i_state_flags = 0
        self.i_gcflags = 0
        self.i_block_group = 0
        self.i_ext4_slab: Any = None
        self.i_sync_tid = 0          # the transaction that last logged this inode (fsync's)


def ext4_xattr_sem(ei: ext4_inode_info) -> RwSemaphore:
    """``EXT4_I(inode)->xattr_sem`` (lockdep class ``&ei->xattr_sem``), created on first use."""
    if ei.xattr_sem is None:
        ei.xattr_sem = RwSemaphore("&ei->xattr_sem")
    return ei.xattr_sem


class ext4_sb_info:
    """``struct ext4_sb_info``: geometry, counters, journal, buddy cache, orphan list."""

    def __init__(self, sim: Any, bdev: buffer.BufferCache, config: Ext4Config) -> None:
        self.sim = sim
        self.config = config
        self.s_bdev = bdev
        self.s_blocksize = bs = config.block_size
        self.page_size = bdev.page_size
        self.s_blocks_count = config.max_blocks or bdev.nr_blocks
        self.s_blocks_per_group = min(8 * bs, self.s_blocks_count)
        self.s_groups_count = -(-self.s_blocks_count // self.s_blocks_per_group)
        self.s_inode_size = config.inode_size
        self.s_inodes_per_block = bs // config.inode_size
        ipg = self.s_blocks_per_group * bs // config.inode_ratio
        ipg = min(max(ipg, self.s_inodes_per_block), 8 * bs)
        self.s_inodes_per_group = ipg - ipg % self.s_inodes_per_block
        self.s_itb_per_group = self.s_inodes_per_group // self.s_inodes_per_block
        self.s_gdb_count = -(-self.s_groups_count * 64 // bs)
        self.s_want_extra_isize = config.want_extra_isize
        self.s_mb_prealloc_blocks = config.mb_prealloc_blocks
        self.s_locality_groups: dict[int, Any] = {}  # CPU -> its locality group's PA chunk
        self.s_dir_entries_per_block = max(1, bs // EXT4_DIR_REC_AVG)
        self.s_groups: list[Any] = []
        self.s_freeclusters = 0
        self.s_dirtyclusters = 0
        self.s_freeinodes = 0
        self.s_journal: Any = None
        self.s_journal_first = 0
        self.s_buddy_cache: Any = None
        self.s_orphan: dict[int, None] = {}          # in-memory orphan list (ino)
        self.s_disk: dict[int, ext4_disk_inode] = {}  # the inode tables' contents by ino
        self.s_inodegc: Any = None
        self.s_next_dir_group = 0
        self.s_sb: Any = None
        self.s_inode_cachep: Any = None


def EXT4_SB(sb: Any) -> ext4_sb_info:
    return sb.s_fs_info


# ------------------------------------------------------------------ journal glue
def ext4_journal_start_sb(sb: Any, nblocks: int):
    """``__ext4_journal_start_sb``: a handle on the filesystem's journal (``GFP_NOFS``);
    ``EROFS`` once an error made the filesystem read-only (``ext4_journal_check_start``)."""
    if sb.s_flags & SB_RDONLY:
        raise KernelError("EROFS", f"{sb!r} is read-only")
    return (yield from jbd2__journal_start(EXT4_SB(sb).s_journal, nblocks, GFP_NOFS))


def ext4_error(sb: Any, ino: int, message: str) -> None:
    """``ext4_error`` → ``ext4_handle_error``: report a metadata error (the run result's
    ``fs_errors``); with ``errors=remount-ro`` the filesystem becomes read-only, so every later
    journal start fails with ``EROFS``. Simplified: the journal is not aborted (running handles
    complete); ``errors=panic`` is not modelled."""
    if EXT4_SB(sb).config.errors == "remount-ro" and not sb.s_flags & SB_RDONLY:
        sb.s_flags |= SB_RDONLY
    read_only = bool(sb.s_flags & SB_RDONLY)
    sb.s_sim.emit("tracepoint", current(), sb, {"name": "ext4_error", "ino": ino,
                                               "message": message, "read_only": read_only})
    sb.s_sim.vfs.fs_error(sb, ino, message, read_only)


def ext4_getblk_evict(sbi: Any, block: int):
    """``sb_getblk`` of a metadata block that eviction reads (inode table, bitmaps), with the
    mask the ``nofail-drop`` proposal gives it: ``__GFP_NOFAIL`` unless ``evict_gfp`` drops it
    (an eviction run by reclaim), and then ``ENOMEM`` when the allocation failed (the kernel
    callers' ``if (!bh) return -ENOMEM``)."""
    bh = yield from buffer.bdev_getblk(sbi.s_bdev, block,
                                       evict_gfp(GFP_NOFS | __GFP_MOVABLE | __GFP_NOFAIL))
    if bh is None:
        raise KernelError("ENOMEM", f"{sbi.s_bdev.name}: buffer for block {block}")
    return bh


def ext4_journal_stop(handle: Any):
    """``__ext4_journal_stop``."""
    yield from jbd2_journal_stop(handle)


def ext4_handle_dirty_metadata(handle: Any, bh: Any):
    """``ext4_journal_get_write_access`` + ``ext4_handle_dirty_metadata`` for one buffer."""
    yield from jbd2_journal_get_write_access(handle, bh)
    yield from jbd2_journal_dirty_metadata(handle, bh)


def ext4_journal_ensure_credits(handle: Any, credits: int):
    """``ext4_journal_ensure_credits``: extend the handle, or restart it in a new transaction."""
    if handle.h_total_credits >= credits:
        return
    if jbd2_journal_extend(handle, credits - handle.h_total_credits):
        yield from jbd2_journal_restart(handle, credits)
