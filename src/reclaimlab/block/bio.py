"""``struct bio`` and its submission: ``submit_bio``, ``submit_bio_wait``, ``blkdev_issue_flush``.

A submitter takes a tag (``blk_mq_get_tag``: sleeps on the device's tag wait queue while
``queue_depth`` requests are in flight), the device computes the completion time, and a timer
(``sim.call_at``) completes the bio at that time: it frees the tag, wakes tag waiters and runs
``bi_end_io`` — the interrupt-context completion of ``blk_mq_end_request``.
"""

from __future__ import annotations

from typing import Any, Callable

from reclaimlab.sim import Completion, complete, wait_event, wait_for_completion, wake_up

from .device import BlockDevice

SECTOR_SHIFT = 9
SECTOR_SIZE = 1 << SECTOR_SHIFT
REQ_OP_READ = "read"
REQ_OP_WRITE = "write"
REQ_OP_FLUSH = "flush"


class Bio:
    """``struct bio``: ``bi_opf`` (op), ``bi_sector``, ``nr_sectors``, ``bi_status`` (0 or
    ``-errno``), ``bi_end_io(bio)`` (plain callback, timer context), ``bi_private``."""

    __slots__ = ("bi_bdev", "bi_opf", "bi_sector", "nr_sectors", "bi_status", "bi_end_io",
                 "bi_private", "submit_ns", "done_ns")

    def __init__(self, bdev: BlockDevice, op: str, sector: int, nr_sectors: int,
                 end_io: Callable[["Bio"], None] | None = None, private: Any = None) -> None:
        if op not in (REQ_OP_READ, REQ_OP_WRITE, REQ_OP_FLUSH):
            raise ValueError(f"bio: unknown op {op!r}")
        self.bi_bdev = bdev
        self.bi_opf = op
        self.bi_sector = sector
        self.nr_sectors = nr_sectors
        self.bi_status = 0
        self.bi_end_io = end_io
        self.bi_private = private
        self.submit_ns = 0
        self.done_ns = 0

    def __repr__(self) -> str:
        return f"bio {self.bi_opf} {self.bi_bdev.name}@{self.bi_sector}+{self.nr_sectors}"


def blk_mq_get_tag(bdev: BlockDevice):
    """``blk_mq_get_tag``: sleep (``io_schedule``) until a tag is free, then take it."""
    if bdev.in_flight >= bdev.model.queue_depth:
        bdev.stats.tag_waits += 1
        yield from wait_event(bdev.tag_wait, lambda: bdev.in_flight < bdev.model.queue_depth)
    bdev.in_flight += 1


def blk_mq_end_request(bio: Bio) -> None:
    """Completion (timer context): free the tag, wake tag waiters, run ``bi_end_io``."""
    bdev = bio.bi_bdev
    bdev.in_flight -= 1
    bio.done_ns = bdev.sim.now
    wake_up(bdev.tag_wait)
    if bio.bi_end_io is not None:
        bio.bi_end_io(bio)


def submit_bio(bio: Bio):
    """``submit_bio``: queue ``bio``; returns once it is dispatched (completion is async)."""
    bdev = bio.bi_bdev
    yield from blk_mq_get_tag(bdev)
    st = bdev.stats
    if bio.bi_opf == REQ_OP_READ:
        st.reads += 1
        st.sectors_read += bio.nr_sectors
    elif bio.bi_opf == REQ_OP_WRITE:
        st.writes += 1
        st.sectors_written += bio.nr_sectors
    else:
        st.flushes += 1
    bio.submit_ns = bdev.sim.now
    done, bio.bi_status = bdev.dispatch(bio.bi_opf, bio.bi_sector, bio.nr_sectors)
    bdev.sim.call_at(done, blk_mq_end_request, bio)


def submit_bio_wait(bdev: BlockDevice, op: str, sector: int, nr_sectors: int):
    """``submit_bio_wait``: submit and sleep until completion; returns 0 or ``-errno``."""
    done = Completion(f"bio {bdev.name}", completer=None)
    bio = Bio(bdev, op, sector, nr_sectors, end_io=lambda b: complete(done))
    yield from submit_bio(bio)
    yield from wait_for_completion(done)
    return bio.bi_status


def blkdev_issue_flush(bdev: BlockDevice):
    """``blkdev_issue_flush``: a preflush request, waited for; returns 0 or ``-errno``."""
    return (yield from submit_bio_wait(bdev, REQ_OP_FLUSH, 0, 0))

