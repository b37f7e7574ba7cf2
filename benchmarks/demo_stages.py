"""Seconds per stage of `make demo` (`spillover run rm-biases-laptop --quick`), written as JSON.

Reads the timing block of a finished run's results.json (every stage is timed as it runs), so
`make demo` on a fresh clone followed by this script records the demo as a user meets it:

    make demo && python benchmarks/demo_stages.py --run runs/rm-biases-laptop-quick [--wall-seconds N]

`--wall-seconds` records the whole command's wall time (model conversion and start-up included),
measured outside, e.g. with `time make demo`.
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

from spillover._io import read_json, write_json

from _machine import machine  # benchmarks/_machine.py: scripts run from this folder

RESULTS = Path(__file__).parent / "results" / "demo_stages.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=Path("runs/rm-biases-laptop-quick"))
    ap.add_argument("--wall-seconds", type=float, help="wall time of the whole `make demo`, measured outside")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    results = read_json(args.run / "results.json")
    timing = results["timing"]
    stages = {k: v for k, v in timing.items() if k not in ("total_stage_seconds", "wall_seconds_this_run")}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=args.run).stdout.strip()  # the checkout that made the run
    write_json(args.out, {
        "benchmark": "demo_stages",
        "command": "make demo (spillover run rm-biases-laptop --quick)",
        "recipe": results["recipe"], "seeds": results["seeds"], "commit": commit or None,
        "stage_seconds": stages,
        "total_stage_seconds": timing["total_stage_seconds"],
        "make_demo_wall_seconds": args.wall_seconds,
        "machine": machine(),
    })
    for name, seconds in stages.items():
        print(f"{name:<32} {seconds:8.1f} s")
    print(f"{'total of stages':<32} {timing['total_stage_seconds']:8.1f} s")


if __name__ == "__main__":
    main()
