"""Parameters of the workload kinds, one model per ``kind`` (the ``[[workload]]`` tables).

A spec says what a group of tasks does, never what should happen to the machine: outcomes
come from the models the tasks drive. The programs that interpret these specs live in the
sibling modules named after what they model (``anon``, ``pagecache``, ``files``, ...).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PATH = r"^/[^\s]*$"


def parse_gfp_names(text: str) -> list[str]:
    """Split ``"GFP_NOFS|__GFP_NOFAIL"`` into flag names known to :mod:`reclaimlab.mm.gfp`."""
    from reclaimlab.mm import gfp

    names = [n.strip() for n in text.split("|")]
    for n in names:
        if not n.startswith(("GFP_", "__GFP_")) or not isinstance(getattr(gfp, n, None), int):
            raise ValueError(f"unknown GFP flag {n!r} (expected names such as GFP_KERNEL, "
                             f"GFP_NOFS, __GFP_NOFAIL joined by '|')")
    return names


class WorkloadBase(BaseModel):
    """Keys every workload group has."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    name: str = Field("", pattern=r"^$|^[A-Za-z][A-Za-z0-9_-]*$")
    tasks: int = Field(1, ge=1, le=4096)
    cpus: list[int] | None = None
    start_ms: float = Field(0.0, ge=0)
    stop_ms: float | None = Field(None, gt=0)

    @field_validator("cpus")
    @classmethod
    def _cpus(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (not v or min(v) < 0):
            raise ValueError("a non-empty list of CPU numbers >= 0")
        return v

    @field_validator("gfp", check_fields=False)
    @classmethod
    def _gfp(cls, v: str) -> str:
        parse_gfp_names(v)
        return v


class AnonHog(WorkloadBase):
    """Anonymous memory: allocate ``target_mb`` in steps, hold, touch, optionally free and
    repeat. ``leave_available_mb`` instead sizes the hog when it starts from the memory it sees
    available (``MemAvailable``: free plus page cache), as ``stress-ng --vm-bytes`` scripts do."""

    kind: Literal["anon_hog"]
    target_mb: int | None = Field(None, ge=1)
    leave_available_mb: int | None = Field(None, ge=0)
    step_kb: int = Field(256, ge=4)
    rate_mb_s: float = Field(0.0, ge=0)
    touch: bool = False
    touch_interval_ms: float = Field(100.0, gt=0)
    hold_ms: float = Field(0.0, ge=0)
    gfp: str = "GFP_HIGHUSER_MOVABLE"


    @model_validator(mode="after")
    def _one_size(self) -> "AnonHog":
        if (self.target_mb is None) == (self.leave_available_mb is None):
            raise ValueError("target_mb: set exactly one of target_mb and leave_available_mb")
        return self


class PageCache(WorkloadBase):
    """Buffered file IO: write then (re)read ``files`` files of ``file_kb`` in ``dir``."""

    kind: Literal["page_cache"]
    dir: str = Field(pattern=PATH)
    mode: Literal["read", "write", "readwrite"] = "readwrite"
    files: int = Field(4, ge=1)
    file_kb: int = Field(4096, ge=1)
    io_kb: int = Field(64, ge=1)
    rate_mb_s: float = Field(0.0, ge=0)
    fsync: bool = False


class CreateUnlink(WorkloadBase):
    """fs_mark-like churn: create files (optionally fsync), then unlink them, in loops."""

    kind: Literal["create_unlink"]
    dir: str = Field(pattern=PATH)
    dirs: int = Field(1, ge=1)
    files_per_dir: int = Field(64, ge=1)
    file_kb: int = Field(4, ge=0)
    fsync: bool = False
    unlink: bool = True
    keep_open: bool = False
    loops: int = Field(0, ge=0)
    think_us: float = Field(0.0, ge=0)
    shared_dir: bool = False


class RmRf(WorkloadBase):
    """``rm -rf`` of a tree built (and synced) by the same task before the timed removal."""

    kind: Literal["rm_rf"]
    dir: str = Field(pattern=PATH)
    depth: int = Field(2, ge=1, le=8)
    fanout: int = Field(4, ge=1)
    files_per_dir: int = Field(32, ge=0)
    file_kb: int = Field(4, ge=0)
    sync_before: bool = True
    sync_after: bool = False


class ContainerChurn(WorkloadBase):
    """Containers on overlayfs: mount an overlay over a shared lower tree, stat and copy up
    lower files, create files in the container, unlink them through the overlay or through
    the base filesystem's path of the upper file (or, with ``unlink_via = "lower"``, of a
    file added to the lower layer), unmount at the end of the container's life. With
    ``round_dirs`` each round creates its files in a fresh directory of the container (a job's
    scratch directory), removed with them."""

    kind: Literal["container_churn"]
    base: str = Field(pattern=PATH)
    lower_files: int = Field(64, ge=0)
    file_kb: int = Field(4, ge=0)
    stat_files: int = Field(16, ge=0)
    copyup_files: int = Field(0, ge=0)
    create_files: int = Field(32, ge=0)
    unlink_via: Literal["overlay", "upper", "lower", "none"] = "upper"
    lifetime_ms: float = Field(0.0, ge=0)
    think_us: float = Field(0.0, ge=0)
    round_dirs: bool = False


class TimestampChurn(WorkloadBase):
    """Small writes that only dirty timestamps (``lazytime`` keeps them in memory)."""

    kind: Literal["timestamp_churn"]
    dir: str = Field(pattern=PATH)
    files: int = Field(64, ge=1)
    ops_per_s: float = Field(1000.0, gt=0)


class XattrChurn(WorkloadBase):
    """setxattr/getxattr on a set of files (ext4 takes ``xattr_sem``)."""

    kind: Literal["xattr_churn"]
    dir: str = Field(pattern=PATH)
    files: int = Field(16, ge=1)
    xattr_size: int = Field(64, ge=1, le=65536)
    ops_per_s: float = Field(1000.0, gt=0)


class Periodic(WorkloadBase):
    """A periodic system call: sync, syncfs, statfs or drop_caches."""

    kind: Literal["periodic"]
    op: Literal["sync", "syncfs", "statfs", "drop_caches"]
    path: str = Field("/", pattern=PATH)
    interval_ms: float = Field(1000.0, gt=0)
    drop_mode: int = Field(2, ge=1, le=3)


class LargeAlloc(WorkloadBase):
    """Bursts of allocations: vmalloc-like order-0 pages, or single high-order blocks."""

    kind: Literal["large_alloc"]
    order: int = Field(0, ge=0, le=10)
    burst: int = Field(256, ge=1)
    interval_ms: float = Field(10.0, ge=0)
    hold_ms: float = Field(1.0, ge=0)
    gfp: str = "GFP_KERNEL"


# The recipe kind lives with its program (its steps are models too); it extends WorkloadBase.
from reclaimlab.workload.recipe import Recipe  # noqa: E402

WorkloadSpec = Annotated[
    AnonHog | PageCache | CreateUnlink | RmRf | ContainerChurn | TimestampChurn | XattrChurn
    | Periodic | LargeAlloc | Recipe,
    Field(discriminator="kind"),
]
