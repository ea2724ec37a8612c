"""A small block-backed filesystem for testing the VFS ("testfs"), and a machine builder.

Not a model of any real filesystem: its only job is to exercise every VFS path with a filesystem
that blocks where real ones do — metadata IO on the block device in ``->evict_inode`` of an
unlinked inode, ``->write_inode``, ``->read_folio``, ``->writepages`` — and frees blocks so that
leaks are visible. Under the ``inodegc`` design its ``->evict_inode`` only truncates and its
``->destroy_inode`` hands the blocking part to a workqueue holding a passive reference, as the
contract asks of filesystems.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reclaimlab.block import REQ_OP_READ, REQ_OP_WRITE, Bio, BlockDevice, add_disk, submit_bio, \
    submit_bio_wait
from reclaimlab.mm.filemap import (
    filemap_dirty_folios, folio_clear_dirty_for_io, folio_end_writeback, folio_start_writeback,
)
from reclaimlab.mm.page_alloc import MemoryConfig, pglist_data
from reclaimlab.sim import Simulation, Work, queue_work
from reclaimlab.vfs import vfs_init
from reclaimlab.vfs import dcache
from reclaimlab.vfs import inode as vi
from reclaimlab.vfs.errors import KernelError
from reclaimlab.vfs.fs import (
    S_IFDIR, S_ISDIR, AddressSpaceOperations, FileSystemType, InodeOperations, SuperOperations,
)
from reclaimlab.vfs.super import alloc_super, register_filesystem

ROOT_INO = 1
SECTORS_PER_BLOCK = 8


@dataclass
class DiskInode:
    mode: int
    nlink: int = 1
    size: int = 0
    blocks: list[int] = field(default_factory=list)
    entries: dict[str, int] = field(default_factory=dict)
    xattrs: dict[str, int] = field(default_factory=dict)


class TestFsInfo:
    def __init__(self, nblocks: int) -> None:
        self.free_blocks = list(range(nblocks - 1, 99, -1))
        self.nblocks = nblocks
        self.itable: dict[int, DiskInode] = {ROOT_INO: DiskInode(S_IFDIR | 0o755, nlink=2)}
        self.next_ino = ROOT_INO + 1
        self.gc_list: list = []
        self.gc_work: Work | None = None
        self.cleanups: list[tuple] = []   # (ino, comm, task flags, stack)


def _info(sb) -> TestFsInfo:
    return sb.s_fs_info


def _itable_io(sb, op: str, ino: int):
    """One metadata block IO for inode ``ino`` (the inode table)."""
    err = yield from submit_bio_wait(sb.s_bdev, op, (ino % 64) * SECTORS_PER_BLOCK,
                                     SECTORS_PER_BLOCK)
    if err:
        raise KernelError("EIO", f"inode table {op}")


def _free_disk_inode(inode):
    """The blocking cleanup of an unlinked inode: itable IO, free blocks, free the inode."""
    sb = inode.i_sb
    fsi = _info(sb)
    from reclaimlab.sim import current
    task = current()
    fsi.cleanups.append((inode.i_ino, task.comm, task.flags, task.stack()))
    yield from _itable_io(sb, REQ_OP_READ, inode.i_ino)
    d = fsi.itable.pop(inode.i_ino)
    fsi.free_blocks.extend(d.blocks)
    yield from _itable_io(sb, REQ_OP_WRITE, inode.i_ino)
    vi.note_inode_blocks_freed(inode)


class TestSuperOps(SuperOperations):
    def evict_inode(self, inode):
        vi.truncate_inode_pages_final(inode.i_data)
        if inode.i_nlink == 0 and not vi.inode_uses_inodegc(inode):
            yield from _free_disk_inode(inode)
        vi.clear_inode(inode)

    def destroy_inode(self, inode):
        if inode.i_nlink == 0 and vi.inode_uses_inodegc(inode):
            fsi = _info(inode.i_sb)
            vi.iobj_get(inode)
            fsi.gc_list.append(inode)
            vi.note_inode_deferred(inode)
            queue_work(inode.i_sb.s_sim.vfs.evict_wq, fsi.gc_work)
        return
        yield

    def free_inode(self, inode):
        from reclaimlab.mm.slab import kmem_cache_free
        kmem_cache_free(inode.i_sb.s_sim.vfs.inode_cachep, inode.i_slab)

    def write_inode(self, inode, wbc):
        d = _info(inode.i_sb).itable.get(inode.i_ino)
        if d is not None:
            d.size = inode.i_size
            yield from _itable_io(inode.i_sb, REQ_OP_WRITE, inode.i_ino)

    def sync_fs(self, sb, wait):
        if wait:
            from reclaimlab.sim import cond_resched
            yield from cond_resched()
        return

    def statfs(self, sb):
        fsi = _info(sb)
        return {"f_blocks": fsi.nblocks, "f_bfree": len(fsi.free_blocks),
                "f_files": 1 << 20, "f_ffree": (1 << 20) - len(fsi.itable)}

    def put_super(self, sb):
        return
        yield


def testfs_gc_worker(work):
    """The inodegc-design worker: the blocking cleanup, then drop the passive reference."""
    fsi: TestFsInfo = work.data
    while fsi.gc_list:
        inode = fsi.gc_list.pop(0)
        vi.note_inode_cleanup(inode, True)
        yield from _free_disk_inode(inode)
        vi.iobj_put(inode)


def _fill_inode(inode, d: DiskInode) -> None:
    inode.i_mode = d.mode
    inode.i_size = d.size
    inode.i_blocks = len(d.blocks)
    vi.set_nlink(inode, d.nlink)
    inode.i_op = TEST_IOPS
    inode.i_aops = TEST_AOPS


def testfs_iget(sb, ino: int):
    inode = yield from vi.iget_locked(sb, ino)
    if inode is None:
        raise KernelError("ENOMEM", "iget")
    if inode.i_state & vi.I_NEW:
        yield from _itable_io(sb, REQ_OP_READ, ino)
        _fill_inode(inode, _info(sb).itable[ino])
        vi.unlock_new_inode(inode)
    return inode


class TestInodeOps(InodeOperations):
    def lookup(self, dir, dentry):
        ino = _info(dir.i_sb).itable[dir.i_ino].entries.get(dentry.d_name)
        inode = None if ino is None else (yield from testfs_iget(dir.i_sb, ino))
        dcache.d_add(dentry, inode)

    def _new(self, dir, dentry, mode):
        sb = dir.i_sb
        fsi = _info(sb)
        inode = yield from vi.new_inode(sb)
        if inode is None:
            raise KernelError("ENOMEM", "new_inode")
        ino = fsi.next_ino
        fsi.next_ino += 1
        d = DiskInode(mode, nlink=2 if S_ISDIR(mode) else 1)
        fsi.itable[ino] = d
        inode.i_ino = ino
        _fill_inode(inode, d)
        vi.insert_inode_hash(inode)
        fsi.itable[dir.i_ino].entries[dentry.d_name] = ino
        dcache.d_instantiate(dentry, inode)
        yield from _itable_io(sb, REQ_OP_WRITE, ino)

    def create(self, dir, dentry, mode):
        yield from self._new(dir, dentry, mode)

    def mkdir(self, dir, dentry, mode):
        yield from self._new(dir, dentry, mode)

    def unlink(self, dir, dentry):
        fsi = _info(dir.i_sb)
        inode = dentry.d_inode
        del fsi.itable[dir.i_ino].entries[dentry.d_name]
        fsi.itable[inode.i_ino].nlink -= 1
        vi.drop_nlink(inode)
        yield from _itable_io(dir.i_sb, REQ_OP_WRITE, dir.i_ino)

    def rmdir(self, dir, dentry):
        fsi = _info(dir.i_sb)
        inode = dentry.d_inode
        if fsi.itable[inode.i_ino].entries:
            raise KernelError("ENOTEMPTY", dentry.d_name)
        del fsi.itable[dir.i_ino].entries[dentry.d_name]
        fsi.itable[inode.i_ino].nlink = 0
        vi.clear_nlink(inode)
        yield from _itable_io(dir.i_sb, REQ_OP_WRITE, dir.i_ino)

    def rename(self, old_dir, old_dentry, new_dir, new_dentry):
        fsi = _info(old_dir.i_sb)
        ino = fsi.itable[old_dir.i_ino].entries.pop(old_dentry.d_name)
        victim = new_dentry.d_inode
        if victim is not None:
            fsi.itable[victim.i_ino].nlink -= 1
            vi.drop_nlink(victim)
        fsi.itable[new_dir.i_ino].entries[new_dentry.d_name] = ino
        yield from _itable_io(old_dir.i_sb, REQ_OP_WRITE, old_dir.i_ino)

    def setxattr(self, dentry, name, size):
        inode = dentry.d_inode
        _info(inode.i_sb).itable[inode.i_ino].xattrs[name] = size
        yield from _itable_io(inode.i_sb, REQ_OP_WRITE, inode.i_ino)

    def getxattr(self, dentry, name):
        inode = dentry.d_inode
        size = _info(inode.i_sb).itable[inode.i_ino].xattrs.get(name)
        if size is None:
            raise KernelError("ENODATA", name)
        return size
        yield


class TestAops(AddressSpaceOperations):
    def read_folio(self, file, folio):
        inode = folio.mapping.host
        yield from submit_bio_wait(inode.i_sb.s_bdev, REQ_OP_READ, folio.index * 8, 8)
        folio.uptodate = True

    def write_begin(self, file, mapping, index):
        inode = mapping.host
        fsi = _info(inode.i_sb)
        d = fsi.itable[inode.i_ino]
        while len(d.blocks) <= index:
            if not fsi.free_blocks:
                raise KernelError("ENOSPC", "testfs")
            d.blocks.append(fsi.free_blocks.pop())
        inode.i_blocks = len(d.blocks)
        return
        yield

    def writepages(self, mapping, nr):
        inode = mapping.host
        d = _info(inode.i_sb).itable.get(inode.i_ino)
        written = 0
        for folio in filemap_dirty_folios(mapping, min(nr, 1 << 20)):
            if not folio_clear_dirty_for_io(folio):
                continue
            folio_start_writeback(folio)
            block = d.blocks[folio.index] if d is not None and folio.index < len(d.blocks) else 0
            bio = Bio(inode.i_sb.s_bdev, REQ_OP_WRITE, block * SECTORS_PER_BLOCK,
                      SECTORS_PER_BLOCK, end_io=lambda b, f=folio: folio_end_writeback(f))
            yield from submit_bio(bio)
            written += 1
        return written


TEST_IOPS = TestInodeOps()
TEST_AOPS = TestAops()


class TestFsType(FileSystemType):
    name = "testfs"

    def mount(self, sim, dev, opts):
        sb = alloc_super(sim, self, dev)
        sb.s_op = TestSuperOps()
        fsi = TestFsInfo(dev.nr_sectors // SECTORS_PER_BLOCK)
        sb.s_fs_info = fsi
        fsi.gc_work = Work(testfs_gc_worker, fsi)
        root = yield from testfs_iget(sb, ROOT_INO)
        sb.s_root = yield from dcache.d_make_root(root)
        return sb


class TestFsNativeGc(TestFsType):
    """Same filesystem, registered under another name, whose native design is inodegc."""

    name = "testfs-gc"
    native_design = "inodegc"


def make_machine(design: str = "sync", memory_mb: int = 64, seed: int = 0, ncpus: int = 2,
                 disks: int = 1, preset: str = "ramdisk", **vfs_config):
    """A simulation with mm, the VFS (``design``), testfs registered, ``disks`` ramdisks."""
    sim = Simulation(seed=seed, ncpus=ncpus)
    pglist_data(sim, MemoryConfig(memory_bytes=memory_mb << 20))
    vfs_init(sim, {"design": design, **vfs_config})
    register_filesystem(sim, TestFsType())
    register_filesystem(sim, TestFsNativeGc())
    for i in range(disks):
        add_disk(sim, BlockDevice(sim, f"vd{chr(ord('a') + i)}", preset, nr_sectors=1 << 20))
    return sim


def run_task(sim, gen, comm: str = "test", flags: int = 0, until: int | None = None):
    """Spawn ``gen`` as a task, run the simulation, and return the task's result; re-raise its
    exception."""
    box: dict = {}

    def wrapper():
        try:
            box["value"] = yield from gen
        except BaseException as e:  # noqa: BLE001 - handed back to the test
            box["error"] = e

    sim.spawn(wrapper(), comm, flags)
    sim.run(until=until)
    if "error" in box:
        raise box["error"]
    if "value" not in box:
        raise AssertionError(f"task {comm} did not finish (blocked: {sim.blocked_tasks()})")
    return box["value"]


__all__ = ["make_machine", "run_task", "TestFsType"]
