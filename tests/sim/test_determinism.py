"""Same seed, same digest — in another process too; another seed, another trace."""

import subprocess
import sys

from reclaimlab.sim import Mutex, Run, Simulation, mutex_lock, mutex_unlock

PROGRAM = """
import sys
from tests.sim.test_determinism import randomized_digest
print(randomized_digest(int(sys.argv[1])))
"""


def randomized_digest(seed: int) -> str:
    sim = Simulation(seed=seed, ncpus=2)
    m = Mutex("m")

    def worker():
        for _ in range(50):
            yield sim.rng.randrange(1, 1000)
            yield from mutex_lock(m)
            yield Run(sim.rng.randrange(1, 100))
            mutex_unlock(m)

    for i in range(6):
        sim.spawn(worker(), f"w{i}")
    sim.run()
    return sim.digest()


def test_same_seed_gives_same_digest_in_two_processes(tmp_path):
    here = randomized_digest(7)
    out = subprocess.run([sys.executable, "-c", PROGRAM, "7"], capture_output=True, text=True,
                         check=True, cwd=str(__import__("pathlib").Path(__file__).parents[2]),
                         env={"PYTHONHASHSEED": "123", "PATH": ""})
    assert out.stdout.strip() == here


def test_different_seed_gives_different_digest():
    assert randomized_digest(1) != randomized_digest(2)
