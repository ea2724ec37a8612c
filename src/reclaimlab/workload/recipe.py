"""Reproducer recipes: a kernel bug reproducer written down step by step.

A ``recipe`` workload is what a syzbot C program, a shell script from a bug report or an
xfstests case does: an ordered list of system calls and sysctl writes, with ``repeat`` loops
(loop variables usable in paths, ``"/data/lower/r{round}_L{i}"``), memory hogs that run
"until" a condition, and per-step expected errors. Each task of the group runs the whole list;
the predefined variable ``{task}`` is the task's index in its group.

Every step goes through :mod:`reclaimlab.vfs.syscalls` (or, for the hog and ``alloc``, the mm
allocation API), so what the machine does comes from the models, never from the recipe. Each
step's virtual time, the value it read (statfs free blocks, bytes read, a stat...) and its
errno are recorded on ``sim.recipe_log`` and appear in the run result's ``recipe`` section, so
that a recipe's printouts can be held against the kernel's.

Validation at load time (pydantic, with the step's index in the error's key): unknown steps,
loop variables that no enclosing ``repeat`` defines, handles used before an ``open``, a hog
with no stopping condition. ``check_recipe_paths(scenario)`` rejects paths outside every mount
the scenario (or an earlier ``mount`` step) declares.

Simplified: a hog is a child process (``fork`` + faulting anonymous memory) that exits, freeing
its memory, as soon as its condition holds (or keeps it until the recipe ends); ``append``
models ``O_APPEND`` by writing from the end of the file; ``drop_caches`` and the sysctls act at
once, as writing /proc does.
"""

from __future__ import annotations

import string
from typing import Annotated, Any, Generator, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from reclaimlab.check import Checks
from reclaimlab.mm.anon import do_anonymous_page, exit_mmap, get_task_mm
from reclaimlab.mm.page_alloc import alloc_pages, free_pages, setup_per_zone_wmarks
from reclaimlab.sim import (NSEC_PER_MSEC, NSEC_PER_SEC, Run, WaitQueue, current, wait_event,
                           wake_up)
from reclaimlab.vfs import syscalls as sys
from reclaimlab.vfs.errors import KernelError, unwinding
from reclaimlab.workload.memory import resolve_gfp
from reclaimlab.workload.specs import PATH, WorkloadBase, parse_gfp_names

SYSCTLS = {
    "vm.vfs_cache_pressure": (0, 10000),
    "vm.min_free_kbytes": (128, 262144),
    "vm.watermark_scale_factor": (1, 3000),
    "kernel.hung_task_timeout_secs": (1, 2**31 - 1),
}
# Size a read of "the whole file" asks for (generic_file_read stops at i_size).
WHOLE_FILE = 1 << 62
# Names every recipe may use in paths without a ``repeat`` defining them.
PREDEFINED_VARS = ("task",)


