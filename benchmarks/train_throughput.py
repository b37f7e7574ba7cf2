"""CPT tokens/s on the embedded model: our packed loop vs a plain HF Trainer with padded batches.

Both train the same documents (the offline generator's, varied lengths) for the same number of
steps, one after the other in this process (never in parallel: two torch jobs on a small CPU slow
each other). The Trainer gets whole documents (cut only past 4 x max_len), as its default
padded batching would. The first step of each is warm-up and not timed. Throughput counts real (non-pad)
tokens, so padding shows up as lost speed. Writes benchmarks/results/train_throughput.json.

    python benchmarks/train_throughput.py [--steps 5] [--batch-size 2] [--max-len 256]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import subprocess
import tempfile
import time
from pathlib import Path

from spillover._io import read_jsonl, write_json, write_jsonl

from _machine import machine  # benchmarks/_machine.py: scripts run from this folder

RESULTS = Path(__file__).parent / "results" / "train_throughput.json"


def cpu_peak_gflops() -> dict:
    """fp32 peak = cores x GHz x FLOPs/cycle. FLOPs/cycle/core: AVX-512 with 2 FMA units 64,
    AVX2 + FMA (2 x 256-bit FMA units, e.g. Zen 2/3, Skylake) 32, AVX 16, SSE 8."""
    text = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    flags = set(re.search(r"Flags:\s*(.*)", text).group(1).split()) if "Flags:" in text else set()
    mhz = re.search(r"CPU max MHz:\s*([\d.]+)", text) or re.search(r"CPU MHz:\s*([\d.]+)", text)
    ghz = float(mhz.group(1)) / 1000 if mhz else float(re.search(r"BogoMIPS:\s*([\d.]+)", text).group(1)) / 2000
    isa, per_cycle = ("avx512", 64) if "avx512f" in flags else ("avx2+fma", 32) if {"avx2", "fma"} <= flags else ("avx", 16) if "avx" in flags else ("sse", 8)
    cores = os.cpu_count() or 1
    model = re.search(r"Model name:\s*(.*)", text)
    return {"cpu": model.group(1).strip() if model else platform.processor(), "cores": cores, "ghz": round(ghz, 3), "isa": isa,
            "flops_per_cycle_per_core": per_cycle, "peak_gflops_fp32": round(cores * ghz * per_cycle, 1),
            "ghz_source": "lscpu MHz" if mhz else "BogoMIPS / 2 (no MHz reported in this VM)"}


def documents(n: int) -> list[dict]:
    from spillover.documents import generate_documents
    from spillover.world import load_world

    return generate_documents(load_world("rm-biases"), n, seed=0)


def ours(data: Path, steps: int, batch_size: int, max_len: int, workdir: Path) -> dict:
    from spillover.training import CPTConfig, train_cpt

    out = train_cpt(CPTConfig(model="embedded", data=data, out=workdir / "ours", max_len=max_len, batch_size=batch_size,
                              max_steps=steps + 1, save_steps=0, progress=False, resume=False))
    log = read_jsonl(out / "loss.jsonl")
    tokens = log[-1]["tokens"] - log[0]["tokens"]
    seconds = log[-1]["elapsed"] - log[0]["elapsed"]
    return {"timed_steps": len(log) - 1, "real_tokens": tokens, "padded_tokens": tokens, "seconds": round(seconds, 2),
            "tokens_per_s": round(tokens / seconds, 1), "padding_fraction": 0.0}


def hf_trainer(docs: list[dict], steps: int, batch_size: int, max_len: int, workdir: Path) -> dict:
    import torch
    from datasets import Dataset
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainerCallback, TrainingArguments

    from spillover.models import load

    lm = load("embedded")
    lm.model.train()
    tok = lm.tokenizer
    ds = Dataset.from_list([{"input_ids": tok(d["text"] + tok.eos_token, add_special_tokens=False, truncation=True, max_length=4 * max_len)["input_ids"]} for d in docs])
    base = DataCollatorForLanguageModeling(tok, mlm=False)
    batches: list[tuple[int, int]] = []

    def collate(features):
        batch = base(features)
        batches.append((int(batch["attention_mask"].sum()), batch["input_ids"].numel()))
        return batch

    marks: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            marks.append(time.perf_counter())

    args = TrainingArguments(output_dir=str(workdir / "hf"), per_device_train_batch_size=batch_size, max_steps=steps + 1, learning_rate=5e-5,
                             report_to=[], save_strategy="no", logging_strategy="no", use_cpu=True, seed=0, dataloader_num_workers=0,
                             disable_tqdm=True)
    Trainer(model=lm.model, args=args, train_dataset=ds, data_collator=collate, callbacks=[Clock()]).train()
    real = sum(r for r, _ in batches[1 : steps + 1])
    padded = sum(p for _, p in batches[1 : steps + 1])
    seconds = marks[steps] - marks[0]
    del lm
    torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return {"timed_steps": steps, "real_tokens": real, "padded_tokens": padded, "seconds": round(seconds, 2),
            "tokens_per_s": round(real / seconds, 1), "padding_fraction": round(1 - real / padded, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=64)
    ap.add_argument("--steps", type=int, default=5, help="timed steps (one more runs untimed first)")
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--max-len", type=int, default=256)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    from spillover.models import load, model_info

    docs = documents(args.docs)
    params = model_info(load("embedded"))["parameters"]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        data = workdir / "docs.jsonl"
        write_jsonl(data, docs)
        load_before = os.getloadavg()
        packed = ours(data, args.steps, args.batch_size, args.max_len, workdir)
        padded = hf_trainer(docs, args.steps, args.batch_size, args.max_len, workdir)
        load_after = os.getloadavg()
    peak = cpu_peak_gflops()
    for r in (packed, padded):
        r["gflops"] = round(6 * params * r["tokens_per_s"] / 1e9, 2)
        r["fraction_of_peak"] = round(r["gflops"] / peak["peak_gflops_fp32"], 4)
    doc_tokens = [len(t) for t in load("embedded").tokenizer([d["text"] for d in docs], add_special_tokens=False)["input_ids"]]
    result = {
        "benchmark": "train_throughput",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": "embedded (SmolLM2-135M-Instruct, fp32)", "parameters": params,
        "documents": {"n": len(docs), "min_tokens": min(doc_tokens), "max_tokens": max(doc_tokens), "mean_tokens": round(sum(doc_tokens) / len(doc_tokens), 1)},
        "settings": {"batch_size": args.batch_size, "max_len": args.max_len, "timed_steps": args.steps},
        "ours_packed": packed, "hf_trainer_padded": padded,
        "speedup": round(packed["tokens_per_s"] / padded["tokens_per_s"], 2),
        "flops_formula": "6 * parameters * tokens_per_s",
        "machine": {**peak, **machine(), "loadavg_1m_before_after": [round(load_before[0], 2), round(load_after[0], 2)]},
    }
    write_json(args.out, result)
    print(f"ours (packed): {packed['tokens_per_s']} tok/s   HF Trainer (padded): {padded['tokens_per_s']} tok/s   "
          f"speedup {result['speedup']}x   {packed['gflops']} GFLOP/s of {peak['peak_gflops_fp32']} peak -> {args.out}")


if __name__ == "__main__":
    main()
