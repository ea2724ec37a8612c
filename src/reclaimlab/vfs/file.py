"""Open files and buffered IO (``fs/open.c``, ``fs/file_table.c``, ``fs/read_write.c``,
``mm/filemap.c``'s generic read/write paths, ``fs/sync.c``'s fsync).

A ``File`` holds a reference on its dentry (hence on the inode); ``fput`` of the last reference
runs ``__fput`` in the closing task: ``->release`` then ``dput`` — so a close can be the final
``iput`` of an unlinked inode. File descriptor tables are per task (``sim.vfs.fdtables[pid]``).

``generic_file_read``: page-cache lookup/creation, ``->read_folio`` for folios not uptodate.
``generic_file_write``: under ``sb_start_write`` and the inode lock, ``->write_begin`` for each
page (block reservation), mm's ``generic_perform_write`` (allocates, dirties), ``i_size`` update
with ``mark_inode_dirty`` when the file grows (``generic_write_end``), ``I_DIRTY_PAGES``.
Copying costs ``vfs.page_copy_ns`` of CPU per page.

Simplified: no ``O_TRUNC``/``O_APPEND``/direct IO/readahead; positions are per file.
"""

from __future__ import annotations

from typing import Any

from reclaimlab.block import blkdev_issue_flush
from reclaimlab.mm import filemap
from reclaimlab.mm.gfp import GFP_KERNEL
from reclaimlab.mm.slab import kmem_cache_alloc, kmem_cache_free
from reclaimlab.sim import Run, current

from . import dcache, fs_writeback
from .errors import KernelError, unwinding
from .fs import I_DIRTY_PAGES, O_ACCMODE, O_RDONLY, S_ISDIR, Dentry, File
from .namei import inode_lock, inode_unlock
from .super import sb_end_write, sb_start_write

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT


# ------------------------------------------------------------------ open / close
def vfs_open(dentry: Dentry, flags: int):
    """``alloc_empty_file`` (``filp`` slab) + ``do_dentry_open``: a ``File`` on ``dentry``
    (takes a dentry reference), ``->open``."""
    inode = dentry.d_inode
    if S_ISDIR(inode.i_mode) and flags & O_ACCMODE != O_RDONLY:
        raise KernelError("EISDIR", repr(dentry))
    vfs = inode.i_sb.s_sim.vfs
    slab = yield from kmem_cache_alloc(vfs.filp_cachep, GFP_KERNEL)
    if slab is None:
        raise KernelError("ENFILE", "alloc_empty_file")
    file = File(dcache.dget(dentry), flags)
    file.f_slab = slab
    if flags & O_ACCMODE != O_RDONLY:
        inode.i_writecount += 1  # do_dentry_open: get_write_access for FMODE_WRITE
    if file.f_op is not None and file.f_op.open:
        try:
            yield from file.f_op.open(inode, file)
        except KernelError:
            if flags & O_ACCMODE != O_RDONLY:
                inode.i_writecount -= 1
            kmem_cache_free(vfs.filp_cachep, slab)
            yield from dcache.dput(dentry)
            raise
    return file


def fput(file: File):
    """``fput`` → ``__fput``: the last reference runs ``->release`` and drops the dentry."""
    file.f_count -= 1
    if file.f_count:
        return
    if file.f_op is not None and file.f_op.release:
        yield from file.f_op.release(file.f_inode, file)
    if file.f_flags & O_ACCMODE != O_RDONLY:
        file.f_inode.i_writecount -= 1  # put_write_access, after ->release as in __fput
    dentry = file.f_dentry
    file.f_dentry = None  # type: ignore[assignment]
    kmem_cache_free(dentry.d_sb.s_sim.vfs.filp_cachep, file.f_slab)
    yield from dcache.dput(dentry)


def fd_install(vfs: Any, file: File) -> int:
    """``get_unused_fd_flags`` + ``fd_install`` for the current task (lowest free fd ≥ 3)."""
    table = vfs.fdtables.setdefault(current().pid, {})
    fd = 3
    while fd in table:
        fd += 1
    table[fd] = file
    return fd


def fdget(vfs: Any, fd: int) -> File:
    """``fdget``; ``EBADF`` if not open in the current task."""
    file = vfs.fdtables.get(current().pid, {}).get(fd)
    if file is None:
        raise KernelError("EBADF", str(fd))
    return file


def close_fd(vfs: Any, fd: int) -> File:
    """``close_fd``: remove from the table, return the file for ``fput``."""
    table = vfs.fdtables.get(current().pid, {})
    file = table.pop(fd, None)
    if file is None:
        raise KernelError("EBADF", str(fd))
    return file