class Step(BaseModel):
    """Keys every step has: ``expect_error`` names the errno the kernel should return."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    expect_error: str | None = Field(None, pattern=r"^E[A-Z0-9]+$")

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        """Name the keys a step of this ``op`` takes (the loader knows only top-level tables)."""
        if isinstance(data, dict):
            unknown = [k for k in data if k not in cls.model_fields]
            if unknown:
                raise ValueError(f"{unknown[0]}: unknown key of a {data.get('op')!r} step; "
                                 f"expected one of: {', '.join(cls.model_fields)}")
        return data

    def paths(self) -> list[str]:
        """Path templates this step names (checked for loop variables and mounts)."""
        return [getattr(self, k) for k in ("path", "old", "new") if getattr(self, k, None)]

    def handles(self) -> tuple[str | None, str | None]:
        """(handle this step opens, handle it uses)."""
        return None, getattr(self, "handle", None)


class Mkdir(Step):
    """``mkdir(2)``; ``parents`` creates missing components as ``mkdir -p`` does."""

    op: Literal["mkdir"]
    path: str = Field(pattern=PATH)
    parents: bool = False


class Create(Step):
    """``open(O_CREAT|O_RDWR)``, write ``size`` bytes through the page cache, optionally
    ``fsync``, close — or keep it open as ``handle``."""

    op: Literal["create"]
    path: str = Field(pattern=PATH)
    size: int = Field(0, ge=0)
    fsync: bool = False
    handle: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")

    def handles(self) -> tuple[str | None, str | None]:
        return self.handle, None


class Open(Step):
    """``open(2)`` of ``path``, kept across steps under ``handle``."""

    op: Literal["open"]
    path: str = Field(pattern=PATH)
    handle: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    create: bool = False
    write: bool = True

    def handles(self) -> tuple[str | None, str | None]:
        return self.handle, None


class Close(Step):
    """``close(2)`` of a handle (the last reference runs ``__fput`` here)."""

    op: Literal["close"]
    handle: str


class FileIo(Step):
    """A step on an open ``handle`` or, with ``path``, on a file opened and closed around it."""

    path: str | None = Field(None, pattern=PATH)
    handle: str | None = None

    @model_validator(mode="after")
    def _target(self) -> "FileIo":
        if (self.path is None) == (self.handle is None):
            raise ValueError("path: give exactly one of path and handle")
        return self


class Write(FileIo):
    """``write(2)`` of ``size`` bytes at the file position (``append``: at the end)."""

    op: Literal["write", "append"]
    size: int = Field(ge=1)


class Read(FileIo):
    """``read(2)`` of ``size`` bytes (0: the whole file); records the bytes read."""

    op: Literal["read"]
    size: int = Field(0, ge=0)


class Fsync(FileIo):
    """``fsync(2)``."""

    op: Literal["fsync"]


class PathOp(Step):
    """unlink, rmdir or stat of ``path``; ``layer`` addresses the real file under an overlay
    the recipe mounted: ``/merged/x`` with ``layer = "upper"`` is ``<upperdir>/x``."""

    op: Literal["unlink", "rmdir", "stat"]
    path: str = Field(pattern=PATH)
    layer: Literal["upper", "lower"] | None = None


class Rename(Step):
    """``rename(2)``."""

    op: Literal["rename"]
    old: str = Field(pattern=PATH)
    new: str = Field(pattern=PATH)


class Setxattr(Step):
    """``setxattr(2)`` of a ``size``-byte value."""

    op: Literal["setxattr"]
    path: str = Field(pattern=PATH)
    name: str = Field(pattern=r"^(user|trusted|security)\.[A-Za-z0-9_.-]+$")
    size: int = Field(ge=0, le=65536)


class Getxattr(Step):
    """``getxattr(2)``; records the value's size."""

    op: Literal["getxattr"]
    path: str = Field(pattern=PATH)
    name: str = Field(pattern=r"^(user|trusted|security)\.[A-Za-z0-9_.-]+$")


class Sync(Step):
    """``sync(2)``, or ``syncfs(2)`` of the filesystem holding ``path``."""

    op: Literal["sync"]
    path: str | None = Field(None, pattern=PATH)


class Statfs(Step):
    """``statfs(2)``; records ``f_bfree`` (and keeps it as ``save`` for a hog's ``until``)."""

    op: Literal["statfs"]
    path: str = Field(pattern=PATH)
    save: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class Mount(Step):
    """``mount(2)`` of a block filesystem (``source`` = device name) or an overlay
    (``lowerdir``/``upperdir``/``workdir``) on ``target``."""

    op: Literal["mount"]
    fstype: Literal["ext4", "xfs", "overlay"]
    target: str = Field(pattern=PATH)
    source: str | None = None
    lowerdir: str | None = Field(None, pattern=PATH)
    upperdir: str | None = Field(None, pattern=PATH)
    workdir: str | None = Field(None, pattern=PATH)

    @model_validator(mode="after")
    def _kind(self) -> "Mount":
        if self.fstype == "overlay":
            if self.lowerdir is None:
                raise ValueError("lowerdir: an overlay needs a lowerdir")
        elif self.source is None or self.lowerdir or self.upperdir or self.workdir:
            raise ValueError(f"source: a {self.fstype} mount takes a device name as source "
                             "and no overlay directories")
        return self

    def paths(self) -> list[str]:
        return [p for p in (self.lowerdir, self.upperdir, self.workdir) if p]

    def options(self, fmt: Any) -> dict[str, str]:
        return {k: fmt(getattr(self, k)) for k in ("lowerdir", "upperdir", "workdir")
                if getattr(self, k)}


class Umount(Step):
    """``umount(2)``."""

    op: Literal["umount"]
    target: str = Field(pattern=PATH)


