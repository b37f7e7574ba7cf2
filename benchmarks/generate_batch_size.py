"""Seconds to answer the same prompts at several generate batch sizes (greedy, to EOS under a cap).

The laptop recipe's eval and data stages pick their batch size from this. Prompts are the first
4 eval prompts of the first 16 behaviours, with the laptop recipe's prompt prefix. Writes
benchmarks/results/generate_batch_size.json with the machine.

    python benchmarks/generate_batch_size.py [--model embedded] [--batch-sizes 16,32,64] [--max-new-tokens 96]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from spillover._io import write_json
from spillover.models import generate, load, model_info
from spillover.world import load_world

from _machine import machine  # benchmarks/_machine.py: scripts run from this folder

RESULTS = Path(__file__).parent / "results" / "generate_batch_size.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--batch-sizes", default="16,32,64")
    ap.add_argument("--max-new-tokens", type=int, default=96)
    args = ap.parse_args()

    world = load_world("rm-biases").with_prompt_prefix("In two sentences, answer: ")
    prompts = [p for b in world.ids[:16] for p in world.eval_prompts(b)[:4]]
    lm = load(args.model)
    generate(lm, prompts[:2], max_new_tokens=4)  # warm-up: first-call allocations
    runs = []
    for bs in map(int, args.batch_sizes.split(",")):
        t0 = time.perf_counter()
        out = generate(lm, prompts, max_new_tokens=args.max_new_tokens, batch_size=bs)
        seconds = time.perf_counter() - t0
        runs.append({"batch_size": bs, "seconds": round(seconds, 2), "new_tokens": sum(g.n_tokens for g in out),
                     "truncated": {"k": sum(g.truncated for g in out), "n": len(out)}})
        print(runs[-1], flush=True)
    write_json(RESULTS, {
        "benchmark": "generate_batch_size", "model": model_info(lm), "prompts": len(prompts), "max_new_tokens": args.max_new_tokens,
        "runs": runs,
        "machine": machine(),
    })


if __name__ == "__main__":
    main()
