"""Errors the system-call layer returns to workloads (the kernel's ``-ERRNO`` return values)."""

from __future__ import annotations


class KernelError(Exception):
    """A system call failed with ``errno`` (its name, e.g. ``"ENOENT"``), as ``-ENOENT`` would."""

    def __init__(self, errno: str, detail: str = "") -> None:
        super().__init__(f"{errno}: {detail}" if detail else errno)
        self.errno = errno
        self.detail = detail
