"""Seconds per stage of a finished `spillover run`, written as JSON with the machine and the run's commit.

Reads the timing block of the run's results.json (every stage is timed as it runs) and its provenance
(the commit that made the run). Two uses:

    make demo && python benchmarks/run_stages.py --run runs/rm-biases-laptop-quick --wall-seconds N
        -> benchmarks/results/demo_stages.json (`make demo` as a user meets it)
    spillover run rm-biases-laptop --seeds 0 --out R && python benchmarks/run_stages.py --run R --name full_seed \
        --load-log R.load
        -> benchmarks/results/full_seed.json (one full seed, stage by stage)

`--wall-seconds` records the whole command's wall time, measured outside (e.g. `time make demo`).
`--load-log` is a file of `HH:MM:SS <contents of /proc/loadavg>` lines sampled during the run, so a
reader can see whether other work shared the cores; its 1-minute load averages are summarised.
"""

from __future__ import annotations

import argparse
import re
import statistics
from pathlib import Path

from spillover._io import read_json, write_json

from _machine import machine  # benchmarks/_machine.py: scripts run from this folder

RESULTS = Path(__file__).parent / "results"
GROUPS = ("cpt", "sft", "dpo", "eval", "probes", "data", "documents", "contexts")


def stage_group(path: str) -> str:
    """The kind of work a stage path is (arms/x/seed-0/cpt -> cpt, probes/contexts -> contexts)."""
    parts = path.split("/")
    if "contexts" in parts:
        return "contexts"
    for group in GROUPS:
        if group in parts or parts[-1] == group or parts[0] == group:
            return group
    return "other"


def load_summary(log: Path) -> dict:
    """Mean and max of the 1-minute load averages in a `HH:MM:SS loadavg...` log."""
    loads = [float(m.group(1)) for line in log.read_text().splitlines() if (m := re.match(r"\S+ ([\d.]+) ", line))]
    return {"samples": len(loads), "mean_1min": round(statistics.fmean(loads), 2), "max_1min": max(loads)} if loads else {"samples": 0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=Path("runs/rm-biases-laptop-quick"))
    ap.add_argument("--name", default="demo_stages", help="benchmark name: the JSON goes to benchmarks/results/NAME.json")
    ap.add_argument("--wall-seconds", type=float, help="wall time of the whole command, measured outside")
    ap.add_argument("--load-log", type=Path, help="load averages sampled during the run")
    ap.add_argument("--out", type=Path, help="default benchmarks/results/NAME.json")
    args = ap.parse_args()
    results = read_json(args.run / "results.json")
    timing = results["timing"]
    stages = {k: v for k, v in timing.items() if k not in ("total_stage_seconds", "wall_seconds_this_run")}
    groups: dict[str, float] = {}
    for path, seconds in stages.items():
        groups[stage_group(path)] = round(groups.get(stage_group(path), 0.0) + (seconds or 0.0), 3)
    provenance = results.get("provenance", {})
    write_json(args.out or RESULTS / f"{args.name}.json", {
        "benchmark": args.name,
        "recipe": results["recipe"], "seeds": results["seeds"],
        "commit": provenance.get("commit"), "uncommitted_changes": provenance.get("uncommitted_changes"),
        "stage_seconds": stages,
        "seconds_by_kind": dict(sorted(groups.items(), key=lambda kv: -kv[1])),
        "total_stage_seconds": timing["total_stage_seconds"],
        "wall_seconds": args.wall_seconds or timing.get("wall_seconds_this_run"),
        "load_during_run": load_summary(args.load_log) if args.load_log else None,
        "machine": machine(),
    })
    for name, seconds in stages.items():
        print(f"{name:<40} {seconds:8.1f} s")
    print(f"{'total of stages':<40} {timing['total_stage_seconds']:8.1f} s")


if __name__ == "__main__":
    main()
