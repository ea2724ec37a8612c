"""VFS globals hung on the simulation as ``sim.vfs`` (the kernel's ``super_blocks`` list,
``file_systems``, mount table, inode/dentry slab caches, ``vfs_cache_pressure``…), the eviction
design switch, the run-result statistics and the end-of-run checks (``leaked``,
``check_invariants``)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from reclaimlab.sim import NSEC_PER_SEC, Simulation, WaitQueue

from .designs import DESIGN_NAMES as DESIGNS
FILP_SLAB_SIZE = 256  # sizeof(struct file)


@dataclass
class VfsConfig:
    """VFS configuration keys (``vfs.<name>`` in scenarios), kernel defaults.

    ``passive_ref_*``: the passive-ref design's per-superblock eviction queue — the queuer waits
    for the worker when more than ``passive_ref_max_backlog`` inodes are queued (mirrors XFS's
    256), unless ``passive_ref_throttle`` is off or the queuer is in reclaim (``PF_MEMALLOC``) and
    ``passive_ref_exempt_reclaim`` is on.

    ``evict_async_delay_jiffies``, ``split_evict_delay_jiffies``,
    ``deferred_reclaim_delay_jiffies``: delay of those designs' eviction worker after the first
    queueing (0: run at once; the proposals say "a workqueue"). ``deferred_reclaim_list_limit``:
    deferred-list length above which an adder is throttled; ``deferred_reclaim_throttle_factor``:
    the adder sleeps this many times the measured average deferred-reclaim time of one inode
    (Jan Kara's RFC; the values are assumptions, the RFC's are not in the model's sources).

    ``inodegc_*``: the generic inodegc machinery's knobs (``reclaimlab.fs.inodegc.inodegc_config``
    reads every ``inodegc_<field>`` of this configuration; defaults are XFS's: 1-jiffy delay,
    32 inodes per queue, 256-inode backlog, both throttles on, a NOFS worker). A mount option of
    the same name overrides them.
    """

    design: str = "native"
    vfs_cache_pressure: int = 100
    sb_shrinker_batch: int = 1024
    dirty_writeback_interval_ns: int = 5 * NSEC_PER_SEC
    dirty_expire_interval_ns: int = 30 * NSEC_PER_SEC
    passive_ref_max_backlog: int = 256
    passive_ref_throttle: bool = True
    passive_ref_exempt_reclaim: bool = True
    evict_async_delay_jiffies: int = 0
    split_evict_delay_jiffies: int = 0
    deferred_reclaim_delay_jiffies: int = 0
    deferred_reclaim_list_limit: int = 256
    deferred_reclaim_throttle_factor: float = 1.0
    inodegc_delay_jiffies: int = 1
    inodegc_queue_depth: int = 32
    inodegc_max_backlog: int = 256
    inodegc_shrinker_throttle: bool = True
    inodegc_backlog_throttle: bool = True
    inodegc_worker_nofs: bool = True
    inode_slab_size: int = 600
    dentry_slab_size: int = 192
    syscall_ns: int = 300
    page_copy_ns: int = 200

    def __post_init__(self) -> None:
        if self.design not in DESIGNS:
            raise ValueError(f"vfs.design must be one of {', '.join(DESIGNS)}, got {self.design!r}")
        if self.vfs_cache_pressure < 0 or self.passive_ref_max_backlog < 1:
            raise ValueError("vfs.vfs_cache_pressure must be >= 0 and "
                             "vfs.passive_ref_max_backlog >= 1")
        if min(self.evict_async_delay_jiffies, self.split_evict_delay_jiffies,
               self.deferred_reclaim_delay_jiffies, self.deferred_reclaim_throttle_factor) < 0 \
                or self.deferred_reclaim_list_limit < 0:
            raise ValueError("vfs: design delays, deferred_reclaim_list_limit and "
                             "deferred_reclaim_throttle_factor must be >= 0")


@dataclass
class VfsStats:
    """Counters for the run result's ``inodes`` object."""

    evicted: int = 0
    evicted_in_reclaim: int = 0
    deferred: int = 0
    cleanups: int = 0
    allocated: int = 0


