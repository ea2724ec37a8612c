"""The virtual-time kernel: event loop, tasks, CPUs and observation hooks.

A task is a Python generator. Kernel functions are generators too and are called with
``yield from``, so the chain of suspended generator frames *is* the task's kernel stack
(``Task.stack``). A task talks to the runtime by yielding one of three requests:

- an ``int``: sleep that many nanoseconds (``schedule_timeout_uninterruptible``);
- ``Run(ns)``: consume ``ns`` of CPU time on a CPU, queueing FIFO when every allowed CPU is busy;
- ``PARK``: sleep until woken; yielded only by the primitives in ``locks``/``wait``/``workqueue``
  after they have recorded what the task waits on (``Simulation.park``).

Design, after SimPy's core and trio's run loop: one heap of timed events keyed by
``(time, sequence)``; a FIFO deque of tasks made runnable at the current instant (wake-ups);
observers called through one hook, only when attached. Two shortcuts keep the loop close to a
bare heapq loop and do not change behaviour: a sleep or CPU burst that would be the very next event
anyway continues the same task without touching the heap (not in abstract-time exploration, where
every timed event is a choice); wake-ups go to the deque, not the heap. The digest hashes the clock
and pid at every task switch and the step count, so it does not depend on the first shortcut.

Simplifications: CPUs are not preempted (a ``Run`` burst completes once started); code between two
yields takes no virtual time; there is one run queue per CPU and an unpinned task picks the CPU
with the shortest queue when it needs one.
"""

from __future__ import annotations

import hashlib
import heapq
import random
import sys
from array import array
from collections import deque
from typing import Any, Callable, NamedTuple, Sequence

PF_WQ_WORKER = 0x00000020
PF_MEMALLOC = 0x00000800
PF_KSWAPD = 0x00020000
PF_MEMALLOC_NOFS = 0x00040000
PF_MEMALLOC_NOIO = 0x00080000
PF_KTHREAD = 0x00200000

NSEC_PER_USEC = 1_000
NSEC_PER_MSEC = 1_000_000
NSEC_PER_SEC = 1_000_000_000
HZ = 250
JIFFY_NS = NSEC_PER_SEC // HZ

_TRACE_FLUSH = 1 << 16


class SimError(Exception):
    """Misuse of the runtime by modelled code: names the task and its stack."""


