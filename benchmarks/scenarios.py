"""Wall time and event rate of every built-in scenario under every design, and a scale run.

    python benchmarks/scenarios.py                 # every built-in x every design
    python benchmarks/scenarios.py --scale         # also the scale variant (>= 1 M inodes)
    python benchmarks/scenarios.py --json          # one JSON object instead of a table

Each run goes to a child process so that its peak memory (``ru_maxrss``) is its own.
Targets (issue 6): a built-in's default size in <= 10 s per design; the scale variant
(>= 1 M inodes, >= 10 M events) in <= 60 s and <= 2 GiB.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
from pathlib import Path

DESIGNS = ("native", "sync", "inodegc", "passive-ref")
# The scale variant: fs_mark-like churn creating and unlinking >= 1 M ext4 inodes under a
# memory hog (a scenario file beside this script).
SCALE = (str(Path(__file__).with_name("scale.toml")), [])


def one(scenario: str, design: str, overrides: list[str]) -> dict:
    """Run in a child process; return its summary and peak RSS."""
    code = ("import json, sys; from reclaimlab.scenario import run_scenario; "
            "r = run_scenario(sys.argv[1], sys.argv[2], None, sys.argv[3:]); "
            "print(json.dumps({k: r[k] for k in ('outcome', 'events', 'wall_s', 'sim_time_ns')}"
            " | {'inodes': r['inodes']}))")
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = subprocess.run([sys.executable, "-c", code, scenario, design, *overrides],
                          capture_output=True, text=True)
    if proc.returncode:
        errors = [line for line in proc.stderr.splitlines()
                  if re.match(r"^[A-Za-z_.]+(Error|Exception)\b", line)]
        return {"scenario": scenario, "design": design,
                "error": errors[0] if errors else proc.stderr.strip()[-300:]}
    out = json.loads(proc.stdout)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out.update(scenario=scenario, design=design,
               events_per_s=out["events"] / out["wall_s"] if out["wall_s"] else 0.0,
               peak_rss_mb=max(peak, before) / 1024)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", action="store_true", help="also run the scale variant")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--scenarios", help="comma-separated subset of the built-ins")
    args = parser.parse_args()
    from reclaimlab.scenario import builtin_names

    names = args.scenarios.split(",") if args.scenarios else builtin_names()
    rows = [one(name, design, []) for name in names for design in DESIGNS]
    if args.scale:
        rows.append(one(SCALE[0], "native", SCALE[1]) | {"variant": "scale"})
    if args.json:
        print(json.dumps({"python": sys.version.split()[0], "runs": rows}, indent=2))
        return 0
    print(f"{'scenario':22} {'design':12} {'outcome':10} {'events':>10} {'wall s':>8} "
          f"{'events/s':>10} {'inodes':>8} {'peak MiB':>9}")
    for r in rows:
        if "error" in r:
            print(f"{r['scenario']:22} {r['design']:12} ERROR {r['error'][:120]}")
            continue
        name = "scale.toml" if r.get("variant") else r["scenario"]
        print(f"{name:22} {r['design']:12} "
              f"{r['outcome']:10} {r['events']:>10} {r['wall_s']:>8.2f} "
              f"{r['events_per_s']:>10.0f} {r['inodes']['evicted']:>8} {r['peak_rss_mb']:>9.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