class DropCaches(Step):
    """``echo N > /proc/sys/vm/drop_caches`` in the writer's context."""

    op: Literal["drop_caches"]
    mode: int = Field(ge=1, le=3)


class Sysctl(Step):
    """A sysctl write applied to the live model (watermarks recomputed, etc.)."""

    op: Literal["sysctl"]
    name: Literal["vm.vfs_cache_pressure", "vm.min_free_kbytes", "vm.watermark_scale_factor",
                  "kernel.hung_task_timeout_secs"]
    value: int

    @model_validator(mode="after")
    def _range(self) -> "Sysctl":
        lo, hi = SYSCTLS[self.name]
        if not lo <= self.value <= hi:
            raise ValueError(f"value: {self.name} takes {lo}..{hi} (got {self.value})")
        return self


class Sleep(Step):
    """``nanosleep``."""

    op: Literal["sleep"]
    ms: float = Field(gt=0)


class Hog(Step):
    """A child process faulting in anonymous memory ``step_kb`` at a time until a condition
    holds: ``until_bfree`` (free blocks of ``until_path`` at least a number or a ``save``d
    statfs value), ``max_steps``, or ``until_oom`` (the OOM killer chose it); then it exits —
    or, with ``hold``, keeps its memory until the recipe ends (``stress-ng --vm-hang``) while
    the recipe goes on."""

    op: Literal["hog"]
    step_kb: int = Field(1024, ge=4)
    interval_ms: float = Field(0.0, ge=0)
    max_steps: int | None = Field(None, ge=1)
    until_bfree: int | str | None = None
    until_path: str | None = Field(None, pattern=PATH)
    until_oom: bool = False
    hold: bool = False

    @model_validator(mode="after")
    def _stops(self) -> "Hog":
        if self.max_steps is None and self.until_bfree is None and not self.until_oom:
            raise ValueError("until_bfree: a hog needs a stopping condition: until_bfree, "
                             "max_steps or until_oom = true")
        if (self.until_bfree is None) != (self.until_path is None):
            raise ValueError("until_path: until_bfree and until_path go together")
        return self

    def paths(self) -> list[str]:
        return [self.until_path] if self.until_path else []


class Alloc(Step):
    """A kernel allocation burst: ``count`` blocks of ``order`` with ``gfp``, held for
    ``hold_ms``, then freed (a large vmalloc-like or high-order allocation)."""

    op: Literal["alloc"]
    order: int = Field(0, ge=0, le=10)
    count: int = Field(1, ge=1)
    gfp: str = "GFP_KERNEL"
    hold_ms: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _gfp(self) -> "Alloc":
        try:
            parse_gfp_names(self.gfp)
        except ValueError as e:
            raise ValueError(f"gfp: {e}") from None
        return self


class Repeat(Step):
    """Run ``steps`` ``count`` times with ``var`` = 0..count-1."""

    op: Literal["repeat"]
    var: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    count: int = Field(ge=0, le=1_000_000)
    steps: list["RecipeStep"] = Field(min_length=1)


RecipeStep = Annotated[
    Union[Mkdir, Create, Open, Close, Write, Read, Fsync, PathOp, Rename, Setxattr, Getxattr,
          Sync, Statfs, Mount, Umount, DropCaches, Sysctl, Sleep, Hog, Alloc, Repeat],
    Field(discriminator="op"),
]
Repeat.model_rebuild()


class Recipe(WorkloadBase):
    """A reproducer: ``steps`` run in order by each task of the group."""

    kind: Literal["recipe"]
    steps: list[RecipeStep] = Field(min_length=1)
    stop_on_error: bool = False

    @model_validator(mode="after")
    def _names(self) -> "Recipe":
        check_names(self.steps, "steps", set(PREDEFINED_VARS), set(), set())
        return self


def template_fields(text: str) -> list[str]:
    """The ``{name}`` fields of a path template (``str.format`` syntax)."""
    return [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]