class _Timeout:
    """The value a timed wait resumes with when its timeout fired first."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "TIMEOUT"

    def __bool__(self) -> bool:
        return False


TIMEOUT = _Timeout()


class _Park:
    __slots__ = ()

    def __repr__(self) -> str:
        return "PARK"


PARK = _Park()


class Run:
    """Request to consume ``ns`` of CPU time."""

    __slots__ = ("ns",)

    def __init__(self, ns: int) -> None:
        self.ns = ns


class Timer:
    """A callback scheduled on the event heap (device completions, timer_list)."""

    __slots__ = ("fn", "arg", "cancelled", "when", "sim")

    def __init__(self, fn: Callable[[Any], None], arg: Any, when: int,
                 sim: "Simulation") -> None:
        self.fn = fn
        self.arg = arg
        self.when = when
        self.cancelled = False
        self.sim = sim

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            self.sim._timer_cancelled()


_current: "Task | None" = None


def current() -> "Task":
    """The running task (the kernel's ``current``)."""
    return _current  # type: ignore[return-value]


class Task:
    """A task_struct: a generator plus the state the kernel keeps on a task."""

    __slots__ = (
        "sim", "pid", "comm", "gen", "flags", "state", "cpu", "pinned", "blocked_on",
        "blocked_since", "wait_state", "held_locks", "journal_info", "spin_depth", "wseq",
        "oom_killed", "exit_value", "on_cpu", "send", "pidbits", "__dict__",
    )

    def __init__(self, sim: "Simulation", pid: int, comm: str, gen: Any, flags: int,
                 cpu: int | None) -> None:
        self.sim = sim
        self.pid = pid
        self.comm = comm
        self.gen = gen
        self.flags = flags
        self.state = "R"
        self.pinned = cpu
        self.cpu = cpu if cpu is not None else (pid - 1) % sim.ncpus
        self.blocked_on: Any = None
        self.blocked_since = 0
        self.wait_state = "R"
        self.held_locks: list[Any] = []
        self.journal_info: Any = None
        self.spin_depth = 0
        self.wseq = 0
        self.oom_killed = False
        self.exit_value: Any = None
        self.on_cpu: "Cpu | None" = None
        self.send = gen.send
        self.pidbits = pid << 44

    def stack(self) -> list[str]:
        """Modelled function names of the task's call chain, outermost first, innermost last.

        A suspended task's chain is its generator frames (``gi_yieldfrom``); the running task's
        is read from the interpreter's frames up to the event loop, so plain (non-blocking)
        kernel functions on the way appear too. Simulator machinery (names with one leading
        underscore, the event loop, observers) is left out; kernel ``__names`` stay.
        """
        if self is _current and self.gen is not None and self.gen.gi_running:
            return _running_stack()
        names = []
        g = self.gen
        while g is not None and hasattr(g, "gi_code"):
            name = g.gi_code.co_name
            if not name.startswith("_") or name.startswith("__"):
                names.append(name)
            g = g.gi_yieldfrom
        return names

    def __repr__(self) -> str:
        return f"{self.comm}:{self.pid}"


_HIDDEN_DIRS = ("/reclaimlab/check/", "/reclaimlab/report/", "/reclaimlab/explore/")


def _running_stack() -> list[str]:
    names = []
    f = sys._getframe(2)
    loop = Simulation.run.__code__
    while f is not None and f.f_code is not loop:
        code = f.f_code
        name = code.co_name
        if (not name.startswith("_") or name.startswith("__")) and code.co_filename != __file__ \
                and not any(d in code.co_filename for d in _HIDDEN_DIRS):
            names.append(name)
        f = f.f_back
    names.reverse()
    return names


class Cpu:
    """One CPU: the task consuming it and a FIFO run queue of (task, ns) bursts."""

    __slots__ = ("id", "current", "runq", "busy_ns")

    def __init__(self, cpu_id: int) -> None:
        self.id = cpu_id
        self.current: Task | None = None
        self.runq: deque[tuple[Task, int]] = deque()
        self.busy_ns = 0


class BlockedInfo(NamedTuple):
    task: Task
    waits_on: Any
    holder: list[Task]
    since: int
    stack: list[str]


class Observer:
    """Base class for observers: override ``event``; called for every runtime event."""

    def event(self, kind: str, task: Task | None, obj: Any, info: Any) -> None:  # pragma: no cover
        pass


def holders_of(obj: Any) -> list[Task]:
    """Tasks that can end a wait on ``obj`` (lock owners); empty when unknown."""
    fn = getattr(obj, "holders", None)
    return fn() if fn is not None else []


Handler = Callable[[Any, Any, Any], None]


def fan_out(handlers: Sequence[Handler]) -> Handler:
    """One ``handler(task, obj, info)`` calling ``handlers`` in order (the only one itself)."""
    if len(handlers) == 1:
        return handlers[0]
    hs = tuple(handlers)

    def each(task: Any, obj: Any, info: Any) -> None:
        for h in hs:
            h(task, obj, info)
    return each


def dispatcher(routes: dict[str, Handler]) -> Callable[[str, Any, Any, Any], None]:
    """An ``event(kind, task, obj, info)`` calling ``routes[kind]`` when there is one: a closure
    over the dict's ``get``, as cheap as a call can be for the kinds nobody routes."""
    get = routes.get

    def event(kind: str, task: Any, obj: Any, info: Any) -> None:
        handler = get(kind)
        if handler is not None:
            handler(task, obj, info)
    return event


class Simulation:
    """One simulated machine's runtime: clock, heap, run queues, tasks, observers."""

    def __init__(self, seed: int = 0, ncpus: int = 1, policy: Any = None) -> None:
        if ncpus < 1:
            raise ValueError("ncpus must be >= 1")
        self.seed = seed
        self.rng = random.Random(seed)
        self.ncpus = ncpus
        self.cpus = [Cpu(i) for i in range(ncpus)]
        # CONFIG_MUTEX_SPIN_ON_OWNER / CONFIG_RWSEM_SPIN_ON_OWNER (see locks._spin_on_owner)
        self.spin_on_owner = True
        self.policy = policy
        self.now = 0
        self.events = 0
        self.tasks: dict[int, Task] = {}
        self.observers: list[Any] = []
        self._obs: tuple[Any, ...] = ()
        self._hook: Callable[[str, Any, Any, Any], None] | None = None
        self._plain = False       # an observer takes every kind (no ``event_routes``)
        self._routes: dict[str, Handler] = {}
        # ``hook_for`` the hottest kinds (see ``_set_hook``)
        self._on_run: Callable[[str, Any, Any, Any], None] | None = None
        self._on_alloc: Callable[[str, Any, Any, Any], None] | None = None
        self._heap: list[tuple] = []
        self._seq = 0
        self._cancelled = 0       # timers cancelled since the last ``_purge_heap``
        self._dead_horizon = -1   # the latest due time of the dead entries it dropped
        self._ready: deque[tuple[Task, Any]] = deque()
        self._next_pid = 1
        self._stopped = False
        self._trace = array("q")
        self._last: Task | None = None
        self._hasher = hashlib.blake2b(digest_size=16)

    # ----------------------------------------------------------------- observers
    @property
    def current(self) -> Task | None:
        """The task running now, None between steps and in callbacks."""
        return _current

    def add_observer(self, obs: Any) -> None:
        self.observers.append(obs)
        self._set_hook()

    def remove_observer(self, obs: Any) -> None:
        self.observers.remove(obs)
        self._set_hook()

    def _set_hook(self, observers: Sequence[Any] | None = None) -> None:
        """``_hook`` is what the hot paths call: None without observers (``observers``, by
        default the attached ones), else one callable.

        An observer with ``event_routes`` (a dict: kind -> ``handler(task, obj, info)``) is not
        called for every event: the routes of all such observers are merged into one table, so
        an event costs one lookup however many of them there are, and kinds nobody routes cost
        nothing more. Routed handlers run first, in attach order; then other observers' ``event``.
        The hottest kinds also keep ``hook_for(kind)``, so that their sites call nothing at all
        when no observer wants them (no detector routes ``run``).
        """
        observers = self.observers if observers is None else observers
        self._obs = tuple(o.event for o in observers)
        merged: dict[str, list[Handler]] = {}
        calls = []
        for o in observers:
            routes = getattr(o, "event_routes", None)
            if routes is None:
                calls.append(o.event)
                continue
            for kind, handler in routes.items():
                merged.setdefault(kind, []).append(handler)
        self._plain = bool(calls)
        self._routes = {kind: fan_out(hs) for kind, hs in merged.items()}
        if merged:
            calls.insert(0, dispatcher(self._routes))
        if not calls:
            self._hook = None
        elif len(calls) == 1:
            self._hook = calls[0]
        else:
            fns = tuple(calls)

            def every_observer(kind: str, task: Any, obj: Any, info: Any) -> None:
                for fn in fns:
                    fn(kind, task, obj, info)
            self._hook = every_observer
        self._on_run = self.hook_for("run")
        self._on_alloc = self.hook_for("alloc")

    def hook_for(self, kind: str) -> Callable[[str, Any, Any, Any], None] | None:
        """``_hook`` if an observer may want ``kind`` events (one routes it, or one takes every
        kind), else None: a site emitting only ``kind`` then skips the call, and its info."""
        return self._hook if self._plain or kind in self._routes else None

    def emit(self, kind: str, task: Task | None, obj: Any = None, info: Any = None) -> None:
        """Report an event to every observer (no-op without observers)."""
        hook = self._hook
        if hook is not None:
            hook(kind, task, obj, info)

    # ----------------------------------------------------------------- tasks
    def spawn(self, gen: Any, comm: str, flags: int = 0, cpu: int | None = None) -> Task:
        """Start a task running generator ``gen`` (``kernel_clone`` + ``wake_up_new_task``)."""
        if not hasattr(gen, "send"):
            raise SimError(f"spawn({comm!r}): expected a generator object, got {gen!r}")
        if cpu is not None and not 0 <= cpu < self.ncpus:
            raise SimError(f"spawn({comm!r}): no CPU {cpu} (machine has {self.ncpus})")
        task = Task(self, self._next_pid, comm, gen, flags, cpu)
        self._next_pid += 1
        self.tasks[task.pid] = task
        self._ready.append((task, None))
        if self._obs:
            self.emit("spawn", task)
        return task

    def kthread_run(self, fn: Callable[..., Any], comm: str, *args: Any,
                    cpu: int | None = None, flags: int = 0) -> Task:
        """``kthread_run``: a kernel thread (``PF_KTHREAD``) running ``fn(*args)``."""
        return self.spawn(fn(*args), comm, flags | PF_KTHREAD, cpu)

    # ----------------------------------------------------------------- timers
    def call_at(self, when: int, fn: Callable[[Any], None], arg: Any = None) -> Timer:
        """Run plain callback ``fn(arg)`` at virtual time ``when``."""
        if when < self.now:
            raise SimError(f"call_at({when}) is in the past (now {self.now})")
        timer = Timer(fn, arg, when, self)
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, timer, None, None))
        return timer

    def call_after(self, delay: int, fn: Callable[[Any], None], arg: Any = None) -> Timer:
        return self.call_at(self.now + delay, fn, arg)

    # ----------------------------------------------------------------- wait/wake
    def park(self, task: Task, obj: Any, timeout: int | None = None, state: str = "D") -> None:
        """Record that ``task`` is about to wait on ``obj``; the caller then yields ``PARK``.

        ``state`` is the kernel task state: ``D`` uninterruptible (hung-task detector counts it),
        ``S`` interruptible, ``I`` idle (an idle worker).
        """
        if task.spin_depth:
            self._atomic_sleep(task, f"waiting on {obj!r}")
        task.state = task.wait_state = state
        task.blocked_on = obj
        task.blocked_since = self.now
        task.wseq += 1
        if timeout is not None:
            self._seq += 1
            heapq.heappush(self._heap, (self.now + timeout, self._seq, task, TIMEOUT, task.wseq))
        hook = self._hook
        if hook is not None:
            hook("block", task, obj, state)

    def wake(self, task: Task, value: Any = None, obj: Any = None) -> None:
        """Make a parked task runnable now (``try_to_wake_up``); ``value`` is what PARK returns."""
        waited = task.blocked_on
        task.blocked_on = None
        task.state = "R"
        task.wseq += 1
        self._ready.append((task, value))
        hook = self._hook
        if hook is not None:
            hook("wake", task, waited if obj is None else obj, _current)

    def _atomic_sleep(self, task: Task, what: str) -> None:
        held = [lk.name for lk in task.held_locks if getattr(lk, "is_spin", False)]
        raise SimError(
            f"BUG: sleeping function called from invalid context: task {task.comm}:{task.pid} "
            f"holds spinlock {', '.join(held)} while {what}; stack: {' > '.join(task.stack())}")

    # ----------------------------------------------------------------- CPUs
    def _cpu_free_for(self, task: Task) -> bool:
        """Whether a CPU would take a burst of ``task`` at once: its CPU if pinned, else any
        (an idle CPU's run queue is always empty)."""
        if task.pinned is not None:
            return self.cpus[task.pinned].current is None
        return any(c.current is None for c in self.cpus)

    def _start_burst(self, cpu: Cpu, task: Task, ns: int) -> None:
        cpu.current = task
        cpu.busy_ns += ns
        task.cpu = cpu.id
        task.on_cpu = cpu
        task.state = "R"
        self._seq += 1
        heapq.heappush(self._heap, (self.now + ns, self._seq, task, None, task.wseq))

    # ----------------------------------------------------------------- the loop
    def stop(self) -> None:
        """End ``run`` after the current step."""
        self._stopped = True

    def run(self, until: int | None = None) -> None:
        """Run events until none is left, ``stop()`` is called, or time would pass ``until``.

        Observers must be attached before ``run``; the loop keeps the hook in a local.
        """
        global _current
        heap = self._heap
        ready = self._ready
        popleft = ready.popleft
        pop = heapq.heappop
        push = heapq.heappush
        trace = self._trace
        append = trace.append
        events = self.events
        policy = self.policy
        hook = self._hook
        cpus = self.cpus
        choose_timer = getattr(policy, "choose_timer", None)
        # In abstract-time mode every timed event must pass through the policy's choice, so a
        # sleep never continues directly; ``limit`` below the clock disables that shortcut.
        limit = until if until is not None else 1 << 62
        direct = -1 if choose_timer is not None else limit
        flush_at = events + _TRACE_FLUSH
        last = self._last
        self._stopped = False
        value: Any = None
        try:
            while not self._stopped:
                if ready:
                    if policy is not None and len(ready) > 1:
                        i = policy.choose(self, [t for t, _ in ready])
                        task, value = ready[i]
                        del ready[i]
                    else:
                        task, value = popleft()
                elif heap:
                    if choose_timer is not None:
                        self._choose_timer(choose_timer)
                    entry = pop(heap)
                    when, _, task, value, token = entry
                    if when > limit:
                        push(heap, entry)
                        self.now = limit
                        break
                    if token is None:
                        if not task.cancelled:
                            if when > self.now:
                                self.now = when
                            _current = None
                            task.fn(task.arg)
                        continue
                    if token != task.wseq:
                        continue  # a stale timeout: the wait already ended
                    if when > self.now:
                        self.now = when
                    cpu = task.on_cpu
                    if cpu is not None:  # the end of a CPU burst: the CPU passes on
                        task.on_cpu = None
                        if cpu.runq:  # ``_start_burst`` of the next queued burst, inline
                            nxt, ns = cpu.runq.popleft()
                            cpu.current, cpu.busy_ns, nxt.on_cpu = nxt, cpu.busy_ns + ns, cpu
                            nxt.cpu, nxt.state = cpu.id, "R"
                            self._seq += 1
                            push(heap, (self.now + ns, self._seq, nxt, None, nxt.wseq))
                        else:
                            cpu.current = None
                    elif value is TIMEOUT:
                        self._timeout(task)
                    task.state = "R"
                else:
                    if self._dead_horizon > limit:  # a dropped dead entry would be due later
                        self.now = limit
                    break
                if events > flush_at:
                    self._hasher.update(trace.tobytes())
                    del trace[:]
                    flush_at = events + _TRACE_FLUSH
                now = self.now
                if task is not last:
                    # Trace task switches only, so the digest does not depend on whether a
                    # sleep continued directly or went through the heap (abstract time).
                    append(now ^ task.pidbits)
                    last = task
                _current = task
                send = task.send
                while True:  # steps of this task until it waits
                    events += 1
                    try:
                        req = send(value)
                    except StopIteration as stop:
                        self._exit(task, stop.value)
                        break
                    except SimError:
                        raise
                    except Exception as exc:
                        exc.add_note(f"in simulated task {task.comm}:{task.pid} at t={now} ns")
                        raise
                    if req.__class__ is int:
                        if req < 0 or task.spin_depth:
                            self._bad_sleep(task, req)
                        if hook is not None:
                            hook("sleep", task, None, req)
                        t = now + req
                        if not ready and t <= direct and (not heap or heap[0][0] > t):
                            self.now = now = t
                            value = None
                            continue
                        task.state = "S"
                        task.wseq += 1
                        self._seq += 1
                        push(heap, (t, self._seq, task, None, task.wseq))
                        break
                    if req is PARK:
                        break
                    if req.__class__ is Run:
                        ns = req.ns
                        if task.spin_depth:
                            self._atomic_sleep(task, "consuming CPU")
                        if (on_run := self._on_run) is not None:
                            on_run("run", task, None, ns)
                        # the CPU: the task's if pinned or idle; else the first idle CPU, else
                        # the shortest run queue (lowest id among equals)
                        pinned = task.pinned
                        cpu = cpus[task.cpu if pinned is None else pinned]
                        if cpu.current is not None and pinned is None:
                            shortest = 1 << 62
                            for c in cpus:
                                if c.current is None:
                                    cpu = c
                                    break
                                if len(c.runq) < shortest:
                                    cpu, shortest = c, len(c.runq)
                        task.wseq += 1
                        if cpu.current is not None:
                            cpu.runq.append((task, ns))
                            task.state = "R"
                            break
                        t = now + ns
                        if not ready and t <= direct and (not heap or heap[0][0] > t):
                            # nothing comes earlier: the burst ends before anything else happens
                            cpu.busy_ns += ns
                            task.cpu = cpu.id
                            self.now = now = t
                            value = None
                            continue
                        self._start_burst(cpu, task, ns)
                        break
                    self._bad_request(task, req)
        finally:
            self.events = events
            self._last = last
            _current = None

    def pending(self, ignore: Callable[[Timer], bool] | None = None) -> bool:
        """Whether anything can still happen: a runnable task, or a live timed event
        (a sleep, a CPU burst, a timed wait, a callback) — callbacks ``ignore`` accepts aside."""
        if self._ready:
            return True
        return any(e[4] is not None or ignore is None or not ignore(e[2])
                   for e in self._live_timers())

    def _live_timers(self) -> list[tuple]:
        return sorted(e for e in self._heap if _live(e))

    def _timer_cancelled(self) -> None:
        """Purge the heap once cancelled timers may be half of it (amortised O(1) a cancel)."""
        self._cancelled += 1
        if 2 * self._cancelled > len(self._heap):
            self._purge_heap()

    def _purge_heap(self) -> None:
        """Drop dead entries (cancelled timers, stale timeouts) from the heap, in place.

        They would never fire, but a long-lived one (the hung-task check re-armed 120 s ahead at
        every blocking episode) deepens the heap every event pays for. The one thing a dead
        entry does is stop ``run(until)`` at ``until`` when it is due later and nothing live
        is: ``_dead_horizon`` remembers the latest one dropped for that.
        """
        heap = self._heap
        dead = [e[0] for e in heap if not _live(e)]
        if dead:
            self._dead_horizon = max(self._dead_horizon, *dead)
            heap[:] = [e for e in heap if _live(e)]
            heapq.heapify(heap)
        self._cancelled = 0

    def _choose_timer(self, choose_timer: Callable) -> None:
        """Abstract-time mode: the policy picks which pending timed event fires next.

        The chosen event is moved to the front; time never goes backwards (an event chosen after a
        later one fires "late", at the current time), so device and timer latencies stop hiding
        interleavings.
        """
        live = self._live_timers()
        if len(live) < 2:
            return
        i = choose_timer(self, live)
        if i:
            entry = live[i]
            self._heap.remove(entry)
            heapq.heapify(self._heap)
            self._seq += 1
            heapq.heappush(self._heap, (self.now, -self._seq, *entry[2:]))

    def _bad_sleep(self, task: Task, req: int) -> None:
        if req < 0:
            self._bad_request(task, req)
        self._atomic_sleep(task, f"sleeping {req} ns")

    def _timeout(self, task: Task) -> None:
        obj = task.blocked_on
        if obj is not None:
            cancel = getattr(obj, "cancel_wait", None)
            if cancel is not None:
                cancel(task)
        task.blocked_on = None
        hook = self._hook
        if hook is not None:
            hook("wake", task, obj, None)

    def _bad_request(self, task: Task, req: Any) -> None:
        raise SimError(
            f"task {task.comm}:{task.pid} yielded {req!r}, which is not a request "
            f"(an int ns to sleep, Run(ns), or a primitive's wait); "
            f"stack: {' > '.join(task.stack())}")

    def _exit(self, task: Task, value: Any) -> None:
        task.state = "X"
        task.exit_value = value
        task.gen = task.send = None
        hook = self._hook
        if hook is not None:
            hook("exit", task, None, None)

    def close(self) -> None:
        """Discard a finished or abandoned run: close every live task's generator as that task
        (so ``finally`` blocks in modelled code run with their ``current``), ignoring what they
        raise — nothing of the run is observed any more."""
        global _current
        self._set_hook(())
        for task in list(self.tasks.values()):
            if task.gen is None:
                continue
            _current = task
            _unwind(task.gen)
            task.gen = task.send = None
            task.state = "X"
        _current = None

    # ----------------------------------------------------------------- introspection
    def blocked_tasks(self) -> list[BlockedInfo]:
        """Every task waiting on something: what, who holds it, since when, and its stack."""
        return [BlockedInfo(t, t.blocked_on, holders_of(t.blocked_on), t.blocked_since, t.stack())
                for t in self.tasks.values() if t.blocked_on is not None]

    def digest(self) -> str:
        """Hash of the event trace (time and task of every dispatch, and the number of steps):
        equal runs, equal digests."""
        h = self._hasher.copy()
        h.update(self._trace.tobytes())
        h.update(self.events.to_bytes(8, "little"))
        return h.hexdigest()


