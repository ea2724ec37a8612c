"""A deterministic stand-in for ``run_scenario``: a run result computed from the arguments.

Overrides it understands (everything else is only hashed into the digest):
``machine.memory_mb`` (latency grows as memory shrinks, faster for ``sync``), ``fake.fail``
(raise), ``fake.exit`` (kill the worker process), ``fake.sleep_ms`` (host time per run),
``fake.extra`` (an extra result field, to grow the schema). With ``FAKE_MARKER_DIR`` set,
every call leaves a file there, so tests can count how often each run was executed.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid

from hdrh.histogram import HdrHistogram


def fake_run(scenario: str, design: str | None, seed: int | None, overrides: list[str]) -> dict:
    opts = dict(o.split("=", 1) for o in overrides)
    marker_dir = os.environ.get("FAKE_MARKER_DIR")
    if marker_dir:
        name = f"{design}-{seed}-{'-'.join(sorted(overrides))}-{uuid.uuid4().hex}"
        open(os.path.join(marker_dir, name.replace("/", "_")), "w").close()
    if "fake.sleep_ms" in opts:
        time.sleep(float(opts["fake.sleep_ms"]) / 1000)
    if opts.get("fake.exit") == "true":
        os._exit(3)
    if opts.get("fake.fail") == "true":
        raise ValueError(f"injected failure for seed {seed}")
    digest = hashlib.sha256(repr((scenario, design, seed, sorted(overrides))).encode()).hexdigest()
    memory = int(opts.get("machine.memory_mb", "1024"))
    slope = 4.0 if design == "sync" else 1.0
    p99 = int(1000 + slope * 1e6 / memory + (seed or 0) * 7)
    hist = HdrHistogram(1, 10**12, 3)
    for v in (p99 // 10, p99 // 2, p99):
        hist.record_value(v)
    result = {
        "scenario": scenario, "design": design, "seed": seed, "outcome": "completed",
        "sim_time_ns": 10**9, "events": 1000 + (seed or 0), "wall_s": time.perf_counter() % 1,
        "digest": digest, "warnings": [], "deadlocks": [],
        "alloc_latency_ns": {"count": 3, "p50": p99 // 2, "p90": p99, "p99": p99, "p999": p99,
                             "max": p99},
        "direct_reclaim": {"count": 1, "total_ns": 5, "p99_ns": 5, "max_ns": 5},
        "inodes": {"evicted": 3, "evicted_in_reclaim": 1 if design == "sync" else 0,
                   "deferred": 0 if design == "sync" else 3, "leaked": 0},
        "invariants": {"ok": True, "violations": []},
        "alloc_latency_hist": hist.encode().decode("ascii"),
    }
    if "fake.extra" in opts:
        result["extra"] = {"value": float(opts["fake.extra"]), "tags": ["a", "b"]}
    return result
