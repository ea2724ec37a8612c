"""The kernel runtime: virtual time, tasks as generators, CPUs, locks, wait queues, workqueues.

See ``core`` for the event loop and the request protocol, ``docs/internals.md`` §1 for the API.
"""

from .core import (
    HZ, JIFFY_NS, NSEC_PER_MSEC, NSEC_PER_SEC, NSEC_PER_USEC, PARK, PF_KSWAPD, PF_KTHREAD,
    PF_MEMALLOC, PF_MEMALLOC_NOFS, PF_MEMALLOC_NOIO, PF_WQ_WORKER, TIMEOUT, BlockedInfo, Cpu,
    Observer, Run, SimError, Simulation, Task, Timer, cond_resched, current, holders_of,
    memalloc_noio_restore, memalloc_noio_save, memalloc_nofs_restore, memalloc_nofs_save,
    memalloc_noreclaim_restore, memalloc_noreclaim_save, msleep, schedule_timeout_uninterruptible,
)
from .locks import (
    LockdepMap, Mutex, RwSemaphore, Spinlock, down_read, down_read_trylock, down_write,
    down_write_trylock, down_read_nested, down_write_nested, lock_map_acquire, lock_map_release, mutex_lock, mutex_lock_nested, mutex_trylock,
    mutex_unlock, spin_lock, spin_trylock, spin_unlock, up_read, up_write,
)
from .wait import (
    Completion, WaitQueue, complete, complete_all, reinit_completion, wait_event,
    wait_for_completion, wake_up, wake_up_all,
)
from .workqueue import (
    WQ_UNBOUND, DelayedWork, Work, Workqueue, alloc_workqueue, cancel_delayed_work,
    flush_delayed_work, flush_work, flush_workqueue, mod_delayed_work, mod_delayed_work_on,
    queue_delayed_work, queue_delayed_work_on, queue_work, queue_work_on,
)

__all__ = [name for name in dir() if not name.startswith("_")]