class Vfs:
    """``sim.vfs``: see the module docstring. Create with ``vfs_init``."""

    def __init__(self, sim: Simulation, config: VfsConfig) -> None:
        self.sim = sim
        self.config = config
        self.design = config.design
        self.file_systems: dict[str, Any] = {}
        self.super_blocks: list[Any] = []
        self.mounts: dict[str, Any] = {}
        self.fdtables: dict[int, dict[int, Any]] = {}
        self.inode_wait = WaitQueue("inode_wait")
        self.stats = VfsStats()
        self.unlinked: dict[tuple[str, int], None] = {}
        self.violations: list[str] = []
        self.fs_errors: list[dict[str, Any]] = []
        self.nofail_drop_depth: dict[int, int] = {}
        self.inode_cachep: Any = None
        self.dentry_cachep: Any = None
        self.filp_cachep: Any = None
        self.bdi_wq: Any = None
        self.evict_wq: Any = None
        self.next_ino_by_sb: dict[str, int] = {}

    # ------------------------------------------------------------ end-of-run checks
    def leaked(self) -> list[tuple[str, int]]:
        """Unlinked inodes (sb id, ino) whose blocks were never freed (call after unmount)."""
        return sorted(self.unlinked)

    def fs_error(self, sb: Any, ino: int, error: str, read_only: bool) -> None:
        """A filesystem reported a metadata error (``ext4_error``): the run result's
        ``fs_errors`` entry ``{fs, ino, error, read_only}``, ``read_only`` whether the
        filesystem is read-only after it (errors=remount-ro)."""
        self.fs_errors.append({"fs": sb.s_id, "ino": ino, "error": error,
                               "read_only": read_only, "time_ns": self.sim.now})

    def violation(self, message: str) -> None:
        """Record a broken lifecycle rule found while running (refcount underflow, use after
        free, busy inodes after unmount)."""
        self.violations.append(f"t={self.sim.now}: {message}")

    def check_invariants(self) -> list[str]:
        """Violations recorded during the run plus a walk of every live superblock."""
        from .inode import check_sb_inodes
        from .dcache import check_sb_dentries
        out = list(self.violations)
        for sb in self.super_blocks:
            out.extend(check_sb_inodes(sb))
            out.extend(check_sb_dentries(sb))
        return out

    def stats_dict(self) -> dict[str, int]:
        """The run result's ``inodes`` object."""
        return {"evicted": self.stats.evicted, "evicted_in_reclaim": self.stats.evicted_in_reclaim,
                "deferred": self.stats.deferred, "leaked": len(self.unlinked)}


def vfs_config_keys() -> list[str]:
    """Configuration key names accepted under ``vfs.``."""
    return [f.name for f in fields(VfsConfig)]


def vfs_init(sim: Simulation, config: VfsConfig | dict | None = None) -> Vfs:
    """``vfs_caches_init`` + ``bdi_init``-time setup: create ``sim.vfs``, the inode, dentry and
    filp slab caches, the writeback and eviction workqueues, and set mm's flusher wake-up hook
    (``sim.pgdat.wakeup_flusher_threads``) if mm is already initialised."""
    from reclaimlab.mm.slab import kmem_cache_create
    from reclaimlab.sim import WQ_UNBOUND, alloc_workqueue

    from .fs_writeback import wakeup_flusher_threads

    if isinstance(config, dict) or config is None:
        config = VfsConfig(**(config or {}))
    vfs = Vfs(sim, config)
    sim.vfs = vfs
    vfs.inode_cachep = kmem_cache_create(sim, "inode_cache", config.inode_slab_size)
    vfs.dentry_cachep = kmem_cache_create(sim, "dentry", config.dentry_slab_size)
    vfs.filp_cachep = kmem_cache_create(sim, "filp", FILP_SLAB_SIZE)
    vfs.bdi_wq = alloc_workqueue(sim, "writeback", WQ_UNBOUND, max_active=4)
    vfs.evict_wq = alloc_workqueue(sim, "inode_evict", WQ_UNBOUND, max_active=4)
    pgdat = getattr(sim, "pgdat", None)
    if pgdat is not None:
        pgdat.wakeup_flusher_threads = lambda reason="vmscan": wakeup_flusher_threads(sim, reason)
    return vfs


__all__ = ["DESIGNS", "VfsConfig", "VfsStats", "Vfs", "vfs_init", "vfs_config_keys"]
