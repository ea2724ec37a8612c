"""khungtaskd: a task in D longer than hung_task_timeout is reported once, in kernel layout."""

from reclaimlab.check import attach_checks
from reclaimlab.sim import (
    NSEC_PER_SEC, Completion, Simulation, WaitQueue, complete, wait_event, wait_for_completion,
    wake_up,
)


def blocked_for(sim, seconds: float):
    """A task waits in D on a completion that a timer (an IO) completes after ``seconds``."""
    done = Completion("bio_wait")

    def submit_bio_wait():
        yield from wait_for_completion(done)

    def jbd2_log_wait_commit():
        yield from submit_bio_wait()

    sim.call_after(int(seconds * NSEC_PER_SEC), complete, done)
    return sim.spawn(jbd2_log_wait_commit(), "jbd2/sda-8")


def test_121_seconds_in_d_state_is_reported_once_in_kernel_layout():
    sim = Simulation()
    checks = attach_checks(sim)
    blocked_for(sim, 121)
    sim.run()
    checks.finish()
    [f] = checks.findings
    assert f.kind == "hung_task"
    assert f.time_ns == 120 * NSEC_PER_SEC + 1
    lines = f.text.splitlines()
    assert lines[0] == "INFO: task jbd2/sda-8:1 blocked for more than 120 seconds."
    assert '"echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this message.' in lines
    trace = lines[lines.index("Call Trace:"):]
    assert trace[:4] == ["Call Trace:", " <TASK>", " wait_for_completion", " submit_bio_wait"]
    assert f.stack == ["jbd2_log_wait_commit", "submit_bio_wait", "wait_for_completion"]
    assert sim.now == 121 * NSEC_PER_SEC  # the check never prolongs the run


def test_119_seconds_is_not_reported():
    sim = Simulation()
    checks = attach_checks(sim)
    blocked_for(sim, 119)
    sim.run()
    checks.finish()
    assert checks.findings == []
    assert sim.now == 119 * NSEC_PER_SEC


def test_reported_once_however_long_it_stays_blocked():
    sim = Simulation()
    checks = attach_checks(sim)
    blocked_for(sim, 1000)
    sim.run()
    assert [f.kind for f in checks.findings] == ["hung_task"]


def test_timeout_is_configurable():
    sim = Simulation()
    checks = attach_checks(sim, hung_task_timeout_ns=10 * NSEC_PER_SEC)
    blocked_for(sim, 11)
    sim.run()
    [f] = checks.findings
    assert "blocked for more than 10 seconds." in f.text


def test_sleeping_and_idle_waits_are_not_hung():
    sim = Simulation()
    checks = attach_checks(sim)
    idle = WaitQueue("kswapd_wait")
    wake = [False]

    def sleeper():
        yield 300 * NSEC_PER_SEC  # a timer sleep is not a D wait here

    def kswapd():
        yield from wait_event(idle, lambda: wake[0], state="S")

    def waker():
        yield 200 * NSEC_PER_SEC
        wake[0] = True
        wake_up(idle)

    sim.spawn(sleeper(), "sleeper")
    sim.spawn(kswapd(), "kswapd0")
    sim.spawn(waker(), "waker")
    sim.run()
    assert checks.findings == []


def test_each_blocking_episode_is_judged_on_its_own():
    """Two 100 s waits back to back are not one 200 s wait."""
    sim = Simulation()
    checks = attach_checks(sim)
    first, second = Completion("first"), Completion("second")

    def waiter():
        yield from wait_for_completion(first)
        yield from wait_for_completion(second)

    sim.call_after(100 * NSEC_PER_SEC, complete, first)
    sim.call_after(200 * NSEC_PER_SEC, complete, second)
    sim.spawn(waiter(), "waiter")
    sim.run()
    assert checks.findings == []


def test_a_report_is_followed_by_every_task_s_held_locks():
    """``debug_show_all_locks`` after the reports names the holder the hung task waits for,
    even though the holder is not hung itself (it loops, as a task retrying in reclaim does)."""
    from reclaimlab.sim import Mutex, mutex_lock, schedule_timeout_uninterruptible

    sim = Simulation()
    checks = attach_checks(sim)
    lock = Mutex("jbd2_handle")

    def holder():
        yield from mutex_lock(lock)
        while True:                  # timed sleeps: never a D wait
            yield 10**7

    def waiter():
        yield from schedule_timeout_uninterruptible(1000)
        yield from mutex_lock(lock)

    sim.spawn(holder(), "unlinkers-1")
    sim.spawn(waiter(), "kswapd0")
    sim.run(until=121 * NSEC_PER_SEC)
    reports = [f for f in checks.findings if f.kind == "hung_task"]
    assert [f.task for f in reports] == ["kswapd0:2"]
    lines = reports[-1].text.splitlines()
    dump = lines[lines.index("Showing all locks held in the system:"):]
    assert dump[:3] == ["Showing all locks held in the system:",
                        "1 lock held by unlinkers-1/1:", " #0: (jbd2_handle)"]
    assert dump[-1] == "============================================="
