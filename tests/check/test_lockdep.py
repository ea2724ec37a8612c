"""lockdep: lock-class dependency graph, circular and recursive reports, atomic sleeps."""

from hypothesis import given, settings, strategies as st

from reclaimlab.check import attach_checks
from reclaimlab.sim import (
    LockdepMap, Mutex, RwSemaphore, Simulation, Spinlock, current, down_write, lock_map_acquire,
    lock_map_release, mutex_lock, mutex_trylock, mutex_unlock, spin_lock, spin_unlock, up_write,
)


def d1_model(sim, unlink_gfp_fs: bool):
    """The D1 shape (syzbot 1422c4a798761a48ea4f) with hand-made kernel functions:
    kswapd evicts an inode under fs_reclaim and starts a journal handle; a handle holder takes
    xattr_sem; an unlink holding xattr_sem allocates (GFP_KERNEL: fs_reclaim; GFP_NOFS: not)."""
    fs_reclaim, jbd2_handle = LockdepMap("fs_reclaim"), LockdepMap("jbd2_handle")
    xattr_sem = RwSemaphore("&ei->xattr_sem")

    def start_this_handle():
        lock_map_acquire(jbd2_handle)
        yield 10

    def jbd2_journal_stop():
        lock_map_release(jbd2_handle)

    def ext4_evict_inode():
        yield from start_this_handle()
        jbd2_journal_stop()

    def balance_pgdat():
        lock_map_acquire(fs_reclaim)
        yield from ext4_evict_inode()
        lock_map_release(fs_reclaim)

    def kswapd():
        yield from balance_pgdat()

    def ext4_xattr_set_handle():
        yield from down_write(xattr_sem)
        yield 10
        up_write(xattr_sem)

    def setxattr():
        yield 100
        yield from start_this_handle()
        yield from ext4_xattr_set_handle()
        jbd2_journal_stop()

    def __alloc_pages():
        if unlink_gfp_fs:
            lock_map_acquire(fs_reclaim)  # fs_reclaim_acquire(): might_alloc with __GFP_FS
            lock_map_release(fs_reclaim)
        yield 10

    def ext4_xattr_delete_inode():
        yield from down_write(xattr_sem)
        yield from __alloc_pages()
        up_write(xattr_sem)

    def unlink():
        yield 200
        yield from ext4_xattr_delete_inode()

    sim.spawn(kswapd(), "kswapd0")
    sim.spawn(setxattr(), "setfattr")
    sim.spawn(unlink(), "rm")


def test_d1_chain_through_fs_reclaim_is_reported_though_the_run_completes():
    sim = Simulation()
    checks = attach_checks(sim)
    d1_model(sim, unlink_gfp_fs=True)
    sim.run()
    checks.finish()
    assert all(t.state == "X" for t in sim.tasks.values())
    assert checks.deadlock.reports == []
    [f] = checks.lockdep.reports
    assert f.kind == "lockdep_circular"
    assert f.task == "rm:3"
    text = f.text
    assert "WARNING: possible circular locking dependency detected" in text
    assert "rm/3 is trying to acquire lock:\n(fs_reclaim){+.+.}-{0:0}, at: __alloc_pages" in text
    assert "but task is already holding lock:\n(&ei->xattr_sem)" in text
    assert "at: ext4_xattr_delete_inode" in text
    assert "Chain exists of:\n  fs_reclaim --> jbd2_handle --> &ei->xattr_sem" in text
    # the unsafe-scenario table as print_circular_lock_scenario prints it
    assert ("  lock(&ei->xattr_sem);\n"
            "                               lock(jbd2_handle);\n"
            "                               lock(&ei->xattr_sem);\n"
            "  lock(fs_reclaim);") in text
    # the stacks that created each edge, innermost first
    e2 = text.index("-> #2 (&ei->xattr_sem){+.+.}-{3:3}:")
    e1 = text.index("-> #1 (jbd2_handle){+.+.}-{0:0}:")
    e0 = text.index("-> #0 (fs_reclaim){+.+.}-{0:0}:")
    assert e2 < e1 < e0
    assert "ext4_xattr_set_handle\n       setxattr" in text[e2:e1]
    assert "start_this_handle\n       ext4_evict_inode\n       balance_pgdat\n       kswapd" in \
        text[e1:e0]
    assert f.data["chain"] == ["fs_reclaim", "jbd2_handle", "&ei->xattr_sem"]


def test_d1_variant_allocating_with_gfp_nofs_is_silent():
    sim = Simulation()
    checks = attach_checks(sim)
    d1_model(sim, unlink_gfp_fs=False)
    sim.run()
    checks.finish()
    assert checks.findings == []


def test_a_cycle_is_reported_once():
    sim = Simulation()
    checks = attach_checks(sim)
    a, b = Mutex("A"), Mutex("B")

    def nest(x, y):
        yield from mutex_lock(x)
        yield from mutex_lock(y)
        mutex_unlock(y)
        mutex_unlock(x)

    def body():
        for _ in range(3):
            yield from nest(a, b)
            yield from nest(b, a)
            yield 1

    sim.spawn(body(), "t")
    sim.run()
    assert [f.kind for f in checks.findings] == ["lockdep_circular"]


