"""``struct xfs_mount`` and ``struct xfs_perag``: geometry, free-space counters, per-AG inode
caches with their reclaim tags, and the XFS-like inode (``struct xfs_inode``) embedding the VFS
inode. The metadata contents (directory entries, inode cores) are Python objects; the buffer
cache (``xfs_buf``) models their memory and IO.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reclaimlab.fs.xfs.xfs_log import M_RES
from reclaimlab.sim import NSEC_PER_SEC, RwSemaphore
from reclaimlab.vfs.fs import Inode, parse_mount_options

XFS_INODE_SIZE = 512                    # v5 default
XFS_INODES_PER_CLUSTER = 32             # 16 KiB inode cluster of 512-byte inodes
XFS_AG_HEADER_BLOCKS = 4                # SB, AGF, AGI, AGFL
XFS_IMAXPCT = 25                        # inodes may use up to 25% of the space
XFS_INODE_RATIO = 16384
XFS_RECLAIM_PERIOD_NS = 5 * NSEC_PER_SEC  # xfs_reclaim_work_queue: (xfs_syncd_centisecs / 6)
XFS_INODE_STRUCT_SIZE = 1024            # sizeof(struct xfs_inode), 6.12 x86-64
XFS_AGF, XFS_AGI = 1, 2


@dataclass
class XfsConfig:
    """Mount configuration (``mkfs.xfs`` geometry + mount options), kernel/mkfs defaults."""

    block_size: int = 4096
    journal_mb: int = 64                 # log size
    agcount: int = 4
    blocking_reclaim: bool = False       # pre-5.9 inode reclaim: flush dirty clusters, SYNC_WAIT
    speculative_prealloc_blocks: int = 16  # post-EOF preallocation added when a file grows
    max_blocks: int | None = None

    @classmethod
    def from_options(cls, opts: dict) -> "XfsConfig":
        """Mount options (``[[fs]]`` keys and ``tunables``); inodegc keys are taken elsewhere."""
        return parse_mount_options("xfs", cls, opts)

    def __post_init__(self) -> None:
        bs = self.block_size
        if not isinstance(bs, int) or bs < 1024 or bs & (bs - 1) or bs > 65536:
            raise ValueError(f"xfs: block size {bs} must be a power of two between 1024 and 65536")
        need = max(M_RES.values()) * 4
        if self.log_blocks < max(need, 512):
            raise ValueError(f"xfs: a log of {self.journal_mb} MiB is {self.log_blocks} blocks: "
                             f"smaller than the 512-block minimum that holds a few transactions")
        if self.agcount < 1:
            raise ValueError("xfs: agcount must be >= 1")

    @property
    def log_blocks(self) -> int:
        return self.journal_mb * 1024 * 1024 // self.block_size


class xfs_disk_inode:
    """The on-disk inode core plus directory contents (``struct xfs_dinode``)."""

    __slots__ = ("mode", "nlink", "size", "nblocks", "dir", "dir_block", "xattrs")

    def __init__(self, mode: int) -> None:
        self.mode = mode
        self.nlink = 1
        self.size = 0
        self.nblocks = 0
        self.dir: dict[str, int] | None = None
        self.dir_block: int | None = None
        self.xattrs: dict[str, int] | None = None


class xfs_inode(Inode):
    """``struct xfs_inode`` embedding ``i_vnode``: lifecycle flags (``i_gcflags``), ILOCK, the
    inode log item state (``li_state``) and the cluster buffer it holds while dirty."""

    __slots__ = ("i_gcflags", "i_disk", "i_lock", "li_state", "i_cluster_bp", "i_xfs_slab",
                 "i_delayed", "i_eofblocks", "i_agno")

    def __init__(self) -> None:
        super().__init__()
        self.i_gcflags = 0
        self.i_disk: xfs_disk_inode | None = None
        self.i_lock: RwSemaphore | None = None
        self.li_state: str | None = None
        self.i_cluster_bp: Any = None
        self.i_xfs_slab: Any = None
        self.i_delayed = 0                 # delalloc blocks reserved within EOF
        self.i_eofblocks = 0               # speculative preallocation past EOF
        self.i_agno = 0


class xfs_perag:
    """``struct xfs_perag``: free space, inode allocation state and the inode cache."""

    def __init__(self, agno: int, first: int, nblocks: int, inode_blocks: int,
                 inodes: int) -> None:
        self.pag_agno = agno
        self.first = first
        self.nblocks = nblocks
        self.inode_start = first + XFS_AG_HEADER_BLOCKS
        self.data_start = self.inode_start + inode_blocks
        self.next_block = self.data_start
        self.pagf_freeblks = nblocks - XFS_AG_HEADER_BLOCKS - inode_blocks
        self.inodes = bytearray(inodes)
        self.pagi_freecount = inodes
        self.pag_ici_root: dict[int, xfs_inode] = {}       # the per-AG inode radix tree
        self.pag_ici_reclaim: dict[xfs_inode, None] = {}   # XFS_ICI_RECLAIM_TAG


class xfs_mount:
    """``struct xfs_mount``."""

    def __init__(self, sim: Any, name: str, config: XfsConfig, nr_blocks: int,
                 page_size: int) -> None:
        self.sim = sim
        self.name = name
        self.config = config
        self.m_blocksize = config.block_size
        self.page_size = page_size
        self.m_sb_dblocks = nr_blocks
        self.m_agcount = config.agcount
        self.m_agblocks = nr_blocks // config.agcount
        self.m_inodes_per_block = max(1, config.block_size // XFS_INODE_SIZE)
        self.m_inodes_per_cluster = XFS_INODES_PER_CLUSTER
        self.m_blocks_per_cluster = max(1, XFS_INODES_PER_CLUSTER // self.m_inodes_per_block)
        self.m_perag: list[xfs_perag] = []
        self.m_fdblocks = 0
        self.m_ifree = 0
        self.m_icount = 0
        self.m_disk: dict[int, xfs_disk_inode] = {}
        self.m_super: Any = None
        self.m_btp: Any = None
        self.m_log: Any = None
        self.m_log_map: Any = None
        self.m_logstart = 0
        self.m_inodegc: Any = None
        self.m_reclaim_work: Any = None
        self.m_inode_cache: Any = None
        self.m_unmounting = False
        self.m_inodes_per_ag = 0

    def xfs_iop_push(self, items: list[Any]):
        """The AIL's ``iop_push``: write each item's buffer (inode cluster or AG header)."""
        from reclaimlab.fs.xfs.xfs_inode import xfs_iflush_items
        yield from xfs_iflush_items(self, items)
