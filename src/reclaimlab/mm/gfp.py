"""GFP flags (``include/linux/gfp_types.h``) and the scoped allocation context.

Flag names are the kernel's; bit values are our own (the kernel's change between releases and
nothing here depends on them). Note for callers: inside a ``class`` body Python mangles names
that start with two underscores, so use these flags from module-level functions (as the kernel
does) or bind them to a local name first.
"""

from __future__ import annotations

from reclaimlab.sim import PF_MEMALLOC_NOFS, PF_MEMALLOC_NOIO, current

__GFP_HIGH = 1 << 0
__GFP_IO = 1 << 1
__GFP_FS = 1 << 2
__GFP_DIRECT_RECLAIM = 1 << 3
__GFP_KSWAPD_RECLAIM = 1 << 4
__GFP_NOWARN = 1 << 5
__GFP_RETRY_MAYFAIL = 1 << 6
__GFP_NOFAIL = 1 << 7
__GFP_NORETRY = 1 << 8
__GFP_MEMALLOC = 1 << 9
__GFP_NOMEMALLOC = 1 << 10
__GFP_HARDWALL = 1 << 11
__GFP_MOVABLE = 1 << 12
__GFP_RECLAIMABLE = 1 << 13
__GFP_ZERO = 1 << 14
__GFP_COMP = 1 << 15
__GFP_ACCOUNT = 1 << 16
__GFP_NOLOCKDEP = 1 << 17
__GFP_HIGHMEM = 1 << 18

__GFP_RECLAIM = __GFP_DIRECT_RECLAIM | __GFP_KSWAPD_RECLAIM

GFP_ATOMIC = __GFP_HIGH | __GFP_KSWAPD_RECLAIM
GFP_KERNEL = __GFP_RECLAIM | __GFP_IO | __GFP_FS
GFP_KERNEL_ACCOUNT = GFP_KERNEL | __GFP_ACCOUNT
GFP_NOWAIT = __GFP_KSWAPD_RECLAIM
GFP_NOIO = __GFP_RECLAIM
GFP_NOFS = __GFP_RECLAIM | __GFP_IO
GFP_USER = __GFP_RECLAIM | __GFP_IO | __GFP_FS | __GFP_HARDWALL
GFP_HIGHUSER = GFP_USER | __GFP_HIGHMEM
GFP_HIGHUSER_MOVABLE = GFP_HIGHUSER | __GFP_MOVABLE

# Composites first (largest first), as the kernel's %pGg printing does, then single bits.
_COMPOSITES = [
    ("GFP_HIGHUSER_MOVABLE", GFP_HIGHUSER_MOVABLE),
    ("GFP_HIGHUSER", GFP_HIGHUSER),
    ("GFP_USER", GFP_USER),
    ("GFP_KERNEL_ACCOUNT", GFP_KERNEL_ACCOUNT),
    ("GFP_KERNEL", GFP_KERNEL),
    ("GFP_NOFS", GFP_NOFS),
    ("GFP_ATOMIC", GFP_ATOMIC),
    ("GFP_NOIO", GFP_NOIO),
    ("GFP_NOWAIT", GFP_NOWAIT),
]
_BITS = [(name, value) for name, value in globals().items()
         if name.startswith("__GFP_") and name != "__GFP_RECLAIM"]


# gfp value -> its ``%pGg`` text: every allocation event carries it, from a handful of values.
_NAMES: dict[int, str] = {}


def gfp_names(gfp: int) -> str:
    """Format ``gfp`` like the kernel's ``%pGg``: ``GFP_NOFS|__GFP_NOFAIL``."""
    names = _NAMES.get(gfp)
    if names is None:
        names = _NAMES[gfp] = _format_gfp(gfp)
    return names


def _format_gfp(gfp: int) -> str:
    parts = []
    rest = gfp
    for name, value in _COMPOSITES:
        if rest & value == value and value:
            parts.append(name)
            rest &= ~value
            break
    for name, value in _BITS:
        if rest & value:
            parts.append(name)
            rest &= ~value
    return "|".join(parts) if parts else "0"


def current_gfp_context(gfp: int) -> int:
    """``current_gfp_context`` (include/linux/sched/mm.h): apply the task's NOIO/NOFS scopes.

    ``PF_MEMALLOC_NOIO`` strips ``__GFP_IO|__GFP_FS``, ``PF_MEMALLOC_NOFS`` strips ``__GFP_FS``.
    """
    flags = current().flags
    if flags & PF_MEMALLOC_NOIO:
        return gfp & ~(__GFP_IO | __GFP_FS)
    if flags & PF_MEMALLOC_NOFS:
        return gfp & ~__GFP_FS
    return gfp


def gfpflags_allow_blocking(gfp: int) -> bool:
    """``gfpflags_allow_blocking``: the caller may sleep (direct reclaim allowed)."""
    return bool(gfp & __GFP_DIRECT_RECLAIM)
