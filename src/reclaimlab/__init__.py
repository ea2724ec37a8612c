"""reclaimlab: a deterministic laboratory for Linux memory reclaim and inode eviction."""

__version__ = "0.1.0"
