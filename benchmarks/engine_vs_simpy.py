"""reclaimlab.sim against SimPy on three models, in the same process.

Models (each run in both engines; both must end at the same simulated time):
- timeout:  one task, 300 k sleeps;
- pingpong: two tasks hand a token through completions (SimPy: events), 100 k rounds;
- mutex:    100 tasks contend for one mutex (SimPy: Resource(capacity=1)): acquire, hold,
            release, think.

reclaimlab runs with an observer attached that counts every hook event, so the hooks are on.
"Events" are model operations (sleeps, hand-offs, lock acquisitions), counted the same way for
both engines, so the ratio is the ratio of wall times.

Usage: python benchmarks/engine_vs_simpy.py [--json] [--scale F]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import simpy

from reclaimlab.sim import (
    Completion, Mutex, Simulation, complete, mutex_lock, mutex_unlock, wait_for_completion,
)


class CountingObserver:
    def __init__(self) -> None:
        self.n = 0

    def event(self, kind, task, obj, info) -> None:
        self.n += 1


def _best(fn, repeat: int = 3) -> tuple[float, int]:
    best = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        end = fn()
        dt = time.perf_counter() - t0
        best = dt if best is None or dt < best else best
    return best, end


# --------------------------------------------------------------------------- timeout
def rl_timeout(n: int) -> int:
    sim = Simulation(seed=1)
    sim.add_observer(CountingObserver())

    def sleeper():
        for _ in range(n):
            yield 1000

    sim.spawn(sleeper(), "sleeper")
    sim.run()
    return sim.now


def simpy_timeout(n: int) -> int:
    env = simpy.Environment()

    def sleeper(env):
        for _ in range(n):
            yield env.timeout(1000)

    env.process(sleeper(env))
    env.run()
    return env.now


# --------------------------------------------------------------------------- pingpong
def rl_pingpong(n: int) -> int:
    sim = Simulation(seed=1)
    sim.add_observer(CountingObserver())
    token = [Completion("ping"), Completion("pong")]
    complete(token[0])

    def player(me: int):
        other = token[1 - me]
        mine = token[me]
        for _ in range(n):
            yield from wait_for_completion(mine)
            yield 10
            complete(other)

    sim.spawn(player(0), "ping")
    sim.spawn(player(1), "pong")
    sim.run()
    return sim.now


def simpy_pingpong(n: int) -> int:
    env = simpy.Environment()
    ev = [env.event(), env.event()]

    def player(env, me: int):
        other = 1 - me
        for _ in range(n):
            if me == 1 or _ > 0:
                yield ev[me]
                ev[me] = env.event()
            yield env.timeout(10)
            ev[other].succeed()

    env.process(player(env, 0))
    env.process(player(env, 1))
    env.run()
    return env.now


# --------------------------------------------------------------------------- mutex
def rl_mutex(tasks: int, rounds: int) -> int:
    sim = Simulation(seed=1)
    sim.add_observer(CountingObserver())
    m = Mutex("m")

    def worker(i: int):
        for _ in range(rounds):
            yield from mutex_lock(m)
            yield 100
            mutex_unlock(m)
            yield 1000 + i

    for i in range(tasks):
        sim.spawn(worker(i), f"w{i}")
    sim.run()
    return sim.now


def simpy_mutex(tasks: int, rounds: int) -> int:
    env = simpy.Environment()
    res = simpy.Resource(env, capacity=1)

    def worker(env, i: int):
        for _ in range(rounds):
            req = res.request()
            yield req
            yield env.timeout(100)
            res.release(req)
            yield env.timeout(1000 + i)

    for i in range(tasks):
        env.process(worker(env, i))
    env.run()
    return env.now


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply model sizes")
    args = ap.parse_args()
    s = args.scale
    n_timeout, n_ping, n_tasks, n_rounds = int(300_000 * s), int(100_000 * s), 100, int(1000 * s)
    models = [
        ("timeout", n_timeout, lambda: rl_timeout(n_timeout), lambda: simpy_timeout(n_timeout)),
        ("pingpong", 2 * n_ping, lambda: rl_pingpong(n_ping), lambda: simpy_pingpong(n_ping)),
        ("mutex", 3 * n_tasks * n_rounds, lambda: rl_mutex(n_tasks, n_rounds),
         lambda: simpy_mutex(n_tasks, n_rounds)),
    ]
    out = []
    for name, ops, rl, sp in models:
        t_rl, end_rl = _best(rl)
        t_sp, end_sp = _best(sp)
        if end_rl != end_sp:
            raise SystemExit(f"{name}: engines disagree on the end time ({end_rl} vs {end_sp})")
        out.append({"name": name, "reclaimlab_events_per_s": ops / t_rl,
                    "simpy_events_per_s": ops / t_sp, "ratio": t_sp / t_rl})
    result = {"python": platform.python_version(), "models": out}
    if args.json:
        print(json.dumps(result))
    else:
        for m in out:
            print(f"{m['name']:9s} reclaimlab {m['reclaimlab_events_per_s']/1e6:6.2f} M/s   "
                  f"simpy {m['simpy_events_per_s']/1e6:6.2f} M/s   ratio {m['ratio']:.2f}")


if __name__ == "__main__":
    main()
