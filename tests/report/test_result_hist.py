"""The run result carries a mergeable HdrHistogram of allocation latencies."""

from hdrh.histogram import HdrHistogram

from reclaimlab.report.metrics import Metrics
from reclaimlab.sim import Simulation


def test_encoded_histogram_decodes_to_the_recorded_latencies():
    sim = Simulation()
    m = Metrics(sim)
    sim.add_observer(m)
    for ns in (200, 200, 5_000, 80_000):
        sim.emit("alloc", None, 0, {"ns": ns, "order": 0, "gfp": "GFP_KERNEL"})
    h = HdrHistogram.decode(m.alloc_latency_hist())
    assert h.get_total_count() == 4
    assert h.get_max_value() >= 80_000 * 0.999
    merged = HdrHistogram.decode(m.alloc_latency_hist())
    merged.add(h)
    assert merged.get_total_count() == 8
