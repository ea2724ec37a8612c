"""Block device model: service time, queue depth, completions, error injection."""

import errno

import pytest

from reclaimlab.block import (
    REQ_OP_READ, REQ_OP_WRITE, Bio, BlockDevice, add_disk, blkdev_issue_flush, lookup_bdev,
    submit_bio, submit_bio_wait,
)
from reclaimlab.sim import Simulation


def run(sim, gen):
    box = {}

    def task():
        box["v"] = yield from gen

    sim.spawn(task(), "io")
    sim.run()
    return box["v"]


def timed_reads(preset, sectors, **kw):
    sim = Simulation(seed=1)
    bdev = BlockDevice(sim, "d", preset, **kw)

    def work():
        times = []
        for s in sectors:
            t0 = sim.now
            assert (yield from submit_bio_wait(bdev, REQ_OP_READ, s, 8)) == 0
            times.append(sim.now - t0)
        return times

    return run(sim, work())


def test_hdd_random_reads_cost_milliseconds_and_sequential_ones_do_not():
    rand = timed_reads("hdd", [0, 100_000, 5_000, 900_000])
    seq = timed_reads("hdd", [0, 8, 16, 24])
    assert min(rand) > 3_000_000
    assert max(seq[1:]) < 1_000_000


def test_presets_order_nvme_faster_than_ssd_faster_than_hdd():
    sectors = [i * 10_000 for i in range(20)]
    means = {p: sum(timed_reads(p, sectors)) / 20 for p in ("ramdisk", "nvme", "ssd", "hdd")}
    assert means["ramdisk"] < means["nvme"] < means["ssd"] < means["hdd"]


def test_service_time_is_deterministic_per_seed_and_varies_with_lognormal():
    a = timed_reads("nvme", [i * 1000 for i in range(10)])
    b = timed_reads("nvme", [i * 1000 for i in range(10)])
    assert a == b
    assert len(set(a)) > 1


def test_fixed_distribution_has_no_noise():
    t = timed_reads("nvme", [i * 1000 for i in range(5)], dist="fixed")
    assert len(set(t)) == 1


def test_queue_depth_makes_submitters_wait_for_a_tag():
    sim = Simulation(seed=0)
    bdev = BlockDevice(sim, "d", "hdd", queue_depth=2, dist="fixed")
    done = []

    def submitter(i):
        yield from submit_bio_wait(bdev, REQ_OP_WRITE, i * 100_000, 8)
        done.append((i, sim.now))

    for i in range(4):
        sim.spawn(submitter(i), f"w{i}")
    sim.run()
    assert bdev.stats.tag_waits == 2
    assert bdev.in_flight == 0
    # one head: completions are spaced by one random-access service time each
    times = [t for _, t in sorted(done, key=lambda x: x[1])]
    assert all(b - a >= 8_000_000 for a, b in zip(times, times[1:]))


def test_parallel_channels_overlap_requests():
    sim = Simulation(seed=0)
    bdev = BlockDevice(sim, "d", "nvme", dist="fixed")
    for i in range(8):
        sim.spawn(submit_bio_wait(bdev, REQ_OP_READ, i * 100_000, 8), f"r{i}")
    sim.run()
    assert sim.now < 2 * 80_000 + 10_000


def test_async_bio_completion_runs_end_io_from_timer():
    sim = Simulation(seed=0)
    bdev = BlockDevice(sim, "d", "ssd")
    ended = []
    bio = Bio(bdev, REQ_OP_WRITE, 0, 8, end_io=lambda b: ended.append(sim.now))

    def task():
        yield from submit_bio(bio)
        assert not ended  # submission does not wait for completion
        return sim.now

    t_submit = run(sim, task())
    assert ended and ended[0] > t_submit and bio.bi_status == 0


def test_injected_errors_fail_matching_bios_only_count_times():
    sim = Simulation(seed=0)
    bdev = BlockDevice(sim, "d", "ramdisk")
    bdev.inject_error(op=REQ_OP_READ, start=100, end=200, count=1)

    def task():
        return [(yield from submit_bio_wait(bdev, REQ_OP_READ, 150, 8)),
                (yield from submit_bio_wait(bdev, REQ_OP_READ, 150, 8)),
                (yield from submit_bio_wait(bdev, REQ_OP_WRITE, 150, 8)),
                (yield from submit_bio_wait(bdev, REQ_OP_READ, 0, 8))]

    assert run(sim, task()) == [-errno.EIO, 0, 0, 0]
    assert bdev.stats.errors == 1


def test_probabilistic_errors_and_out_of_range_requests():
    sim = Simulation(seed=3)
    bdev = BlockDevice(sim, "d", "ramdisk", nr_sectors=1000)
    bdev.inject_error(count=None, probability=0.5)

    def task():
        res = []
        for _ in range(40):
            res.append((yield from submit_bio_wait(bdev, REQ_OP_WRITE, 0, 8)))
        bdev.clear_errors()
        res.append((yield from submit_bio_wait(bdev, REQ_OP_WRITE, 999, 8)))
        res.append((yield from blkdev_issue_flush(bdev)))
        return res

    res = run(sim, task())
    assert 5 < res[:40].count(-errno.EIO) < 35
    assert res[40] == -errno.EIO and res[41] == 0


def test_bad_configuration_is_rejected():
    sim = Simulation()
    with pytest.raises(ValueError, match="preset"):
        BlockDevice(sim, "d", "floppy")
    with pytest.raises(ValueError, match="distribution"):
        BlockDevice(sim, "d", "nvme", dist="pareto")
    with pytest.raises(ValueError, match="queue_depth"):
        BlockDevice(sim, "d", "nvme", queue_depth=0)


def test_add_disk_and_lookup():
    sim = Simulation()
    bdev = add_disk(sim, BlockDevice(sim, "vdb", "nvme"))
    assert lookup_bdev(sim, "/dev/vdb") is bdev and lookup_bdev(sim, "vdc") is None
    with pytest.raises(ValueError):
        add_disk(sim, BlockDevice(sim, "vdb", "nvme"))