def test_trylock_adds_no_dependency():
    sim = Simulation()
    checks = attach_checks(sim)
    a, b = Mutex("A"), Mutex("B")

    def body():
        yield from mutex_lock(a)
        yield from mutex_lock(b)
        mutex_unlock(b)
        mutex_unlock(a)
        yield from mutex_lock(b)
        assert mutex_trylock(a)
        mutex_unlock(a)
        mutex_unlock(b)

    sim.spawn(body(), "t")
    sim.run()
    assert checks.findings == []


def test_recursive_locking_of_one_class():
    sim = Simulation()
    checks = attach_checks(sim)
    i1, i2 = RwSemaphore("&ei->xattr_sem"), RwSemaphore("&ei->xattr_sem")

    def body():
        yield from down_write(i1)
        yield from down_write(i2)
        up_write(i2)
        up_write(i1)

    sim.spawn(body(), "t")
    sim.run()
    [f] = checks.findings
    assert f.kind == "lockdep_recursive"
    assert "WARNING: possible recursive locking detected" in f.text


def test_sleeping_lock_inside_a_spinlock_is_reported():
    sim = Simulation()
    checks = attach_checks(sim)
    spin, m = Spinlock("&inode->i_lock"), Mutex("&ei->i_data_sem")

    def body():
        spin_lock(spin)
        yield from mutex_lock(m)  # uncontended: the runtime lets it pass, might_sleep does not
        mutex_unlock(m)
        spin_unlock(spin)

    sim.spawn(body(), "t")
    sim.run()
    [f] = [f for f in checks.findings if f.kind == "sleeping_in_atomic"]
    assert f.text.startswith("BUG: sleeping function called from invalid context at "
                             "kernel/locking/mutex.c")


def has_cycle(edges: dict[int, set[int]]) -> bool:
    state: dict[int, int] = {}

    def visit(n: int) -> bool:
        state[n] = 1
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1 or (m not in state and visit(m)):
                return True
        state[n] = 2
        return False

    return any(n not in state and visit(n) for n in sorted(edges))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(0, 4), min_size=1, max_size=4, unique=True),
                min_size=1, max_size=6))
def test_circular_report_iff_the_orders_seen_have_a_cycle(sequences):
    """Tasks run one after another, each nesting its locks in its own order: no run ever
    deadlocks, and lockdep warns exactly when the union of the orders has a cycle."""
    sim = Simulation()
    checks = attach_checks(sim)
    locks = [Mutex(f"L{i}") for i in range(5)]

    def nested(seq):
        for i in seq:
            yield from mutex_lock(locks[i])
        for i in reversed(seq):
            mutex_unlock(locks[i])

    def runner():
        for seq in sequences:
            yield from nested(seq)
            yield 1

    sim.spawn(runner(), "t")
    sim.run()
    edges: dict[int, set[int]] = {}
    for seq in sequences:
        for x, y in zip(seq, seq[1:]):
            edges.setdefault(x, set()).add(y)
    circular = [f for f in checks.findings if f.kind == "lockdep_circular"]
    assert bool(circular) == has_cycle(edges)
    assert checks.deadlock.reports == []


def test_nesting_subclass_reported_by_the_runtime_makes_a_distinct_class():
    """``lock_rename`` takes two directories' i_rwsem with I_MUTEX_PARENT/PARENT2: with a
    ``subclass`` in the ``lock_acquire`` info they are two classes, not a recursion."""
    sim = Simulation()
    checks = attach_checks(sim)
    d1, d2 = RwSemaphore("&type->i_mutex_dir_key#ext4"), RwSemaphore("&type->i_mutex_dir_key#ext4")

    def down_write_nested(sem, subclass):
        # the shape a runtime ``down_write_nested`` would report (it has none yet)
        task = current()
        sim.emit("lock_acquire", task, sem, {"trylock": False, "read": False,
                                             "subclass": subclass})
        sem.owner = task
        task.held_locks.append(sem)
        sim.emit("lock_acquired", task, sem, {"read": False})

    def lock_rename():
        yield from down_write(d1)
        down_write_nested(d2, 1)
        up_write(d2)
        up_write(d1)

    sim.spawn(lock_rename(), "mv")
    sim.run()
    assert checks.findings == []
    assert checks.lockdep.deps["&type->i_mutex_dir_key#ext4"] == ["&type->i_mutex_dir_key#ext4/1"]


def test_a_lock_released_out_of_order_leaves_the_chain_of_those_still_held():
    """Holding B after releasing A first, taking C records B --> C (not A --> C): the later
    C-then-B order closes a cycle. Repeating an order (a chain already validated) adds nothing."""
    sim = Simulation()
    checks = attach_checks(sim)
    a, b, c = Mutex("A"), Mutex("B"), Mutex("C")

    def body():
        for _ in range(2):
            yield from mutex_lock(a)
            yield from mutex_lock(b)
            mutex_unlock(a)
            yield from mutex_lock(c)
            mutex_unlock(c)
            mutex_unlock(b)
            yield 1
        yield from mutex_lock(c)
        yield from mutex_lock(b)
        mutex_unlock(b)
        mutex_unlock(c)

    sim.spawn(body(), "t")
    sim.run()
    assert [f.kind for f in checks.findings] == ["lockdep_circular"]
    assert checks.findings[0].data["chain"] == ["B", "C"]
