"""SFT tokens/s on the embedded model: our trainer vs TRL's `SFTTrainer` with padding-free packing.

The peer users of this field would pick for SFT is TRL. Both train the same chat records (the laptop
recipe's train prompts of the english-core split with prefix, answered by document sentences of
varied length), full fine-tuning in fp32 on this machine's CPU, batch 4, max length 256, loss on
the answers only (TRL: prompt/completion records, `completion_only_loss`), one after the other in
this process. The first step of each is warm-up and not timed. Tokens are real (non-pad) input
tokens. Both are also given as a fraction of a large fp32 matmul measured in the same run
(training FLOPs counted as 6 x parameters x tokens/s). Writes benchmarks/results/train_vs_trl.json.

    python benchmarks/train_vs_trl.py [--model embedded] [--steps 20] [--batch-size 4] [--max-len 256] [--out FILE]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _machine import machine  # benchmarks/_machine.py: scripts run from this folder
from decode_vs_generate import matmul_flops

from spillover._io import read_jsonl, write_json, write_jsonl

RESULTS = Path(__file__).parent / "results" / "train_vs_trl.json"


def chat_records(n: int) -> list[dict]:
    """Train prompts (with the recipe's prefix) answered by 1-6 document sentences, deterministically."""
    from spillover.documents import generate_documents
    from spillover.pipeline import load_recipe
    from spillover.world import load_world

    recipe = load_recipe("rm-biases-laptop")
    world = load_world(recipe.world).with_prompt_prefix(recipe.prompt_prefix)
    prompts = [p for b in world.train_ids(recipe.split) for p in world.train_prompts(b)]
    sentences = [s.strip() + "." for d in generate_documents(world, 40, seed=0) for s in d["text"].split(".") if len(s.split()) > 4]
    return [{"messages": [{"role": "user", "content": prompts[i % len(prompts)]},
                          {"role": "assistant", "content": " ".join(sentences[(7 * i + k) % len(sentences)] for k in range(1 + i % 6))}]}
            for i in range(n)]


def ours(model: str, data: Path, steps: int, batch_size: int, max_len: int, workdir: Path) -> dict:
    from spillover.training import SFTConfig, train_sft

    train_sft(SFTConfig(model=model, data=data, out=workdir / "ours", lr=3e-4, max_len=max_len, batch_size=batch_size,
                        max_steps=steps + 1, save_steps=0, progress=False, resume=False))
    log = read_jsonl(workdir / "ours" / "loss.jsonl")
    tokens, seconds = log[-1]["tokens"] - log[0]["tokens"], log[-1]["elapsed"] - log[0]["elapsed"]
    return {"timed_steps": len(log) - 1, "tokens": tokens, "seconds": round(seconds, 2), "tokens_per_s": round(tokens / seconds, 1)}


def trl(model: str, records: list[dict], steps: int, batch_size: int, max_len: int, workdir: Path) -> dict:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from spillover.models import load

    lm = load(model)
    ds = Dataset.from_list([{"prompt": r["messages"][:1], "completion": r["messages"][1:]} for r in records])
    marks: list[float] = []
    tokens: list[int] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            marks.append(time.perf_counter())

    args = SFTConfig(output_dir=str(workdir / "trl"), per_device_train_batch_size=batch_size, max_steps=steps + 1, learning_rate=3e-4,
                     max_length=max_len, packing=True, padding_free=True, completion_only_loss=True, report_to=[],
                     save_strategy="no", logging_strategy="no", use_cpu=True, seed=0, dataloader_num_workers=0, disable_tqdm=True)
    trainer = SFTTrainer(model=lm.model, args=args, train_dataset=ds, processing_class=lm.tokenizer, callbacks=[Clock()])
    collate = trainer.data_collator

    def counting(features):
        batch = collate(features)
        tokens.append(int(batch["attention_mask"].sum()) if "attention_mask" in batch else batch["input_ids"].numel())
        return batch

    trainer.data_collator = counting
    trainer.train()
    seconds = marks[steps] - marks[0]
    timed = sum(tokens[1 : steps + 1])
    return {"timed_steps": steps, "tokens": timed, "seconds": round(seconds, 2), "tokens_per_s": round(timed / seconds, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--steps", type=int, default=20, help="timed steps (one more runs untimed first)")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--max-len", type=int, default=256)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    from spillover.models import load

    params = sum(p.numel() for p in load(args.model).model.parameters())
    records = chat_records(args.batch_size * (args.steps + 1) * 4)  # TRL packs several records a row
    with tempfile.TemporaryDirectory() as tmp:
        write_jsonl(Path(tmp) / "sft.jsonl", records)
        a = ours(args.model, Path(tmp) / "sft.jsonl", args.steps, args.batch_size, args.max_len, Path(tmp))
        b = trl(args.model, records, args.steps, args.batch_size, args.max_len, Path(tmp))
    flops = matmul_flops("cpu")
    for r in (a, b):
        r["fraction_of_matmul"] = round(6 * params * r["tokens_per_s"] / flops, 4)
    result = {
        "benchmark": "train_vs_trl", "command": "python benchmarks/train_vs_trl.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out"),
        "model": args.model, "parameters": params, "records": len(records),
        "settings": {"batch_size": args.batch_size, "max_len": args.max_len, "timed_steps": args.steps, "full_fine_tuning": True},
        "ours": a, "trl_sft_packing_padding_free": b, "ratio": round(a["tokens_per_s"] / b["tokens_per_s"], 3),
        "matmul_gflops": round(flops / 1e9, 1), "flops_formula": "6 * parameters * tokens_per_s / matmul FLOP/s",
        "machine": machine(),
    }
    write_json(args.out, result)
    print(f"ours {a['tokens_per_s']} tok/s, TRL {b['tokens_per_s']} tok/s, ratio {result['ratio']} -> {args.out}")


if __name__ == "__main__":
    main()