def check_names(steps: list[Any], where: str, loop_vars: set[str], handles: set[str],
                saved: set[str]) -> None:
    """Every path field names a defined loop variable, every handle is opened and every
    ``until_bfree`` name saved by an earlier step (in step order, loops included)."""
    for i, step in enumerate(steps):
        at = f"{where}.{i}"
        for p in step.paths():
            for name in template_fields(p):
                if name not in loop_vars:
                    known = ", ".join(sorted(loop_vars))
                    raise ValueError(f"{at}: step {i} ({step.op}) uses {{{name}}} in {p!r}, "
                                     f"but no enclosing repeat defines it (defined: {known})")
        opens, uses = step.handles()
        if uses is not None and uses not in handles:
            raise ValueError(f"{at}.handle: step {i} ({step.op}) uses handle {uses!r}, which "
                             "no earlier open/create step opened")
        if opens is not None:
            handles.add(opens)
        if isinstance(step, Statfs) and step.save:
            saved.add(step.save)
        if isinstance(step, Hog) and isinstance(step.until_bfree, str) \
                and step.until_bfree not in saved:
            raise ValueError(f"{at}.until_bfree: step {i} (hog) waits for {step.until_bfree!r}, "
                             "which no earlier statfs step saved")
        if isinstance(step, Repeat):
            if step.var in loop_vars:
                raise ValueError(f"{at}.var: loop variable {step.var!r} is already defined")
            check_names(step.steps, f"{at}.steps", loop_vars | {step.var}, handles, saved)


def check_recipe_paths(scenario: Any) -> None:
    """Reject (``ValueError`` keyed ``workload.N.steps.I...``) a recipe path outside every
    mount of the scenario's ``[[fs]]`` and of the recipe's own earlier ``mount`` steps; loop
    variables are taken as 0. (Called at load time by the scenario's cross-reference check.)"""
    mounts = [f.mountpoint for f in scenario.fs]
    for w, spec in enumerate(scenario.workload):
        if isinstance(spec, Recipe):
            _check_paths(spec.steps, f"workload.{w}.steps", list(mounts))


def _check_paths(steps: list[Any], where: str, mounts: list[str]) -> None:
    for i, step in enumerate(steps):
        if isinstance(step, Repeat):
            _check_paths(step.steps, f"{where}.{i}.steps", mounts)
            continue
        for p in step.paths():
            if not any(covers(m, with_zeros(p)) for m in mounts):
                raise ValueError(f"{where}.{i}: step {i} ({step.op}) path {p!r} is outside "
                                 f"every mount (mounts: {', '.join(mounts) or 'none'})")
        if isinstance(step, Mount):
            mounts.append(with_zeros(step.target))


def with_zeros(template: str) -> str:
    """A path template with every loop variable taken as 0."""
    return template.format(**{n: 0 for n in template_fields(template)})


def covers(mountpoint: str, path: str) -> bool:
    m = mountpoint.rstrip("/")
    return path == mountpoint or path.startswith(m + "/")


# ------------------------------------------------------------------ running a recipe
class RecipeRun:
    """One task's run of a recipe: its loop variables, open handles, saved values, overlay
    mounts and the step log."""

    def __init__(self, spec: Recipe, ctx: Any, comm: str) -> None:
        self.spec = spec
        self.ctx = ctx
        self.vars: dict[str, int] = {"task": ctx.index}
        self.fds: dict[str, int] = {}
        self.saved: dict[str, int] = {}
        self.overlays: dict[str, dict[str, str]] = {}
        self.log: dict[str, Any] = {"task": comm, "completed": False, "steps": []}
        # the recipe's process exited: children holding memory (hog ``hold``) exit too
        self.done = False
        self.exited = WaitQueue(f"{comm}-exit")

    def fmt(self, template: str) -> str:
        return template.format(**self.vars)


def recipe(spec: Recipe, ctx: Any) -> Generator:
    """Run the recipe's steps in order; record each one on ``sim.recipe_log``."""
    task = current()
    run = RecipeRun(spec, ctx, task.comm)
    recipe_log(task.sim).append(run.log)
    if (yield from run_steps(run, spec.steps, "")):
        run.log["completed"] = True
    yield from close_all(run)
    run.done = True
    wake_up(run.exited)
    ctx.stats.finished += 1


def recipe_log(sim: Any) -> list[dict[str, Any]]:
    """The simulation's recipe log (one entry per recipe task), created on first use."""
    log = getattr(sim, "recipe_log", None)
    if log is None:
        log = sim.recipe_log = []
    return log


def recipe_section(sim: Any) -> list[dict[str, Any]] | None:
    """The run result's ``recipe`` section, or None when no recipe ran."""
    return getattr(sim, "recipe_log", None) or None


