"""The machine builder: a validated scenario becomes a simulated machine, runs, and reports.

``build_machine`` creates the runtime with the scenario's CPUs, attaches the detectors and
metrics, brings up mm (``pglist_data``, which starts kswapd), the VFS (``vfs_init``: the design
switch), the filesystem types and the block devices, and spawns ``init``. ``init`` is PID 1 as
on a real box: it creates the mount points and mounts every ``[[fs]]`` in file order, then
starts the workload groups. ``run_machine`` advances virtual time to the end of the run in
slices (reporting progress, enforcing the event budget); then a ``shutdown`` task waits for
the workload tasks to exit, syncs, and unmounts in reverse order, so that deferred eviction
work is flushed and ``sim.vfs.leaked()`` means what it says.

Nothing here knows what a scenario is meant to show: every scenario takes this same path.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Generator, Iterable

from reclaimlab.block import BlockDevice, add_disk
from reclaimlab.check import Checks, attach_checks
from reclaimlab.mm.page_alloc import MemoryConfig, pglist_data
from reclaimlab.report.metrics import Metrics
from reclaimlab.report.result import build_result
from reclaimlab.scenario.models import BlockFs, Scenario
from reclaimlab.sim import NSEC_PER_MSEC, NSEC_PER_SEC, Simulation, Task, current
from reclaimlab.vfs.errors import KernelError
from reclaimlab.vfs.state import VfsConfig, vfs_init
from reclaimlab.workload import Context, GroupStats, programs
from reclaimlab.workload.recipe import recipe_section

SECTORS_PER_MB = 2048
# Virtual time between two progress reports / event-budget checks.
RUN_SLICES = 50
# How often shutdown looks whether the workload tasks have exited.
SHUTDOWN_POLL_NS = NSEC_PER_MSEC


@dataclass
class Machine:
    """A built machine: the simulation, its scenario and what observes it."""

    sim: Simulation
    scenario: Scenario
    design: str
    checks: Checks
    metrics: Metrics
    groups: dict[str, GroupStats]
    stop_ns: int
    workload_tasks: list[Task] = field(default_factory=list)
    shutdown_task: Task | None = None
    timed_out: bool = False


def build_machine(scenario: Scenario, design: str, seed: int, policy: Any = None,
                  stop_on: Iterable[str] = (), observers: Iterable[Any] = ()) -> Machine:
    """Create the simulated machine described by ``scenario`` under ``design``."""
    mc = scenario.machine
    sim = Simulation(seed=seed, ncpus=mc.cpus, policy=policy)
    sim.spin_on_owner = mc.lock_spin_on_owner
    if scenario.run.hung_task_panic:      # kernel.hung_task_panic: the first report ends the run
        stop_on = (*stop_on, "hung_task")
    checks = attach_checks(sim, int(scenario.run.hung_task_timeout_s * NSEC_PER_SEC), stop_on)
    metrics = Metrics(sim)
    sim.add_observer(metrics)
    for obs in observers:
        sim.add_observer(obs)
    pglist_data(sim, MemoryConfig(
        memory_bytes=mc.memory_mb << 20, page_size=mc.page_size,
        min_free_kbytes=mc.min_free_kbytes, watermark_scale_factor=mc.watermark_scale_factor,
        kernel_version=mc.kernel_version, swap_bytes=mc.swap_mb << 20,
        vfs_cache_pressure=mc.vfs_cache_pressure))
    vfs_init(sim, vfs_config(scenario, design))
    register_filesystems(sim)
    for dev in scenario.device:
        add_disk(sim, BlockDevice(sim, dev.name, dev.type, nr_sectors=dev.size_mb * SECTORS_PER_MB,
                                  **dev.model_overrides()))
    groups = {group_name(w, i): GroupStats(w.kind, w.tasks)
              for i, w in enumerate(scenario.workload)}
    machine = Machine(sim, scenario, design, checks, metrics, groups,
                      int(scenario.run.duration_ms * NSEC_PER_MSEC))
    sim.spawn(init(machine), "init")
    return machine


def vfs_config(scenario: Scenario, design: str) -> VfsConfig:
    """The VFS's configuration: the design switch, its passive-ref knobs, the sysctls."""
    d, mc = scenario.design, scenario.machine
    return VfsConfig(design=design, vfs_cache_pressure=mc.vfs_cache_pressure,
                     dirty_writeback_interval_ns=mc.dirty_writeback_centisecs * 10 * NSEC_PER_MSEC,
                     dirty_expire_interval_ns=mc.dirty_expire_centisecs * 10 * NSEC_PER_MSEC,
                     passive_ref_max_backlog=d.passive_ref_max_backlog,
                     passive_ref_throttle=d.passive_ref_throttle,
                     passive_ref_exempt_reclaim=d.passive_ref_exempt_reclaim,
                     **d.design_knobs(),
                     **{f"inodegc_{k}": v for k, v in d.inodegc_config().items()})


def register_filesystems(sim: Simulation) -> None:
    """``register_filesystem`` for each filesystem type the model has (module init)."""
    from reclaimlab.fs import register_block_filesystems
    from reclaimlab.fs.overlay.super import OverlayFsType
    from reclaimlab.vfs.super import register_filesystem

    register_block_filesystems(sim)
    register_filesystem(sim, OverlayFsType())


def group_name(spec: Any, index: int) -> str:
    return spec.name or f"{spec.kind}{index}"


# -- PID 1 and shutdown --------------------------------------------------------------------