def _live(entry: tuple) -> bool:
    """A heap entry that will fire: a timer not cancelled, or a task's wait still current."""
    target, token = entry[2], entry[4]
    return not target.cancelled if token is None else token == target.wseq


def _unwind(gen: Any, attempts: int = 1000) -> None:
    """Close an abandoned task's generator chain, ignoring what it raises.

    A modelled ``finally`` may itself yield (``ext4_journal_stop`` waiting on the journal), which
    ``close`` reports as "generator ignored GeneratorExit" with that generator left suspended —
    and, closed from the outside, orphaned by its callers. So the chain is closed from its
    innermost frame outwards, each one until it has finished: everything unwinds here, as its
    task, rather than later in the garbage collector's finaliser.
    """
    for _ in range(attempts):
        if gen.gi_frame is None:
            return
        g = gen
        while (sub := g.gi_yieldfrom) is not None and getattr(sub, "gi_frame", None) is not None:
            g = sub
        try:
            g.close()
        except Exception:  # noqa: BLE001 - unwinding an abandoned run
            pass


# ------------------------------------------------------------------- allocation scopes
def _scope_save(flag: int) -> int:
    t = _current
    old = t.flags & flag
    t.flags |= flag
    return old


def _scope_restore(flag: int, old: int) -> None:
    t = _current
    t.flags = (t.flags & ~flag) | old