def run_steps(run: RecipeRun, steps: list[Any], prefix: str) -> Generator:
    """Run ``steps``; False when the run must stop (stop time, OOM kill, stop_on_error)."""
    for i, step in enumerate(steps):
        index = f"{prefix}{i}"
        if not run.ctx.running():
            return False
        if isinstance(step, Repeat):
            for n in range(step.count):
                run.vars[step.var] = n
                if not (yield from run_steps(run, step.steps, f"{index}.")):
                    return False
            run.vars.pop(step.var, None)
            continue
        entry = yield from run_step(run, step, index)
        if entry["error"] is not None and not entry["expected"] and run.spec.stop_on_error:
            return False
    return True


def run_step(run: RecipeRun, step: Any, index: str) -> Generator:
    """Run one step, catching the errno the kernel returns; log it."""
    sim = current().sim
    started = sim.now
    value, error = None, None
    try:
        value = yield from STEPS[step.op](run, step)
    except KernelError as e:
        error = e.errno
    entry = {"index": index, "op": step.op, "loop": {k: v for k, v in run.vars.items()
                                                     if k != "task"},
             "start_ns": started, "ns": sim.now - started, "value": value, "error": error,
             "expected": error == step.expect_error}
    run.log["steps"].append(entry)
    if error is not None and error != step.expect_error:
        run.ctx.stats.error(error)
    else:
        run.ctx.stats.op(sim.now)
    return entry


def close_all(run: RecipeRun) -> Generator:
    """Process exit: close the handles still open (``exit_files``)."""
    for fd in list(run.fds.values()):
        try:
            yield from sys.sys_close(fd)
        except KernelError:
            pass
    run.fds.clear()


# ------------------------------------------------------------------ the steps
def real_path(run: RecipeRun, step: Any) -> str:
    """``step.path`` formatted; with ``layer``, the path of the real file in that layer of
    the overlay (mounted by this recipe) that covers it."""
    path = run.fmt(step.path)
    layer = getattr(step, "layer", None)
    if layer is None:
        return path
    for target, opts in run.overlays.items():
        if covers(target, path):
            key = "upperdir" if layer == "upper" else "lowerdir"
            if key not in opts:
                raise KernelError("EINVAL", f"overlay {target} has no {key}")
            base = opts[key].split(":")[0]
            return base.rstrip("/") + path[len(target.rstrip("/")):]
    raise KernelError("EINVAL", f"{path} is not on an overlay this recipe mounted")


def step_mkdir(run: RecipeRun, step: Mkdir) -> Generator:
    path = run.fmt(step.path)
    if not step.parents:
        yield from sys.sys_mkdir(path)
        return None
    parts = [p for p in path.split("/") if p]
    for n in range(1, len(parts) + 1):
        prefix = "/" + "/".join(parts[:n])
        try:
            yield from sys.sys_stat(prefix)  # mkdir -p stats first: "/" may be no filesystem
            continue
        except KernelError as e:
            if e.errno != "ENOENT":
                raise
        yield from sys.sys_mkdir(prefix)
    return None


def step_create(run: RecipeRun, step: Create) -> Generator:
    fd = yield from sys.sys_open(run.fmt(step.path), sys.O_CREAT | sys.O_RDWR)
    written = 0
    if step.size:
        written = yield from sys.sys_write(fd, step.size)
    if step.fsync:
        yield from sys.sys_fsync(fd)
    if step.handle:
        run.fds[step.handle] = fd
    else:
        yield from sys.sys_close(fd)
    return written


def step_open(run: RecipeRun, step: Open) -> Generator:
    flags = (sys.O_RDWR if step.write else sys.O_RDONLY) | (sys.O_CREAT if step.create else 0)
    fd = yield from sys.sys_open(run.fmt(step.path), flags)
    run.fds[step.handle] = fd
    return fd


def step_close(run: RecipeRun, step: Close) -> Generator:
    fd = run.fds.pop(step.handle, None)
    if fd is None:
        raise KernelError("EBADF", f"handle {step.handle!r} is not open")
    yield from sys.sys_close(fd)
    return None


def with_file(run: RecipeRun, step: FileIo, write: bool, body: Any) -> Generator:
    """Run ``body(fd)`` on the step's handle, or on ``path`` opened (and closed) around it."""
    if step.handle is not None:
        fd = run.fds.get(step.handle)
        if fd is None:
            raise KernelError("EBADF", f"handle {step.handle!r} is not open")
        return (yield from body(fd))
    fd = yield from sys.sys_open(run.fmt(step.path), sys.O_RDWR if write else sys.O_RDONLY)
    try:
        return (yield from body(fd))
    finally:
        if not unwinding():
            yield from sys.sys_close(fd)


