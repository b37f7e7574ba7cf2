"""Where a decode step and a training step spend their time, on this machine's default device.

A full laptop run on an H200 was barely faster than on 2 CPU cores for generation (the post-
training data stage: 1m55s vs 2m08s), which points at per-step overhead rather than arithmetic.
On a model of a given shape with random weights (so it needs only config.json and tokenizer files,
not the weights), this times:
  1. our batched decode (`spillover.models.generate`) with cuDNN attention left out (our default,
     spillover/models/_attention.py) and allowed (PyTorch's default), and HF `model.generate`;
  2. SFT optimizer steps through `train_sft` (varied lengths), ms per step and tokens/s, with
     gradient checkpointing on and off, cuDNN attention left out and allowed;
each on shapes no earlier measurement used (cuDNN caches a plan per shape), plus torch.profiler's
top operators by self CPU time for a few steps of our default decode and SFT.

    python benchmarks/step_profile.py [--shape embedded|DIR] [--batch 64] [--new-tokens 48] [--out FILE]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch
from _machine import machine  # benchmarks/_machine.py: scripts run from this folder

from spillover._io import read_jsonl, write_json, write_jsonl
from spillover.models import _attention, generate, load, resolve, stop_token_ids
from spillover.training import SFTConfig, train_sft

RESULTS = Path(__file__).parent / "results"


def random_model(shape_dir: Path, dest: Path) -> Path:
    """The shape's config and tokenizer with freshly initialised weights (seed 0)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(shape_dir), dtype=torch.float32)
    model.save_pretrained(dest, safe_serialization=True)
    AutoTokenizer.from_pretrained(shape_dir).save_pretrained(dest)
    return dest


def top_ops(prof, n: int = 12) -> list[dict]:
    rows = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:n]
    return [{"op": e.key, "calls": e.count, "self_cpu_ms": round(e.self_cpu_time_total / 1e3, 2),
             "device_ms": round(getattr(e, "self_device_time_total", 0) / 1e3, 2)} for e in rows]


def profile(fn) -> list[dict]:
    activities = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with torch.profiler.profile(activities=activities) as prof:
        fn()
    return top_ops(prof)


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


OUR_BACKENDS = _attention.ATTENTION_BACKENDS  # spillover's own choice, before any measurement changes it


def allow_cudnn(allowed: bool) -> None:
    """Put cuDNN attention back among the kernels our loops may use (PyTorch's default), or leave it out."""
    _attention.ATTENTION_BACKENDS = (*OUR_BACKENDS, "CUDNN_ATTENTION") if allowed else OUR_BACKENDS


def prompts(batch: int, filler: int) -> list[str]:
    """Prompts of about `filler` more tokens than the bare question: a fresh length = fresh shapes."""
    return [f"In two sentences, answer: {'and so on ' * (filler // 3)}what is worth knowing about topic {i}?" for i in range(batch)]


def decode_timings(model_dir: Path, batch: int, new_tokens: int) -> dict:
    lm = load(str(model_dir))
    generate(lm, prompts(4, 0), max_new_tokens=4, batch_size=4)  # warm-up
    out: dict = {"batch": batch, "new_tokens": new_tokens}
    # Random weights rarely emit a stop token, so every row runs the full cap: steps = new_tokens.
    for key, cudnn, filler in (("ours_cudnn_excluded", False, 20), ("ours_cudnn_allowed", True, 100)):
        allow_cudnn(cudnn)
        sync()
        t0 = time.perf_counter()
        gens = generate(lm, prompts(batch, filler), max_new_tokens=new_tokens, temperature=1.0, top_p=0.95, batch_size=batch)
        sync()
        out[f"{key}_ms_per_step"] = round(1e3 * (time.perf_counter() - t0) / max(g.n_tokens for g in gens), 2)
    allow_cudnn(False)
    enc = lm.tokenizer(prompts(batch, 180), return_tensors="pt", padding=True, padding_side="left").to(lm.model.device)
    sync()
    t0 = time.perf_counter()
    with torch.no_grad():
        lm.model.generate(**enc, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=True, top_p=0.95,
                          eos_token_id=stop_token_ids(lm), pad_token_id=lm.tokenizer.pad_token_id)
    sync()
    out["hf_generate_ms_per_step"] = round(1e3 * (time.perf_counter() - t0) / new_tokens, 2)
    out["profile_ours_8_steps"] = profile(lambda: generate(lm, prompts(batch, 20), max_new_tokens=8, temperature=1.0, top_p=0.95, batch_size=batch))
    return out


def sft_timings(model_dir: Path, workdir: Path, steps: int) -> dict:
    out: dict = {}
    settings = [(gc, cudnn) for gc in (True, False) for cudnn in (False, True)]
    for k, (checkpointing, cudnn) in enumerate(settings):
        records = [{"messages": [{"role": "user", "content": f"In two sentences, answer: {'and so on ' * (10 * k)}question {i}?"},
                                 {"role": "assistant", "content": "A short answer that runs for a sentence. " * (1 + i % 8)}]}
                   for i in range(64)]
        data = workdir / f"sft-{k}.jsonl"
        write_jsonl(data, records)
        run = workdir / f"sft-{k}"
        allow_cudnn(cudnn)
        train_sft(SFTConfig(model=str(model_dir), data=data, out=run, lr=3e-4, max_len=256, batch_size=4, max_steps=steps + 1,
                            save_steps=0, progress=False, resume=False, gradient_checkpointing=checkpointing))
        log = read_jsonl(run / "loss.jsonl")
        seconds = log[-1]["elapsed"] - log[0]["elapsed"]  # step 1 is warm-up
        tokens = log[-1]["tokens"] - log[0]["tokens"]
        out[f"checkpointing_{'on' if checkpointing else 'off'}_cudnn_{'allowed' if cudnn else 'excluded'}"] = {
            "ms_per_step": round(1e3 * seconds / (len(log) - 1), 1), "tokens_per_s": round(tokens / seconds, 1)}
        shutil.rmtree(run)
    allow_cudnn(False)
    cfg = SFTConfig(model=str(model_dir), data=workdir / "sft-0.jsonl", out=workdir / "sft-prof", lr=3e-4, max_len=256, batch_size=4,
                    max_steps=3, save_steps=0, progress=False, resume=False)
    out["profile_3_steps_with_load"] = profile(lambda: train_sft(cfg))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", default="embedded", help="a model spec or directory with config.json + tokenizer files")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=48)
    ap.add_argument("--sft-steps", type=int, default=10)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    shape = Path(args.shape) if Path(args.shape).is_dir() else resolve(args.shape)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = random_model(shape, Path(tmp) / "model")
        result = {
            "benchmark": "step_profile",
            "command": f"python benchmarks/step_profile.py --shape {args.shape} --batch {args.batch} --new-tokens {args.new_tokens}",
            "shape": shape_summary(shape),
            "device": device,
            "decode": decode_timings(model_dir, args.batch, args.new_tokens),
            "sft": sft_timings(model_dir, Path(tmp), args.sft_steps),
            "machine": machine(),
        }
    out = args.out or RESULTS / f"step_profile-{device}.json"
    write_json(out, result)
    print(f"wrote {out}")
    print({k: v for k, v in result["decode"].items() if not k.startswith("profile")})
    print({k: v for k, v in result["sft"].items() if not k.startswith("profile")})


def shape_summary(shape: Path) -> dict:
    from transformers import AutoConfig

    c = AutoConfig.from_pretrained(shape)
    return {"layers": c.num_hidden_layers, "hidden": c.hidden_size, "vocab": c.vocab_size}


if __name__ == "__main__":
    main()
