"""A Perfetto-loadable trace: Chrome trace-event JSON, written with the standard library.

Layout (opens in ui.perfetto.dev or chrome://tracing):
- one process ``reclaimlab`` (pid 1), one thread track per simulated task (tid = task pid);
- slices (``B``/``E``) for the modelled kernel functions, nested exactly: at a task's events its
  stack is diffed against the stack at its previous one, closing the functions that left and
  opening the ones that entered. The stack is sampled where the task stops (runs, sleeps,
  blocks, exits) and at instants and flows; code between two such points takes no virtual time,
  so what is skipped is only zero-length slices;
- instants for tracepoint-like events, named after the kernel's tracepoints
  (``mm_vmscan_direct_reclaim_begin``, ``mm_shrink_slab_start``, ``workqueue_execute_start``,
  ``xfs_inodegc_queue`` via ``tracepoint`` events…) and for findings (splats);
- counters for free pages, watermarks and queue depths, at most one value per ``counter_ns``
  of virtual time (the lowest free-page count, the deepest queue), to keep traces loadable;
- flow arrows from an inode queued for deferred cleanup (``inode_deferred``) to the worker
  processing it (``inode_cleanup`` with ``deferred``).
"""

from __future__ import annotations

import json
from types import GeneratorType
from typing import Any, Callable

from reclaimlab.check import task_stack
from reclaimlab.sim import NSEC_PER_USEC

from .metrics import zone_watermarks

_PID = 1
# runtime/subsystem event kinds -> the kernel tracepoint recording the same thing
_INSTANT_NAMES = {
    "queue_work": "workqueue_queue_work",
    "work_start": "workqueue_execute_start",
    "work_end": "workqueue_execute_end",
    "oom_kill": "mark_victim",
}
# where a task stops (its clock may move on): its stack is sampled
_SAMPLED = frozenset(("run", "sleep", "block", "exit"))
_MM_KINDS = ("alloc", "mm_vmscan_direct_reclaim_begin", "mm_vmscan_direct_reclaim_end",
             "mm_vmscan_kswapd_wake", "mm_vmscan_kswapd_sleep", "mm_shrink_slab_end", "oom_kill")


def _us(ns: int) -> float:
    """Trace-event timestamps are microseconds; keep the nanoseconds as decimals."""
    return ns / 1000


def _plain(value: Any) -> Any:
    """JSON-safe event arguments (tasks and objects become their names)."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return repr(value)


_SCALARS = frozenset((str, int, float, bool, type(None)))


def _args(info: Any) -> dict[str, Any]:
    """An instant's ``args``: a copy of ``info`` when it is a dict of plain values (the
    common case, checked without recursion; the emitter may reuse its dict), else made plain."""
    if info.__class__ is dict:
        for k, v in info.items():
            if k.__class__ is not str or v.__class__ not in _SCALARS:
                return _plain(info)
        return info.copy()
    return _plain({"info": info})


def _instant(name: str, tid: int | None, ns: int, args: Any) -> dict[str, Any]:
    """The trace event of an instant: on a thread's track, or process-wide without one."""
    ev: dict[str, Any] = {"ph": "i", "name": name, "pid": _PID, "ts": _us(ns)}
    if tid is not None:
        ev["tid"], ev["s"] = tid, "t"
    else:
        ev["s"] = "p"
    if args is not None:
        ev["args"] = args
    return ev