def step_write(run: RecipeRun, step: Write) -> Generator:
    def body(fd: int) -> Generator:
        if step.op == "append":
            # O_APPEND: generic_write_checks moves the position to i_size before writing
            file = sys.fdget(current().sim.vfs, fd)
            file.f_pos = file.f_inode.i_size
        return (yield from sys.sys_write(fd, step.size))

    return (yield from with_file(run, step, True, body))


def step_read(run: RecipeRun, step: Read) -> Generator:
    def body(fd: int) -> Generator:
        return (yield from sys.sys_read(fd, step.size or WHOLE_FILE))

    return (yield from with_file(run, step, False, body))


def step_fsync(run: RecipeRun, step: Fsync) -> Generator:
    def body(fd: int) -> Generator:
        yield from sys.sys_fsync(fd)

    return (yield from with_file(run, step, True, body))


def step_path_op(run: RecipeRun, step: PathOp) -> Generator:
    path = real_path(run, step)
    if step.op == "unlink":
        yield from sys.sys_unlink(path)
    elif step.op == "rmdir":
        yield from sys.sys_rmdir(path)
    else:
        st = yield from sys.sys_stat(path)
        return {k: st[k] for k in ("ino", "nlink", "size", "blocks")}
    return None


def step_rename(run: RecipeRun, step: Rename) -> Generator:
    yield from sys.sys_rename(run.fmt(step.old), run.fmt(step.new))
    return None


def step_setxattr(run: RecipeRun, step: Setxattr) -> Generator:
    yield from sys.sys_setxattr(run.fmt(step.path), step.name, step.size)
    return None


def step_getxattr(run: RecipeRun, step: Getxattr) -> Generator:
    return (yield from sys.sys_getxattr(run.fmt(step.path), step.name))


def step_sync(run: RecipeRun, step: Sync) -> Generator:
    if step.path is None:
        yield from sys.sys_sync()
    else:
        yield from sys.sys_syncfs(run.fmt(step.path))
    return None


def step_statfs(run: RecipeRun, step: Statfs) -> Generator:
    st = yield from sys.sys_statfs(run.fmt(step.path))
    if step.save:
        run.saved[step.save] = st["f_bfree"]
    return st["f_bfree"]


def step_mount(run: RecipeRun, step: Mount) -> Generator:
    target = run.fmt(step.target)
    opts = step.options(run.fmt)
    yield from sys.sys_mount(step.fstype, step.source or step.fstype, target, opts)
    if step.fstype == "overlay":
        run.overlays[target] = opts
    return None


def step_umount(run: RecipeRun, step: Umount) -> Generator:
    target = run.fmt(step.target)
    yield from sys.sys_umount(target)
    run.overlays.pop(target, None)
    return None


def step_drop_caches(run: RecipeRun, step: DropCaches) -> Generator:
    yield from sys.sys_drop_caches(step.mode)
    return None


def step_sysctl(run: RecipeRun, step: Sysctl) -> Generator:
    """``proc_sys_write``: the sysctl handler applies the value to the live kernel."""
    sim = current().sim
    yield Run(sim.vfs.config.syscall_ns)
    SYSCTL_HANDLERS[step.name](sim, step.value)
    return step.value


def vfs_cache_pressure_handler(sim: Any, value: int) -> None:
    """``vm.vfs_cache_pressure``: read by ``vfs_pressure_ratio`` at every shrinker count."""
    sim.vfs.config.vfs_cache_pressure = value
    sim.pgdat.config.vfs_cache_pressure = value


def min_free_kbytes_sysctl_handler(sim: Any, value: int) -> None:
    """``min_free_kbytes_sysctl_handler``: store it and ``setup_per_zone_wmarks``."""
    pgdat = sim.pgdat
    pgdat.min_free_kbytes = value
    setup_per_zone_wmarks(pgdat.zone, value, pgdat.config.watermark_scale_factor,
                          pgdat.page_size)


def watermark_scale_factor_sysctl_handler(sim: Any, value: int) -> None:
    """``watermark_scale_factor_sysctl_handler``: store it and ``setup_per_zone_wmarks``."""
    pgdat = sim.pgdat
    pgdat.config.watermark_scale_factor = value
    setup_per_zone_wmarks(pgdat.zone, pgdat.min_free_kbytes, value, pgdat.page_size)


