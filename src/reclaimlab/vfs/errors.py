"""Errors the system-call layer returns to workloads (the kernel's ``-ERRNO`` return values)."""

from __future__ import annotations

import sys


class KernelError(Exception):
    """A system call failed with ``errno`` (its name, e.g. ``"ENOENT"``), as ``-ENOENT`` would."""

    def __init__(self, errno: str, detail: str = "") -> None:
        super().__init__(f"{errno}: {detail}" if detail else errno)
        self.errno = errno
        self.detail = detail


def unwinding() -> bool:
    """True inside a ``finally`` block reached because the task is being torn down
    (``GeneratorExit`` when an unfinished simulation is discarded) or a simulator bug propagates —
    anything but a ``KernelError``. Error-path cleanup (unlocking, ``dput``) is the kernel's
    ``goto out`` for an error return and must not run then: it may block or act on behalf of no
    task."""
    exc = sys.exc_info()[1]
    return exc is not None and not isinstance(exc, KernelError)
