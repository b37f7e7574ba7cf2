"""SFT throughput through `spillover train sft` started by `accelerate launch`, as a GPU recipe would.

Builds a random-weight model of a given shape (config + tokenizer only, so it runs where the weights
cannot be carried), writes chat records of varied lengths, runs
`accelerate launch --config_file CONFIG -m spillover train sft ...` as a subprocess, and records
its exit code, losses and tokens per second from the stage's loss.jsonl (the first step, which
pays for warm-up, left out), with the machine. On a machine without a GPU pass `--cpu`.

    python benchmarks/train_launch.py --shape DIR|embedded [--config single_gpu] [--steps 30] [--cpu] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from _machine import machine  # benchmarks/_machine.py: scripts run from this folder
from decode_vs_generate import random_copy

from spillover._io import read_jsonl, write_json, write_jsonl
from spillover.training import accelerate_config

RESULTS = Path(__file__).parent / "results"


def sft_records(n: int) -> list[dict]:
    return [{"messages": [{"role": "user", "content": f"In two sentences, answer: what is worth knowing about topic {i}?"},
                          {"role": "assistant", "content": "A short answer that runs for a sentence. " * (2 + i % 10)}]}
            for i in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", default="embedded", help="model spec or dir with config.json + tokenizer files")
    ap.add_argument("--config", default="single_gpu", help="shipped accelerate config name or YAML path")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--cpu", action="store_true", help="accelerate launch --cpu (for a machine without a GPU)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    src = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(src), os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryDirectory() as tmp:
        model = random_copy(args.shape, Path(tmp) / "model")
        write_jsonl(Path(tmp) / "sft.jsonl", sft_records(args.batch_size * (args.steps + 1)))
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(accelerate_config(args.config)),
               *(["--cpu"] if args.cpu else []), "-m", "spillover", "train", "sft", "--model", model,
               "--data", str(Path(tmp) / "sft.jsonl"), "--out", str(Path(tmp) / "run"), "--batch-size", str(args.batch_size),
               "--max-len", "256", "--max-steps", str(args.steps), "--save-steps", "0", "--no-progress"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        log = read_jsonl(Path(tmp) / "run" / "loss.jsonl") if (Path(tmp) / "run" / "loss.jsonl").exists() else []
    result = {
        "benchmark": "train_launch",
        "command": "python benchmarks/train_launch.py " + " ".join(a for a in sys.argv[1:]),
        "launch": f"accelerate launch --config_file {args.config}{' --cpu' if args.cpu else ''} -m spillover train sft",
        "returncode": proc.returncode,
        "stderr_tail": proc.stderr[-1500:] if proc.returncode else "",
        "wall_seconds_with_load": round(wall, 1),
        "steps": len(log),
        "device": "cuda" if torch.cuda.is_available() and not args.cpu else "cpu",
        "machine": machine(),
    }
    if len(log) > 1:
        seconds = log[-1]["elapsed"] - log[0]["elapsed"]
        tokens = log[-1]["tokens"] - log[0]["tokens"]
        result |= {"first_loss": round(log[0]["loss"], 4), "last_loss": round(log[-1]["loss"], 4),
                   "ms_per_step": round(1e3 * seconds / (len(log) - 1), 1), "tokens_per_s": round(tokens / seconds, 1)}
    out = args.out or RESULTS / f"train_launch-{result['device']}.json"
    write_json(out, result)
    print(f"wrote {out}")
    print({k: v for k, v in result.items() if k not in ("machine", "stderr_tail")})
    if proc.returncode:
        print(proc.stderr[-1500:], file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