class PerfettoTracer:
    """Observer recording a Chrome trace-event JSON trace of one run."""

    def __init__(self, sim: Any, checks: Any = None, counter_ns: int = 10 * NSEC_PER_USEC) -> None:
        self.sim = sim
        self.counter_ns = counter_ns
        # counter name -> (time slot, index in ``events``) of the last value recorded
        self.counters: dict[str, tuple[int, int]] = {}
        # the trace as a flat stream, made trace events when written: a dict is an event
        # (metadata, flows, watermarks, findings); other records are runs of plain values —
        # slice changes ``"S", tid, ns, depth kept, n, <n names entered>``, instants
        # ``"i", name, tid, ns, args``, counters ``"C", name, ns, series, value``. Plain values
        # in one list allocate no container per record, so a long trace costs the garbage
        # collector (and the run) nothing.
        self.events: list[Any] = [
            {"ph": "M", "name": "process_name", "pid": _PID, "args": {"name": "reclaimlab"}},
        ]
        self.stacks: dict[int, list[str]] = {}
        # pid -> generator chain at the task's last suspended sample (None: sampled running)
        self.chains: dict[int, list[Any] | None] = {}
        self.flows: dict[int, int] = {}
        self.next_flow = 1
        self.unfinished: set[int] = set()
        self.last_watermarks: tuple[int, ...] = ()
        self.closed = False
        # wake-ups and lock events are not routed: nothing time-consuming happens at them
        self.routes: dict[str, Callable[[Any, Any, Any], None] | None] = {
            "spawn": self.on_spawn, "alloc": self.on_alloc, "queue_depth": self.on_queue_depth,
            "wake": None, "lock_acquire": None, "lock_acquired": None, "lock_release": None,
        }
        for t in sim.tasks.values():
            if t.state != "X":
                self.thread(t)
        if checks is not None:
            checks.dmesg.listeners.append(self.finding)
        self.event = self.dispatcher()

    # ------------------------------------------------------------------ tracks and slices
    def thread(self, task: Any) -> None:
        self.events.append({"ph": "M", "name": "thread_name", "pid": _PID, "tid": task.pid,
                            "args": {"name": f"{task.comm}/{task.pid}"}})
        self.stacks[task.pid] = []

    def update_stack(self, task: Any) -> None:
        """Close the functions that left the task's stack, open those that entered.

        Most samples (``run``, ``sleep``) come while the task is suspended: its stack is its
        generator chain. The chain sampled last is kept (``self.chains``), and only its tail is
        re-read: a generator that has not finished is still delegated to by the same callers
        (a ``yield from`` ends only when its generator does), so the chain is unchanged up to
        the innermost generator still suspended, and a sample where nothing changed costs a
        few attribute reads instead of a walk of the whole stack. For the running task (at
        ``block`` and instants) the interpreter frames are read (``task_stack``).

        A change is recorded as the depth kept and the names entered; the ``E``/``B`` events
        are made from it when the trace is written.
        """
        tid = task.pid
        old = self.stacks.get(tid)
        if old is None:
            self.thread(task)
            old = self.stacks[tid]
        gen = task.gen
        if gen is None or gen.gi_running:
            self.chains[tid] = None
            self.replace_stack(tid, old, task_stack(task))
            return
        chain = self.chains.get(tid)
        if chain is None:  # the last sample was of the running task: walk the whole chain
            chain = self.chains[tid] = []
            k = 0
        else:
            k = len(chain)
            while k and not chain[k - 1].gi_suspended:  # finished since the last sample
                k -= 1
            if k:
                gen = chain[k - 1].gi_yieldfrom
                if k < len(chain):
                    del chain[k:]
            else:
                chain.clear()
        # below depth k the stacks agree; a function left and re-entered at the same depth
        # keeps its slice (the stack is compared by name, as for a running task)
        n, n_old = k, len(old)
        entered: list[str] | None = None
        while gen is not None and gen.__class__ is GeneratorType:
            chain.append(gen)
            name = gen.gi_code.co_name
            if entered is not None:
                entered.append(name)
            elif n < n_old and old[n] == name:
                n += 1
            else:
                entered = [name]
            gen = gen.gi_yieldfrom
        if entered is None:
            if n == n_old:
                return
            entered = []
        events = self.events
        events += ("S", tid, self.sim.now, n, len(entered))
        events += entered
        del old[n:]
        old += entered

    def replace_stack(self, tid: int, old: list[str], stack: list[str]) -> None:
        """Record the change from ``old`` to ``stack`` (``old`` becomes ``stack``)."""
        n = 0
        for a, b in zip(old, stack):
            if a != b:
                break
            n += 1
        if n == len(old) == len(stack):
            return
        entered = stack[n:]
        self.events += ("S", tid, self.sim.now, n, len(entered))
        self.events += entered
        old[n:] = entered

    def dispatcher(self) -> Callable[[str, Any, Any, Any], None]:
        """The observer's ``event(kind, task, obj, info)``, a closure (the runtime calls it for
        every event): where a task stops (runs, sleeps, blocks, exits) its clock may move on,
        so its stack is sampled; kinds with a route go there (wake-ups and lock events
        nowhere); any other kind is a subsystem event, recorded as an instant."""
        sampled, routes = _SAMPLED, self.routes
        update_stack, subsystem_event = self.update_stack, self.subsystem_event

        def event(kind: str, task: Any, obj: Any, info: Any) -> None:
            if kind in sampled:
                update_stack(task)
            elif kind in routes:
                route = routes[kind]
                if route is not None:
                    route(task, obj, info)
            else:
                subsystem_event(kind, task, obj, info)
        return event

    def subsystem_event(self, kind: str, task: Any, obj: Any, info: Any) -> None:
        """An instant named after the event's tracepoint, on the task's track."""
        if task is not None:
            self.update_stack(task)
        if kind == "tracepoint":
            self.instant(task, info.get("name", "tracepoint"), info)
        else:
            self.instant(task, _INSTANT_NAMES.get(kind, kind), info)
        if kind == "inode_deferred":
            self.flow_start(task, obj)
        elif kind == "inode_cleanup" and isinstance(info, dict) and info.get("deferred"):
            self.flow_end(task, obj)
        if kind in _MM_KINDS:
            self.sample_zone()

    def on_spawn(self, task: Any, obj: Any, info: Any) -> None:
        self.thread(task)
        self.update_stack(task)

    def on_alloc(self, task: Any, obj: Any, info: Any) -> None:
        pgdat = getattr(self.sim, "pgdat", None)
        if pgdat is None:
            return
        if self.last_watermarks:
            self.counter("free pages", "free", pgdat.zone.free_pages, min)
        else:
            self.sample_zone()

    def on_queue_depth(self, task: Any, obj: Any, info: Any) -> None:
        self.counter(f"{info['name']} queue depth", "depth", int(info["depth"]), max)

    # ------------------------------------------------------------------ other records
    def instant(self, task: Any, name: str, info: Any) -> None:
        """A thread instant (process-wide without a task), recorded as ``"i", name, tid, ns,
        args``; its arguments are made JSON-safe now (an object's ``repr`` is the one at this
        time)."""
        args = None if info is None else _args(info)
        self.events += ("i", name, task.pid if task is not None else None, self.sim.now, args)

    def counter(self, name: str, series: str, value: int,
                pick: Callable[[int, int], int]) -> None:
        """A counter value; within one ``counter_ns`` slot only the ``pick``-est is kept.

        Recorded as ``"C", name, ns, series, value``; the value is replaced while its slot
        lasts.
        """
        now = self.sim.now
        slot = now // self.counter_ns
        last = self.counters.get(name)
        if last is not None:
            last_slot, i = last
            last_value = self.events[i + 4]
            if last_slot == slot:
                self.events[i + 4] = pick(last_value, value)
                return
            if last_value == value:
                return
        self.counters[name] = (slot, len(self.events))
        self.events += ("C", name, now, series, value)

    def sample_zone(self) -> None:
        pgdat = getattr(self.sim, "pgdat", None)
        if pgdat is None:
            return
        self.counter("free pages", "free", int(pgdat.zone.free_pages), min)
        wm = zone_watermarks(pgdat.zone)
        if wm != self.last_watermarks:
            self.last_watermarks = wm
            self.events.append({"ph": "C", "name": "watermarks", "pid": _PID,
                                "ts": _us(self.sim.now),
                                "args": {"min": wm[0], "low": wm[1], "high": wm[2]}})

    def flow_start(self, task: Any, inode: Any) -> None:
        if task is None:
            return
        fid = self.next_flow
        self.next_flow += 1
        old = self.flows.get(id(inode))
        if old is not None:  # queued again before a worker processed it
            self.unfinished.add(old)
        self.flows[id(inode)] = fid
        self.events.append({"ph": "s", "name": "deferred inode cleanup", "cat": "inode",
                            "id": fid, "pid": _PID, "tid": task.pid, "ts": _us(self.sim.now)})

    def flow_end(self, task: Any, inode: Any) -> None:
        fid = self.flows.pop(id(inode), None)
        if fid is None or task is None:
            return
        self.events.append({"ph": "f", "bp": "e", "name": "deferred inode cleanup",
                            "cat": "inode", "id": fid, "pid": _PID, "tid": task.pid,
                            "ts": _us(self.sim.now)})

    def finding(self, finding: Any) -> None:
        """An instant for each splat, on the reporting task's track when it has one."""
        pid = int(finding.task.rsplit(":", 1)[1]) if finding.task else None
        ev: dict[str, Any] = {"ph": "i", "name": finding.kind, "pid": _PID,
                              "ts": _us(finding.time_ns), "args": {"message": finding.message}}
        if pid is not None and pid in self.stacks:
            ev["tid"], ev["s"] = pid, "t"
        else:
            ev["s"] = "g"
        self.events.append(ev)

    # ------------------------------------------------------------------ output
    def close(self) -> None:
        """Close every open slice at the end of the run."""
        if self.closed:
            return
        self.closed = True
        now = self.sim.now
        for tid, stack in self.stacks.items():
            if stack:
                self.events += ("S", tid, now, 0, 0)
            self.stacks[tid] = []

    def trace(self) -> dict[str, Any]:
        """The trace-event JSON object (closes the trace)."""
        self.close()
        # inodes queued whose cleanup never ran in a worker (cleaned up at unmount without a
        # filesystem cleanup, or still queued): their arrows have no end and are left out
        unfinished = self.unfinished | set(self.flows.values())
        events: list[dict[str, Any]] = []
        append = events.append
        stacks: dict[int, list[str]] = {}  # the slice stacks replayed from the records
        stream, i, end = self.events, 0, len(self.events)
        while i < end:
            e = stream[i]
            if e.__class__ is dict:
                if not (unfinished and e["ph"] == "s" and e["id"] in unfinished):
                    append(e)
                i += 1
            elif e == "S":
                tid, ns, keep, count = stream[i + 1:i + 5]
                ts, entered = _us(ns), stream[i + 5:i + 5 + count]
                stack = stacks.setdefault(tid, [])
                for name in reversed(stack[keep:]):
                    append({"ph": "E", "name": name, "pid": _PID, "tid": tid, "ts": ts})
                del stack[keep:]
                for name in entered:
                    append({"ph": "B", "name": name, "pid": _PID, "tid": tid, "ts": ts})
                stack += entered
                i += 5 + count
            elif e == "i":
                append(_instant(*stream[i + 1:i + 5]))
                i += 5
            else:  # "C"
                append({"ph": "C", "name": stream[i + 1], "pid": _PID, "ts": _us(stream[i + 2]),
                        "args": {stream[i + 3]: stream[i + 4]}})
                i += 5
        return {"traceEvents": events, "displayTimeUnit": "ns"}

    def write(self, path: str) -> None:
        # json.dumps uses the C encoder; json.dump to a file would use the Python one
        text = json.dumps(self.trace(), separators=(",", ":"))
        with open(path, "w") as f:
            f.write(text)
