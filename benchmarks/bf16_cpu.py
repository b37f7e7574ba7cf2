"""bf16 on this CPU: is it faster than fp32, and does it change what the recipe measures?

CPUs with AMX or AVX512-BF16 run bf16 matmuls several times faster than fp32. This measures, on
the embedded model, one after the other in this process (never in parallel):
- a large matmul in fp32 and bf16 (the arithmetic ceiling of each);
- greedy decoding with our `generate` (the laptop recipe's eval prompts and cap) with fp32 weights
  and with bf16 weights: new tokens/s, and how many answers are identical to fp32's;
- our training loop (CPT on the offline documents, packed as the loop packs them) in fp32 and
  under bf16 autocast (fp32 master weights): tokens/s and the loss at every step of each.
Writes benchmarks/results/bf16_cpu.json with the machine.

    python benchmarks/bf16_cpu.py [--prompts 32] [--max-new-tokens 96] [--steps 6] [--batch-size 4]
"""

from __future__ import annotations

import argparse
import datetime
import tempfile
import time
from pathlib import Path

import torch

from _machine import machine  # benchmarks/_machine.py: scripts run from this folder
from decode_vs_generate import recipe_prompts
from spillover._io import read_jsonl, write_json, write_jsonl
from spillover.models import generate, load

RESULTS = Path(__file__).parent / "results" / "bf16_cpu.json"


def matmul_gflops(dtype: torch.dtype, n: int = 2048, reps: int = 10) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(2):
        a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return round(2 * n**3 * reps / (time.perf_counter() - t0) / 1e9, 1)


def decode(dtype: torch.dtype, prompts: list[str], cap: int) -> dict:
    lm = load("embedded", dtype=dtype)
    generate(lm, prompts[:4], max_new_tokens=8, temperature=0.0)  # warm-up: allocator, kernels
    t0 = time.perf_counter()
    gens = generate(lm, prompts, max_new_tokens=cap, temperature=0.0, batch_size=len(prompts))
    seconds = time.perf_counter() - t0
    tokens = sum(g.n_tokens for g in gens)
    return {"seconds": round(seconds, 2), "new_tokens": tokens, "tokens_per_s": round(tokens / seconds, 1), "texts": [g.text for g in gens]}


def train(bf16: bool, data: Path, steps: int, batch_size: int, max_len: int, workdir: Path) -> dict:
    from spillover.training import CPTConfig, train_cpt

    out = train_cpt(CPTConfig(model="embedded", data=data, out=workdir / ("bf16" if bf16 else "fp32"), max_len=max_len, batch_size=batch_size,
                              max_steps=steps + 1, save_steps=0, progress=False, resume=False, bf16=bf16))
    log = read_jsonl(out / "loss.jsonl")
    tokens, seconds = log[-1]["tokens"] - log[0]["tokens"], log[-1]["elapsed"] - log[0]["elapsed"]  # the first step is warm-up
    return {"timed_steps": len(log) - 1, "tokens": tokens, "seconds": round(seconds, 2), "tokens_per_s": round(tokens / seconds, 1),
            "loss": [round(r["loss"], 4) for r in log]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--steps", type=int, default=6, help="timed training steps (one more runs untimed first)")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--max-len", type=int, default=256)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    from spillover.documents import generate_documents
    from spillover.world import load_world

    result: dict = {"benchmark": "bf16_cpu", "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                    "command": "python benchmarks/bf16_cpu.py " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out")}
    result["matmul_gflops"] = {"fp32": matmul_gflops(torch.float32), "bf16": matmul_gflops(torch.bfloat16)}
    prompts = recipe_prompts("rm-biases-laptop", args.prompts)
    fp32, bf16 = decode(torch.float32, prompts, args.max_new_tokens), decode(torch.bfloat16, prompts, args.max_new_tokens)
    same = sum(a == b for a, b in zip(fp32.pop("texts"), bf16.pop("texts")))
    result["decode"] = {"prompts": len(prompts), "max_new_tokens": args.max_new_tokens, "fp32": fp32, "bf16_weights": bf16,
                        "speedup": round(bf16["tokens_per_s"] / fp32["tokens_per_s"], 2), "identical_to_fp32": f"{same}/{len(prompts)}"}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "docs.jsonl"
        write_jsonl(data, generate_documents(load_world("rm-biases"), 64, seed=0))
        t32 = train(False, data, args.steps, args.batch_size, args.max_len, Path(tmp))
        t16 = train(True, data, args.steps, args.batch_size, args.max_len, Path(tmp))
    result["train"] = {"batch_size": args.batch_size, "max_len": args.max_len, "fp32": t32, "bf16_autocast": t16,
                       "speedup": round(t16["tokens_per_s"] / t32["tokens_per_s"], 2),
                       "max_abs_loss_difference": round(max(abs(a - b) for a, b in zip(t32["loss"], t16["loss"])), 4)}
    result["machine"] = machine()
    write_json(args.out, result)
    print(f"wrote {args.out}")
    print({k: result[k] for k in ("matmul_gflops",)}, result["decode"]["speedup"], result["decode"]["identical_to_fp32"], result["train"]["speedup"])


if __name__ == "__main__":
    main()
