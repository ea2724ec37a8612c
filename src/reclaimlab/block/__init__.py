"""Block devices: a blk-mq request queue with tags, a per-request service-time model, completions
from timers that wake the submitters, and injectable IO errors.

Models ``block/blk-mq.c`` / ``block/bio.c`` at the level the filesystems need: ``submit_bio``
(may sleep for a tag when ``queue_depth`` requests are in flight, as ``blk_mq_get_tag``),
``submit_bio_wait``, ``blkdev_issue_flush``. See ``device`` for the service-time model.
"""

from .bio import (
    REQ_OP_FLUSH, REQ_OP_READ, REQ_OP_WRITE, SECTOR_SHIFT, SECTOR_SIZE, Bio, blkdev_issue_flush,
    submit_bio, submit_bio_wait,
)
from .device import PRESETS, BlockDevice, DeviceModel, add_disk, lookup_bdev

__all__ = [
    "REQ_OP_FLUSH", "REQ_OP_READ", "REQ_OP_WRITE", "SECTOR_SHIFT", "SECTOR_SIZE", "Bio",
    "blkdev_issue_flush", "submit_bio", "submit_bio_wait", "PRESETS", "BlockDevice",
    "DeviceModel", "add_disk", "lookup_bdev",
]
