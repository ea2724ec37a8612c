"""ext4's ``fsync`` (``fs/ext4/fsync.c``), for the journalled, ``data=ordered`` case.

``ext4_sync_file`` writes and waits the file's data, then waits for the commit of the
transaction that last logged the inode (``ext4_fsync_journal`` → ``jbd2_complete_transaction``
on ``i_sync_tid``): an fsync after a metadata change (block allocation, size, timestamps) asks
kjournald2 for a commit, which locks the running transaction (``T_LOCKED``) until its handles
drain — so every other task starting a handle meanwhile waits in ``wait_transaction_locked``.
A device flush is issued only when no commit was needed (``needs_barrier``: a commit flushes).

Simplified: no ``data=journal``, no fast commit, no ``ext4_sync_parent`` (no journal-less mode);
fsync and fdatasync wait for the same tid; the data is written by ``write_inode_now``, which also
calls ``->write_inode`` when the VFS inode is dirty (its commit then makes the flush redundant:
one extra flush where the kernel sends none).
"""

from __future__ import annotations

from typing import Any

from reclaimlab.block import blkdev_issue_flush
from reclaimlab.fs.ext4.ext4 import EXT4_SB
from reclaimlab.fs.journal import jbd2_complete_transaction
from reclaimlab.vfs import fs_writeback
from reclaimlab.vfs.fs import SB_RDONLY


def ext4_sync_file(file: Any, datasync: bool):
    """``ext4_sync_file``: ``file_write_and_wait_range``, then ``ext4_fsync_journal`` and the
    flush when the commit will not send one. Read-only: nothing to do (returns 0, as the kernel
    does when the filesystem was not aborted)."""
    inode = file.f_inode
    sb = inode.i_sb
    if sb.s_flags & SB_RDONLY:      # nothing can have been logged since (no shutdown modelled)
        return
    yield from fs_writeback.write_inode_now(inode, True)
    committed = yield from jbd2_complete_transaction(EXT4_SB(sb).s_journal, inode.i_sync_tid)
    if not committed:
        yield from blkdev_issue_flush(sb.s_bdev)
