"""The interfaces.md run result and the human report."""

import json

import pytest

from reclaimlab.check import Finding
from reclaimlab.report import attach_observers, derive_outcome, finish_run, render_human
from reclaimlab.sim import NSEC_PER_SEC, Mutex, Simulation, mutex_lock

from .model import synthetic_workload

REQUIRED = {
    "scenario": str, "design": str, "seed": int, "outcome": str, "sim_time_ns": int,
    "events": int, "wall_s": float, "digest": str, "warnings": list, "deadlocks": list,
    "alloc_latency_ns": dict, "direct_reclaim": dict, "inodes": dict, "invariants": dict,
}


def run(model, **kw):
    sim = Simulation(seed=1, ncpus=2)
    model(sim)
    obs = attach_observers(sim)
    sim.run(until=kw.pop("until", None))
    return sim, finish_run(sim, obs, "synthetic", "inodegc", 1, 0.25, **kw)


def abba(sim):
    a, b = Mutex("A"), Mutex("B")

    def t(x, y):
        yield from mutex_lock(x)
        yield 10
        yield from mutex_lock(y)

    sim.spawn(t(a, b), "t1")
    sim.spawn(t(b, a), "t2")


def test_required_fields_and_types():
    sim, r = run(synthetic_workload)
    for key, typ in REQUIRED.items():
        assert isinstance(r[key], typ), key
    assert set(r["alloc_latency_ns"]) == {"count", "p50", "p90", "p99", "p999", "max"}
    assert set(r["direct_reclaim"]) == {"count", "total_ns", "p99_ns", "max_ns"}
    assert set(r["inodes"]) == {"evicted", "evicted_in_reclaim", "deferred", "leaked"}
    assert r["invariants"] == {"ok": True, "violations": []}
    assert r["outcome"] == "completed"
    assert r["digest"] == sim.digest() and r["events"] == sim.events
    assert r["alloc_latency_ns"]["count"] == 120 and r["direct_reclaim"]["count"] > 0
    assert r["inodes"]["evicted"] == r["inodes"]["deferred"] == 60
    json.dumps(r)


def test_deadlock_outcome_and_entries():
    _, r = run(abba)
    assert r["outcome"] == "deadlock"
    [d] = r["deadlocks"]
    assert d["time_ns"] == 10 and d["kind"] == "cycle"
    assert {e["task"] for e in d["cycle"]} == {"t1:1", "t2:2"}
    for e in d["cycle"]:
        assert set(e) == {"task", "waits_on", "held_by"}
    kinds = [w["kind"] for w in r["warnings"]]
    assert kinds == ["lockdep_circular", "hung_task", "hung_task"]
    for w in r["warnings"]:
        assert set(w) == {"kind", "task", "time_ns", "stack", "message"}


@pytest.mark.parametrize("kinds, timed_out, outcome", [
    ([], False, "completed"),
    ([], True, "timeout"),
    (["hung_task"], True, "hung"),
    (["hung_task", "oom_kill"], False, "oom"),
    (["oom_kill", "deadlock", "hung_task"], False, "deadlock"),
    (["lockdep_circular", "nofail_in_reclaim"], False, "completed"),
])
def test_outcome_is_the_worst_thing_that_happened(kinds, timed_out, outcome):
    class FakeChecks:
        findings = [Finding(k, 0, "", [], "", "") for k in kinds]

    assert derive_outcome(FakeChecks(), timed_out) == outcome


def test_human_report_splats_then_tables_then_verdict():
    _, r = run(abba)
    text = render_human(r)
    assert text.index("WARNING: possible circular locking dependency detected") < \
        text.index("reclaimlab: deadlock: circular wait") < \
        text.index("INFO: task t1:1 blocked for more than 120 seconds.") < \
        text.index("Allocation latency") < text.index("Inodes")
    last = text.rstrip().splitlines()[-1]
    assert last.startswith("synthetic [inodegc, seed 1]: DEADLOCK — 2× hung_task, "
                           "1× lockdep_circular; 1 deadlock(s); invariants ok")
    assert "[  120.000000] INFO: task t1:1" in text
    assert r["sim_time_ns"] == 120 * NSEC_PER_SEC + 11


def test_observers_do_not_change_the_run():
    """Same seed with and without every observer: same schedule (digest), same end time."""
    def one(observe):
        sim = Simulation(seed=5, ncpus=2)
        synthetic_workload(sim)
        if observe:
            attach_observers(sim, trace=True)
        sim.run()
        return sim.digest(), sim.now, sim.events

    assert one(False) == one(True)