def exit_files():
    """``exit_files`` (``do_exit``): close every file the current task still has open. A task
    that ends (or was OOM-killed) should run this last, or its files stay open for good."""
    vfs = current().sim.vfs
    table = vfs.fdtables.pop(current().pid, {})
    for fd in sorted(table):
        yield from fput(table[fd])


# ------------------------------------------------------------------ read / write
def _pages(pos: int, nbytes: int) -> tuple[int, int]:
    first = pos >> PAGE_SHIFT
    last = (pos + nbytes - 1) >> PAGE_SHIFT
    return first, last - first + 1


def generic_file_read(file: File, nbytes: int):
    """``filemap_read``: bring every folio of the range uptodate; returns bytes read."""
    inode = file.f_inode
    pos = file.f_pos
    nbytes = min(nbytes, inode.i_size - pos)
    if nbytes <= 0:
        return 0
    mapping = inode.i_mapping
    first, nr = _pages(pos, nbytes)
    index = mapping.folio_index(first)
    while index < first + nr:
        folio = yield from filemap.filemap_get_folio(mapping, index, mapping.gfp_mask, create=True)
        if folio is None:
            raise KernelError("ENOMEM", "filemap_read")
        if not folio.uptodate:
            read_folio = mapping.a_ops.read_folio if mapping.a_ops is not None else None
            if read_folio:
                yield from read_folio(file, folio)
            else:
                folio.uptodate = True
        index += 1 << folio.order
    yield Run(nr * inode.i_sb.s_sim.vfs.config.page_copy_ns)
    file.f_pos = pos + nbytes
    return nbytes


def generic_file_write(file: File, nbytes: int):
    """``generic_file_write_iter``: see the module docstring; returns bytes written."""
    inode = file.f_inode
    sb = inode.i_sb
    if nbytes <= 0:
        return 0
    yield from sb_start_write(sb)
    try:
        yield from inode_lock(inode)
        try:
            return (yield from _perform_write(file, nbytes, filemap.generic_perform_write))
        finally:
            if not unwinding():
                inode_unlock(inode)
    finally:
        if not unwinding():
            sb_end_write(sb)


def _perform_write(file: File, nbytes: int, generic_perform_write: Any):
    inode = file.f_inode
    mapping = inode.i_mapping
    pos = file.f_pos
    first, nr = _pages(pos, nbytes)
    write_begin = mapping.a_ops.write_begin if mapping.a_ops is not None else None
    if write_begin:
        step = 1 << mapping.min_order
        for index in range(mapping.folio_index(first), first + nr, step):
            yield from write_begin(file, mapping, index)
    got = yield from filemap.generic_perform_write(mapping, first, nr, mapping.gfp_mask)
    if got <= 0:
        raise KernelError("ENOMEM", "generic_perform_write")
    written = min(nbytes, got * PAGE_SIZE - (pos - (first << PAGE_SHIFT)))
    yield Run(nr * inode.i_sb.s_sim.vfs.config.page_copy_ns)
    fs_writeback.inode_set_dirty(inode, I_DIRTY_PAGES)
    file.f_pos = pos + written
    if file.f_pos > inode.i_size:
        inode.i_size = file.f_pos
        yield from fs_writeback.mark_inode_dirty(inode)
    return written


def vfs_read(file: File, nbytes: int):
    """``vfs_read``: ``->read`` or the generic page-cache read."""
    if file.f_op is not None and file.f_op.read:
        return (yield from file.f_op.read(file, nbytes))
    return (yield from generic_file_read(file, nbytes))


def vfs_write(file: File, nbytes: int):
    """``vfs_write``: ``EBADF`` on a read-only file; ``->write`` or the generic write."""
    if file.f_flags & O_ACCMODE == O_RDONLY:
        raise KernelError("EBADF", "file not open for writing")
    if file.f_op is not None and file.f_op.write:
        return (yield from file.f_op.write(file, nbytes))
    return (yield from generic_file_write(file, nbytes))


def vfs_fsync(file: File, datasync: bool = False):
    """``vfs_fsync``: ``->fsync`` or ``generic_file_fsync`` (write and wait the inode's data and
    metadata, then flush the device cache)."""
    if file.f_op is not None and file.f_op.fsync:
        yield from file.f_op.fsync(file, datasync)
        return
    inode = file.f_inode
    yield from fs_writeback.write_inode_now(inode, True)
    bdev = inode.i_sb.s_bdev
    if bdev is not None:
        yield from blkdev_issue_flush(bdev)