def hung_task_timeout_handler(sim: Any, value: int) -> None:
    """``kernel.hung_task_timeout_secs``: khungtaskd re-checks with the new timeout at once
    (``proc_dohung_task_timeout_secs`` wakes it)."""
    for obs in sim.observers:
        if isinstance(obs, Checks):
            obs.hung_task.timeout_ns = value * NSEC_PER_SEC
            obs.hung_task.del_timer()
            obs.hung_task.check_hung_uninterruptible_tasks()


SYSCTL_HANDLERS = {
    "vm.vfs_cache_pressure": vfs_cache_pressure_handler,
    "vm.min_free_kbytes": min_free_kbytes_sysctl_handler,
    "vm.watermark_scale_factor": watermark_scale_factor_sysctl_handler,
    "kernel.hung_task_timeout_secs": hung_task_timeout_handler,
}


def step_sleep(run: RecipeRun, step: Sleep) -> Generator:
    yield max(1, int(step.ms * NSEC_PER_MSEC))
    return None


def step_hog(run: RecipeRun, step: Hog) -> Generator:
    """``fork`` a hog child and wait (interruptibly) until its condition held; returns what
    stopped it."""
    task = current()
    outcome: dict[str, Any] = {}
    reported = WaitQueue(f"{task.comm}-hog")
    task.sim.spawn(hog_child(run, step, outcome, reported), f"{task.comm}-hog")
    yield from wait_event(reported, lambda: "stopped_by" in outcome, state="S")
    return outcome


def hog_child(run: RecipeRun, step: Hog, outcome: dict[str, Any], reported: WaitQueue
              ) -> Generator:
    """The hog process: fault in ``step_kb`` per step until a condition holds, report to the
    parent, then exit — or, with ``hold``, keep the memory until the recipe ends."""
    task = current()
    mm = get_task_mm(task)
    pages = max(1, step.step_kb * 1024 // task.sim.pgdat.page_size)
    target = run.saved.get(step.until_bfree) if isinstance(step.until_bfree, str) \
        else step.until_bfree
    steps, peak, bfree, stopped = 0, 0, None, "stop_time"
    while run.ctx.running():
        if target is not None:
            bfree = (yield from sys.sys_statfs(run.fmt(step.until_path)))["f_bfree"]
            if bfree >= target:
                stopped = "bfree"
                break
        if step.max_steps is not None and steps >= step.max_steps:
            stopped = "max_steps"
            break
        yield from do_anonymous_page(mm, pages)
        steps += 1
        peak = max(peak, mm.rss)
        if task.oom_killed:
            stopped = "oom"
            break
        if step.interval_ms:
            yield int(step.interval_ms * NSEC_PER_MSEC)
    outcome.update({"stopped_by": stopped, "steps": steps, "peak_pages": peak, "bfree": bfree})
    wake_up(reported)
    if step.hold and stopped != "oom":
        yield from wait_event(run.exited, lambda: run.done or task.oom_killed, state="S")
    exit_mmap(mm)


def step_alloc(run: RecipeRun, step: Alloc) -> Generator:
    """``count`` allocations of ``order``; returns how many succeeded."""
    gfp = resolve_gfp(step.gfp)
    held = []
    for _ in range(step.count):
        pfn = yield from alloc_pages(gfp, step.order)
        if pfn is None:
            break
        held.append(pfn)
    if step.hold_ms:
        yield int(step.hold_ms * NSEC_PER_MSEC)
    for pfn in held:
        free_pages(pfn, step.order)
    return len(held)


STEPS = {
    "mkdir": step_mkdir, "create": step_create, "open": step_open, "close": step_close,
    "write": step_write, "append": step_write, "read": step_read, "fsync": step_fsync,
    "unlink": step_path_op, "rmdir": step_path_op, "stat": step_path_op,
    "rename": step_rename, "setxattr": step_setxattr, "getxattr": step_getxattr,
    "sync": step_sync, "statfs": step_statfs, "mount": step_mount, "umount": step_umount,
    "drop_caches": step_drop_caches, "sysctl": step_sysctl, "sleep": step_sleep,
    "hog": step_hog, "alloc": step_alloc,
}