def init(machine: Machine) -> Generator:
    """PID 1: mount every filesystem, then start the workload groups."""
    from reclaimlab.vfs import syscalls as sys

    mounted: list[str] = []
    for fs in machine.scenario.fs:
        # a mount point on a mounted filesystem must exist; the first mounts need no root fs
        if any(fs.mountpoint.startswith(m.rstrip("/") + "/") for m in mounted):
            yield from mkdir_p(fs.mountpoint)
        yield from sys.sys_mount(fs.type, fs_source(fs), fs.mountpoint, mount_options(fs))
        mounted.append(fs.mountpoint)
    sim = current().sim
    table = programs()
    for i, spec in enumerate(machine.scenario.workload):
        name = group_name(spec, i)
        stop = min(int(spec.stop_ms * NSEC_PER_MSEC), machine.stop_ns) if spec.stop_ms \
            else machine.stop_ns
        for t in range(spec.tasks):
            ctx = Context(t, machine.groups[name], stop)
            cpu = spec.cpus[t % len(spec.cpus)] if spec.cpus else None
            gen = user_task(table[spec.kind], spec, ctx, int(spec.start_ms * NSEC_PER_MSEC))
            machine.workload_tasks.append(sim.spawn(gen, f"{name}-{t}", cpu=cpu))


def user_task(program: Callable[..., Generator], spec: Any, ctx: Context, start_ns: int
              ) -> Generator:
    """A workload task: wait for its start time, run its program."""
    delay = start_ns - current().sim.now
    if delay > 0:
        yield delay
    yield from program(spec, ctx)


def mkdir_p(path: str) -> Generator:
    from reclaimlab.vfs import syscalls as sys

    parts = [p for p in path.split("/") if p]
    for i in range(1, len(parts) + 1):
        try:
            yield from sys.sys_mkdir("/" + "/".join(parts[:i]))
        except KernelError as e:
            if e.errno != "EEXIST":
                raise


def fs_source(fs: Any) -> str:
    return fs.device if isinstance(fs, BlockFs) else "overlay"


def mount_options(fs: Any) -> dict[str, Any]:
    """The mount options a filesystem type receives (``fs_type.mount(sim, dev, opts)``): the
    ``[[fs]]`` keys of that type, ``tunables`` kept apart for the filesystem to merge."""
    return fs.model_dump(exclude={"type", "mountpoint", "device"})


def shutdown(machine: Machine, grace_ns: int) -> Generator:
    """``reboot``: wait (up to ``grace_ns``) for the workload to exit, ``sync``, unmount every
    filesystem in reverse mount order. Unmount errors (EBUSY from a task that never exited)
    are left for the detectors and ``leaked`` to show."""
    from reclaimlab.vfs import syscalls as sys

    sim = current().sim
    deadline = sim.now + grace_ns
    while any(t.state != "X" for t in machine.workload_tasks) and sim.now < deadline:
        yield SHUTDOWN_POLL_NS
    for call in [sys.sys_sync()] + [sys.sys_umount(fs.mountpoint)
                                    for fs in reversed(machine.scenario.fs)]:
        try:
            yield from call
        except KernelError:
            pass


# -- running ------------------------------------------------------------------------------

def run_machine(machine: Machine, progress: Callable[[float], None] | None = None,
                teardown: bool = True) -> None:
    """Run to the end of the workload, then (``teardown``) shut the machine down; finally
    the detectors' end-of-run checks. A run that spends its event budget stops there."""
    sim, run = machine.sim, machine.scenario.run
    step = max(machine.stop_ns // RUN_SLICES, 1)
    while sim.now < machine.stop_ns and not machine.timed_out:
        target = min(sim.now + step, machine.stop_ns)
        sim.run(until=target)
        if progress is not None:
            progress(min(sim.now / machine.stop_ns, 1.0))
        machine.timed_out = sim.events > run.max_events
        if sim.now < target:  # nothing left to run, or a detector stopped the run
            break
    stopped = any(f.kind in machine.checks.stop_on for f in machine.checks.findings)
    if teardown and not stopped and not machine.timed_out:
        grace = int(run.shutdown_grace_ms * NSEC_PER_MSEC)
        machine.shutdown_task = sim.spawn(shutdown(machine, grace), "shutdown")
        run_until_exit(machine, machine.shutdown_task, run.max_events)
    # leaks mean something only once everything was flushed and unmounted
    shut_down = machine.shutdown_task is not None and machine.shutdown_task.state == "X"
    machine.checks.finish(check_leaks=shut_down)


def run_until_exit(machine: Machine, task: Task, max_events: int) -> None:
    """Run until ``task`` exits, the machine stalls, or the event budget is spent."""
    sim = machine.sim
    step = max(machine.stop_ns // RUN_SLICES, NSEC_PER_MSEC)
    while task.state != "X":
        target = sim.now + step
        sim.run(until=target)
        if sim.events > max_events:
            machine.timed_out = True
            return
        if sim.now < target and task.state != "X":
            return


def collect(machine: Machine, scenario_name: str, seed: int, wall_s: float) -> dict[str, Any]:
    """The interfaces.md run result plus ``workloads`` (per-group counters)."""
    result = build_result(machine.sim, scenario_name, machine.design, seed, wall_s,
                          [machine.checks, machine.metrics], timed_out=machine.timed_out)
    result["workloads"] = {name: g.as_dict() for name, g in machine.groups.items()}
    recipes = recipe_section(machine.sim)
    if recipes is not None:
        result["recipe"] = recipes
    return result


def wall_clock() -> float:
    """Host seconds, for ``wall_s`` only (never read inside a simulation)."""
    return time.perf_counter()
