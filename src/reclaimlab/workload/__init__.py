"""Workload kinds: parameterised user programs that drive the model through system calls and
the page allocator (``specs`` holds their parameters, one module per family holds the
programs). ``PROGRAMS`` maps each ``kind`` to its program."""

from __future__ import annotations

from typing import Callable, Generator

from reclaimlab.workload import specs  # noqa: F401  (first: its union imports recipe)
from reclaimlab.workload.base import Context, GroupStats

__all__ = ["Context", "GroupStats", "programs"]


def programs() -> dict[str, Callable[..., Generator]]:
    """``kind`` -> program ``(spec, ctx) -> generator`` (imported on first use: the programs
    need the VFS and mm, the specs do not)."""
    from reclaimlab.workload.container import container_churn
    from reclaimlab.workload.files import (create_unlink, page_cache, periodic, rm_rf,
                                           timestamp_churn, xattr_churn)
    from reclaimlab.workload.memory import anon_hog, large_alloc
    from reclaimlab.workload.recipe import recipe

    return {"anon_hog": anon_hog, "large_alloc": large_alloc, "page_cache": page_cache,
            "create_unlink": create_unlink, "rm_rf": rm_rf, "container_churn": container_churn,
            "timestamp_churn": timestamp_churn, "xattr_churn": xattr_churn,
            "periodic": periodic, "recipe": recipe}
