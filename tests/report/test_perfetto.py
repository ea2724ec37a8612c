"""The Perfetto trace is valid Chrome trace-event JSON with exactly nested slices."""

import json

from reclaimlab.report import attach_observers, finish_run
from reclaimlab.sim import Simulation

from .model import synthetic_workload


def traced_run(tmp_path):
    sim = Simulation(seed=3, ncpus=2)
    synthetic_workload(sim)
    obs = attach_observers(sim, trace=True)
    sim.run()
    finish_run(sim, obs, "synthetic", "inodegc", 3, 0.0)
    path = tmp_path / "trace.json"
    obs.tracer.write(str(path))
    return json.loads(path.read_text())


def test_trace_is_valid(tmp_path):
    trace = traced_run(tmp_path)
    events = trace["traceEvents"]
    processes = {e["pid"] for e in events if e["ph"] == "M" and e["name"] == "process_name"}
    threads = {e["tid"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    assert processes == {1}
    stacks: dict[int, list[str]] = {}
    last_ts: dict[int, float] = {}
    slices = 0
    for e in events:
        if e["ph"] == "M":
            continue
        assert e["pid"] in processes
        if "tid" in e:
            tid = e["tid"]
            assert tid in threads, e
            assert e["ts"] >= last_ts.get(tid, 0), f"time goes back on track {tid}: {e}"
            last_ts[tid] = e["ts"]
        if e["ph"] == "B":
            stacks.setdefault(e["tid"], []).append(e["name"])
            slices += 1
        elif e["ph"] == "E":
            assert stacks[e["tid"]] and stacks[e["tid"]][-1] == e["name"], e
            stacks[e["tid"]].pop()
    assert slices > 0
    assert all(not s for s in stacks.values()), "every slice is closed"


def test_counters_and_flows_reference_existing_tracks(tmp_path):
    events = traced_run(tmp_path)["traceEvents"]
    threads = {e["tid"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    counters = {e["name"] for e in events if e["ph"] == "C"}
    assert {"free pages", "watermarks", "inodegc queue depth"} <= counters
    starts = {e["id"]: e for e in events if e["ph"] == "s"}
    ends = {e["id"]: e for e in events if e["ph"] == "f"}
    assert starts and starts.keys() == ends.keys()
    for fid, s in starts.items():
        f = ends[fid]
        assert s["tid"] in threads and f["tid"] in threads
        assert f["ts"] >= s["ts"]
        assert f["tid"] != s["tid"], "queued by one task, processed by a worker"


def test_slices_and_instants_carry_kernel_names(tmp_path):
    events = traced_run(tmp_path)["traceEvents"]
    slices = {e["name"] for e in events if e["ph"] == "B"}
    instants = {e["name"] for e in events if e["ph"] == "i"}
    assert {"alloc_pages", "try_to_free_pages", "xfs_inodegc_worker", "xfs_inactive",
            "mutex_lock", "worker_thread"} <= slices
    assert {"mm_vmscan_direct_reclaim_begin", "mm_vmscan_direct_reclaim_end",
            "xfs_inodegc_queue", "workqueue_execute_start", "workqueue_queue_work"} <= instants
    # nesting follows the modelled call chain
    worker = next(e["tid"] for e in events if e["ph"] == "B" and e["name"] == "xfs_inactive")
    chain = []
    for e in events:
        if e.get("tid") != worker or e["ph"] not in "BE":
            continue
        if e["ph"] == "B":
            chain.append(e["name"])
            if e["name"] == "xfs_inactive":
                assert chain[-3:] == ["process_one_work", "xfs_inodegc_worker", "xfs_inactive"]
                break
        else:
            chain.pop()


def test_findings_are_instants_on_the_reporting_task(tmp_path):
    from tests.check.test_lockdep import d1_model

    sim = Simulation()
    obs = attach_observers(sim, trace=True)
    d1_model(sim, unlink_gfp_fs=True)
    sim.run()
    finish_run(sim, obs, "d1", "sync", 0, 0.0)
    events = obs.tracer.trace()["traceEvents"]
    [splat] = [e for e in events if e["ph"] == "i" and e["name"] == "lockdep_circular"]
    assert splat["tid"] == 3 and splat["s"] == "t"


def test_a_flow_without_a_worker_end_is_left_out():
    from reclaimlab.report import PerfettoTracer
    from reclaimlab.sim import current

    from .model import Inode

    sim = Simulation()
    tracer = PerfettoTracer(sim)
    sim.add_observer(tracer)
    done, never = Inode(1), Inode(2)

    def queuer():
        sim.emit("inode_deferred", current(), done, {"ino": 1})
        sim.emit("inode_deferred", current(), never, {"ino": 2})
        yield 10

    def worker():
        yield 20
        sim.emit("inode_cleanup", current(), done, {"ino": 1, "deferred": True})

    sim.spawn(queuer(), "rm")
    sim.spawn(worker(), "kworker")
    sim.run()
    events = tracer.trace()["traceEvents"]
    starts = [e for e in events if e["ph"] == "s"]
    ends = [e for e in events if e["ph"] == "f"]
    assert [e["id"] for e in starts] == [e["id"] for e in ends] == [1]


def test_slices_are_those_of_the_full_stack_at_each_sample():
    """The tracer re-reads only what changed in a task's generator chain; its slices are the
    ones a full read of the stack (``task_stack``) at every sample gives, diffed by name."""
    from reclaimlab.check import task_stack

    not_sampled = {"wake", "lock_acquire", "lock_acquired", "lock_release", "alloc",
                   "queue_depth"}

    class FullStacks:
        def __init__(self):
            self.stacks, self.events = {}, []

        def event(self, kind, task, obj, info):
            if task is None or kind in not_sampled:
                return
            old, new = self.stacks.get(task.pid, []), task_stack(task)
            if new and new[-1] == "event":  # this method, when the task is the running one
                new.pop()
            n = 0
            while n < min(len(old), len(new)) and old[n] == new[n]:
                n += 1
            self.events += [("E", name, task.pid) for name in reversed(old[n:])]
            self.events += [("B", name, task.pid) for name in new[n:]]
            self.stacks[task.pid] = new

    sim = Simulation(seed=5, ncpus=2)
    synthetic_workload(sim, tasks=4, iterations=30)
    obs = attach_observers(sim, trace=True)
    reference = FullStacks()
    sim.add_observer(reference)
    sim.run()
    traced = [(e["ph"], e["name"], e["tid"]) for e in obs.tracer.trace()["traceEvents"]
              if e["ph"] in "BE"]
    expected = reference.events + [("E", name, tid) for tid, stack in reference.stacks.items()
                                   for name in reversed(stack)]
    assert len(traced) > 100
    assert traced == expected
