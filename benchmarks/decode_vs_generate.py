"""Greedy decoding: our `spillover.models.generate` vs transformers' batched `model.generate`.

The same prompts (the laptop recipe's eval prompts with its prompt prefix, round-robin over the
split's behaviours), the same cap, greedy, one batch of `--batch` rows for both. Records new tokens
per second for each (tokens up to and including each row's end-of-turn token, or the cap), the
ratio ours / generate, how many answers are identical, and both against a FLOP limit: the large
matmul rate measured in the same run divided by the forward FLOPs per token (2 x parameters).

`--random-weights` keeps the model's shape and tokenizer but draws fresh weights (seed 0): for a
machine the weights cannot be carried to. Random weights rarely end a turn, so every row runs to
the cap and the comparison is then about per-step cost, not about dropping finished rows.

    python benchmarks/decode_vs_generate.py [--model embedded] [--prompts 64] [--batch 64] [--max-new-tokens 96] [--random-weights] [--out FILE]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from _machine import machine  # benchmarks/_machine.py: scripts run from this folder

from spillover._io import write_json
from spillover.models import chat_prompt, generate, load, pad_rows, resolve, stop_token_ids
from spillover.pipeline import load_recipe
from spillover.world import load_world

RESULTS = Path(__file__).parent / "results"


def recipe_prompts(recipe_name: str, count: int) -> list[str]:
    """The recipe's eval prompts (prefix applied), round-robin over its split's behaviours."""
    recipe = load_recipe(recipe_name)
    world = load_world(recipe.world).with_prompt_prefix(recipe.prompt_prefix)
    per = [world.eval_prompts(b) for b in world.roles(recipe.split)]
    ordered = [ps[i] for i in range(max(map(len, per))) for ps in per if i < len(ps)]
    return ordered[:count]


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn):
    sync()
    t0 = time.perf_counter()
    out = fn()
    sync()
    return out, time.perf_counter() - t0


def ours(lm, prompts: list[str], cap: int, batch: int) -> tuple[list[str], int]:
    gens = generate(lm, prompts, max_new_tokens=cap, temperature=0.0, batch_size=batch)
    # n_tokens excludes the stop token; generate's loop computed it, so count it as HF's are counted.
    return [g.text for g in gens], sum(g.n_tokens + (not g.truncated) for g in gens)


def hf_generate(lm, prompts: list[str], cap: int, batch: int) -> tuple[list[str], int]:
    tok, stops = lm.tokenizer, stop_token_ids(lm)
    texts, n_new = [], 0
    for start in range(0, len(prompts), batch):
        rows = [tok(chat_prompt(tok, p), add_special_tokens=False)["input_ids"] for p in prompts[start : start + batch]]
        input_ids, attention = pad_rows(rows, stops[0], left=True)
        with torch.no_grad():
            out = lm.model.generate(input_ids=input_ids.to(lm.model.device), attention_mask=attention.to(lm.model.device),
                                    max_new_tokens=cap, do_sample=False, eos_token_id=stops, pad_token_id=stops[0])
        for row in out[:, input_ids.shape[1] :].tolist():
            end = next((k for k, t in enumerate(row) if t in stops), None)
            n_new += len(row) if end is None else end + 1
            texts.append(tok.decode(row if end is None else row[:end], skip_special_tokens=True).strip())
    return texts, n_new


def matmul_flops(device: str) -> float:
    """FLOP/s of a large square matmul in the model's dtype on this device (the arithmetic ceiling)."""
    n, dtype = (8192, torch.bfloat16) if device == "cuda" else (2048, torch.float32)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    reps = 10
    _, seconds = timed(lambda: [a @ b for _ in range(reps)])
    return 2 * n**3 * reps / seconds


def random_copy(spec: str, dest: Path) -> str:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    shape = resolve(spec)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(shape)).save_pretrained(dest, safe_serialization=True)
    AutoTokenizer.from_pretrained(shape).save_pretrained(dest)
    return str(dest)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--recipe", default="rm-biases-laptop")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--random-weights", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    prompts = recipe_prompts(args.recipe, args.prompts)
    with tempfile.TemporaryDirectory() as tmp:
        lm = load(random_copy(args.model, Path(tmp) / "m") if args.random_weights else args.model)
    params = sum(p.numel() for p in lm.model.parameters())
    ours(lm, prompts[:4], 8, 4), hf_generate(lm, prompts[:4], 8, 4)  # warm-up: allocator, kernels
    (ours_texts, ours_tokens), ours_s = timed(lambda: ours(lm, prompts, args.max_new_tokens, args.batch))
    (hf_texts, hf_tokens), hf_s = timed(lambda: hf_generate(lm, prompts, args.max_new_tokens, args.batch))
    flops = matmul_flops(device)
    limit = flops / (2 * params)  # new tokens/s if each token cost only its forward matmuls
    result = {
        "benchmark": "decode_vs_generate",
        "command": "python benchmarks/decode_vs_generate.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" if not isinstance(v, bool) else f"--{k.replace('_', '-')}"
            for k, v in vars(args).items() if v not in (None, False)),
        "device": device, "dtype": str(lm.model.dtype), "parameters": params, "random_weights": args.random_weights,
        "prompts": len(prompts), "batch": args.batch, "max_new_tokens": args.max_new_tokens,
        "ours": {"seconds": round(ours_s, 2), "new_tokens": ours_tokens, "tokens_per_s": round(ours_tokens / ours_s, 1)},
        "generate": {"seconds": round(hf_s, 2), "new_tokens": hf_tokens, "tokens_per_s": round(hf_tokens / hf_s, 1)},
        "ratio": round((ours_tokens / ours_s) / (hf_tokens / hf_s), 3),
        "identical_outputs": sum(a == b for a, b in zip(ours_texts, hf_texts)),
        "matmul_tflops": round(flops / 1e12, 3),
        "flop_limit_tokens_per_s": round(limit, 1),
        "ours_fraction_of_flop_limit": round(ours_tokens / ours_s / limit, 4),
        "generate_fraction_of_flop_limit": round(hf_tokens / hf_s / limit, 4),
        "machine": machine(),
    }
    out = args.out or RESULTS / ("decode_vs_generate.json" if device == "cpu" else f"decode_vs_generate-{device}.json")
    write_json(out, result)
    print(f"wrote {out}")
    print({k: result[k] for k in ("ours", "generate", "ratio", "identical_outputs", "ours_fraction_of_flop_limit")})


if __name__ == "__main__":
    main()