def memalloc_nofs_save() -> int:
    """``memalloc_nofs_save``: allocations in this scope lose ``__GFP_FS``; returns the old bit."""
    return _scope_save(PF_MEMALLOC_NOFS)


def memalloc_nofs_restore(old: int) -> None:
    _scope_restore(PF_MEMALLOC_NOFS, old)


def memalloc_noio_save() -> int:
    """``memalloc_noio_save``: allocations in this scope lose ``__GFP_IO|__GFP_FS``."""
    return _scope_save(PF_MEMALLOC_NOIO)


def memalloc_noio_restore(old: int) -> None:
    _scope_restore(PF_MEMALLOC_NOIO, old)


def memalloc_noreclaim_save() -> int:
    """``memalloc_noreclaim_save``: set ``PF_MEMALLOC`` (no reclaim recursion, reserves)."""
    return _scope_save(PF_MEMALLOC)


def memalloc_noreclaim_restore(old: int) -> None:
    _scope_restore(PF_MEMALLOC, old)


# ------------------------------------------------------------------- sleeping
def schedule_timeout_uninterruptible(ns: int):
    """Sleep ``ns`` in TASK_UNINTERRUPTIBLE."""
    yield ns


def msleep(ms: int):
    """``msleep``: sleep ``ms`` milliseconds."""
    yield ms * NSEC_PER_MSEC


def cond_resched():
    """``cond_resched``: let every task runnable at this instant run first."""
    yield 0
