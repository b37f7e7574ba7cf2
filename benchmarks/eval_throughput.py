"""Responses per second: the batched HF backend vs one-at-a-time `model.generate`, same prompts.

Both decode greedily to an end-of-turn token under the same cap, on the same model and machine;
the JSON records the ratio, the machine, and how many answers the two paths agree on (left
padding changes float rounding, so a few greedy answers may differ).

    python benchmarks/eval_throughput.py --model embedded --prompts 16 --max-new-tokens 48 [--threads 1] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from spillover._io import write_json
from spillover.evaluation import HFBackend
from spillover.models import chat_prompt, load, model_info, stop_token_ids
from spillover.world import load_world

from _machine import machine  # benchmarks/_machine.py: scripts run from this folder


def eval_prompts(world_name: str, count: int) -> list[str]:
    """Round-robin over behaviours, so the prompts have the usual spread of lengths."""
    world = load_world(world_name)
    per = [world.eval_prompts(b) for b in world.ids]
    out = [p for i in range(max(map(len, per))) for ps in per if i < len(ps) for p in [ps[i]]]
    return out[:count]


def one_at_a_time(lm, prompts: list[str], max_new_tokens: int) -> list[str]:
    stops = stop_token_ids(lm)
    texts = []
    for p in prompts:
        ids = lm.tokenizer(chat_prompt(lm.tokenizer, p), add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            out = lm.model.generate(
                input_ids=ids.to(lm.model.device),
                attention_mask=torch.ones_like(ids).to(lm.model.device),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=stops,
                pad_token_id=stops[0],
            )
        new = [t for t in out[0, ids.shape[1] :].tolist() if t not in stops]
        texts.append(lm.tokenizer.decode(new, skip_special_tokens=True).strip())
    return texts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--world", default="rm-biases")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice); 1 is steadier on a shared machine")
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    lm = load(args.model)
    prompts = eval_prompts(args.world, args.prompts)
    backend = HFBackend(lm, batch_size=args.batch_size)
    backend.sample(prompts[:2], max_new_tokens=4)  # warm-up: first-call allocations

    t0 = time.perf_counter()
    batched = [gs[0] for gs in backend.sample(prompts, max_new_tokens=args.max_new_tokens)]
    t_batched = time.perf_counter() - t0
    t0 = time.perf_counter()
    single = one_at_a_time(lm, prompts, args.max_new_tokens)
    t_single = time.perf_counter() - t0

    result = {
        "benchmark": "eval_throughput",
        "model": model_info(lm),
        "prompts": len(prompts),
        "max_new_tokens": args.max_new_tokens,
        "batch_size": args.batch_size,
        "batched": {
            "seconds": round(t_batched, 2),
            "responses_per_s": round(len(prompts) / t_batched, 3),
            "new_tokens": sum(g.n_tokens for g in batched),
            "truncated": sum(g.truncated for g in batched),
        },
        "one_at_a_time": {"seconds": round(t_single, 2), "responses_per_s": round(len(prompts) / t_single, 3)},
        "ratio": round(t_single / t_batched, 2),
        "identical_answers": sum(a.text == b for a, b in zip(batched, single)),
        "machine": machine(),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        write_json(args.out, result)


if __name__ == "__main__":
    main()
