"""The training loop shared by CPT, SFT and DPO: optimizer, schedule, resume, loss log (checkpoints: _checkpoint.py).

A plain loop (nanoGPT style) rather than HF Trainer: every stage hands it a list of micro-batches
per epoch and a loss function, and the loop owns everything else. Data order is a pure function of
(seed, epoch), so a checkpoint only needs the optimizer step to know where the data stands.

Single process (CPU or one GPU) runs without accelerate. Under `accelerate launch` (several
processes, DeepSpeed or FSDP) the same loop goes through `accelerate.Accelerator` for device
placement, gradient accumulation, mixed precision and sharded checkpoints.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spillover._io import atomic_dir, locked_dir, mark_done, read_json, write_json, write_jsonl
from spillover.errors import BadInputError, Problem, TrainingDivergedError
from spillover.models import STAGE_MODEL_DIR, attention_kernels

from ._checkpoint import (
    CONFIG_FILE,
    LOSS_LOG,
    Progress,
    clear_outputs,
    latest_checkpoint,
    load_checkpoint,
    read_log,
    save_checkpoint,
)
from ._settings import TrainConfig


@dataclass
class Batch:
    """One micro-batch. `units` is what the loss is averaged over (label tokens, or DPO pairs)."""

    tensors: dict[str, Any]
    units: int
    tokens: int  # input tokens processed, for throughput

    def to(self, device) -> dict[str, Any]:
        return {k: v.to(device) if hasattr(v, "to") else v for k, v in self.tensors.items()}


LossFn = Callable[[Any, dict[str, Any]], tuple[Any, dict[str, float]]]


@dataclass
class Runtime:
    """Where the loop runs: one process, or several under `accelerate launch`."""

    device: Any
    accelerator: Any = None
    rank: int = 0
    world: int = 1
    bf16: bool = False  # the forward runs in bf16 (so a frozen LoRA base may be stored in bf16)
    autocast: bool = False  # bf16 through our own torch.autocast (not accelerate's mixed precision)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wait(self) -> None:
        if self.accelerator is not None:
            self.accelerator.wait_for_everyone()


def launched_by_accelerate() -> bool:
    env = os.environ
    return int(env.get("WORLD_SIZE", "1")) > 1 or "true" in (env.get("ACCELERATE_USE_DEEPSPEED"), env.get("ACCELERATE_USE_FSDP"))


def holds_output(train: Callable[[Any], Path]) -> Callable[[Any], Path]:
    """Run a trainer holding a lock on `cfg.out`, so two trainers never write one directory.

    Under `accelerate launch` every rank runs the trainer; the first (RANK 0) holds the lock for all.
    """

    @functools.wraps(train)
    def locked(cfg):
        first_rank = int(os.environ.get("RANK", "0")) == 0
        with locked_dir(cfg.out) if first_rank else contextlib.nullcontext():
            return train(cfg)

    return locked


def make_runtime(cfg: TrainConfig) -> Runtime:
    import torch

    cuda = torch.cuda.is_available()
    bf16 = cuda if cfg.bf16 is None else cfg.bf16
    if launched_by_accelerate():
        from accelerate import Accelerator

        # step_scheduler_with_optimizer=False: otherwise accelerate steps the schedule once per process
        # at every optimizer step (it assumes the schedule was sized for one process's batches); ours
        # counts optimizer steps. cpu: without CUDA, torchrun's processes train on the CPU over gloo
        # (accelerate's own MULTI_CPU launch needs mpirun).
        acc = Accelerator(gradient_accumulation_steps=cfg.grad_accum, step_scheduler_with_optimizer=False, cpu=not cuda)
        if acc.mixed_precision == "bf16":  # the accelerate config's mixed precision wins; else the stage's bf16
            return Runtime(acc.device, acc, acc.process_index, acc.num_processes, bf16=True)
        return Runtime(acc.device, acc, acc.process_index, acc.num_processes, bf16=bf16, autocast=bf16)
    return Runtime(torch.device("cuda" if cuda else "cpu"), bf16=bf16, autocast=bf16)


def load_for_training(cfg: TrainConfig, rt: Runtime):
    """Load the model to train: fp32 master weights for full FT, a LoRA-wrapped base otherwise."""
    import torch

    from spillover.models import load

    on_cuda = str(rt.device).startswith("cuda")
    # Full FT keeps fp32 weights (bf16 only under autocast); a frozen LoRA base can live in bf16.
    dtype = torch.bfloat16 if (cfg.lora_r and rt.bf16) else torch.float32
    device = "cpu" if rt.accelerator is not None else str(rt.device)
    lm = load(cfg.model, device=device, dtype=dtype, chat_template=cfg.chat_template)
    model = lm.model
    model.config.use_cache = False
    if cfg.lora_r:
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(r=cfg.lora_r, lora_alpha=2 * cfg.lora_r, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
        model = get_peft_model(model, lora)  # adapters are created in fp32
    if cfg.gradient_checkpointing if cfg.gradient_checkpointing is not None else on_cuda:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    lm.model = model
    return lm


def read_records(path: Path, stage: str, check: Callable[[dict], str | None]) -> list[dict]:
    """Read a JSONL data file; records failing `check` are one error line: the first, and how many more."""
    from spillover._io import read_jsonl

    path = Path(path)
    if not path.is_file():
        raise BadInputError(Problem(str(path), "data", "file not found", f"pass the {stage} JSONL with --data"))
    records = read_jsonl(path)
    problems = [(f"line {i}", msg) for i, r in enumerate(records, 1) if (msg := check(r))]
    if problems:
        where, message = problems[0]
        more = f" ({len(problems) - 1} more records have problems)" if len(problems) > 1 else ""
        raise BadInputError(Problem(str(path), where, message + more, f"one {stage} record per line (record formats: docs/architecture.md)"))
    if not records:
        raise BadInputError(Problem(str(path), "data", "no records", "the file must hold at least one JSON object per line"))
    return records


def _optimizer(model, cfg: TrainConfig):
    import torch

    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)  # no decay on norms and biases
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # Fused AdamW (one kernel over all tensors) as HF Trainer uses: the per-tensor loop costs
    # seconds a step on a small CPU, more than a short step's forward and backward.
    device = next(model.parameters()).device.type
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.lr, fused=device in ("cpu", "cuda"))


def _schedule(optimizer, total_steps: int, warmup_ratio: float):
    """Linear warmup, then cosine decay to 10% of the peak."""
    import torch

    warmup = max(1, round(total_steps * warmup_ratio)) if warmup_ratio > 0 else 0

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _step_group(batches: list[Batch], index: int, rt: Runtime, grad_accum: int) -> tuple[list[tuple[Batch, float]], int]:
    """This rank's micro-batches for optimizer step `index` of an epoch, each with its weight, and the
    group's total units.

    A step's group is the grad_accum × world micro-batches that one process with grad_accum × world
    accumulation steps would take, dealt out by rank, so N processes train the model one process does.
    Under accelerate every rank must run grad_accum micro-batches (gradient sync counts them): a rank
    short of them in an epoch's last group runs a copy of the group's first batch at weight 0, which
    adds nothing to the gradient (padding with real batches, as DistributedSampler does, would count
    them twice).
    """
    size = grad_accum * rt.world
    group = batches[index * size : (index + 1) * size]
    mine = [(batch, 1.0) for batch in group[rt.rank :: rt.world]]
    if rt.accelerator is not None:
        mine += [(group[0], 0.0)] * (grad_accum - len(mine))
    return mine, sum(b.units for b in group)


def run_training(
    cfg: TrainConfig,
    stage: str,
    lm,
    rt: Runtime,
    fingerprint: dict,
    epoch_batches: Callable[[int], list[Batch]],
    loss_fn: LossFn,
    setup: Callable[[Any], None] | None = None,
) -> Path:
    """Train `lm.model` and write out/{model,adapter,loss.jsonl,config.json,checkpoints,DONE}.

    `epoch_batches(epoch)` must return the same number of micro-batches for every epoch.
    `setup(model)` runs once the model sits on its device, before the first step (DPO uses it
    to precompute reference log-probs).
    """
    import torch
    from tqdm.auto import tqdm

    out = Path(cfg.out)
    ckpt = latest_checkpoint(out) if cfg.resume else None
    if ckpt is not None:
        saved = read_json(ckpt / "trainer_state.json")
        if saved.get("fingerprint") != fingerprint:
            raise BadInputError(Problem(str(ckpt), "config", "checkpoint was made with a different config", "rerun with --no-resume to start over, or choose another --out"))
        if saved.get("processes", 1) != rt.world:  # another global batch, and another checkpoint layout
            raise BadInputError(Problem(str(ckpt), "processes", f"checkpoint was made by {saved.get('processes', 1)} processes, this run has {rt.world}",
                                        "resume with as many processes, or rerun with --no-resume to start over"))
    elif rt.is_main:
        clear_outputs(out)
    rt.wait()
    if rt.is_main:
        write_json(out / CONFIG_FILE, {"stage": stage, "config": cfg.model_dump(mode="json"), "fingerprint": fingerprint})

    model = lm.model
    first = epoch_batches(0)
    if not first:
        raise BadInputError(Problem(str(cfg.data), "data", "no training batches", "add data or lower --max-len"))
    steps_per_epoch = math.ceil(len(first) / (cfg.grad_accum * rt.world))
    total = steps_per_epoch * cfg.epochs
    if cfg.max_steps:
        total = min(total, cfg.max_steps)
    optimizer = _optimizer(model, cfg)
    scheduler = _schedule(optimizer, total, cfg.warmup_ratio)
    if rt.accelerator is not None:
        model, optimizer, scheduler = rt.accelerator.prepare(model, optimizer, scheduler)
    model.train()
    prog = Progress()
    if ckpt is not None:
        prog = load_checkpoint(ckpt, model, optimizer, scheduler, rt)
    else:
        torch.manual_seed(cfg.seed)
    if setup is not None:
        setup(model)

    log_path = out / LOSS_LOG
    if rt.is_main:  # keep the log consistent with the checkpoint we resume from
        kept = [r for r in read_log(log_path) if r["step"] <= prog.step]
        write_jsonl(log_path, kept)
    autocast = (lambda: torch.autocast(device_type=rt.device.type, dtype=torch.bfloat16)) if rt.autocast else contextlib.nullcontext
    # accelerator.backward divides by grad_accum and DDP/DeepSpeed average over ranks; scaling the
    # loss back up keeps the gradient = sum over the whole group / the group's units, as on one process.
    loss_scale = cfg.grad_accum * rt.world if rt.accelerator is not None else 1

    bar = tqdm(total=total, initial=prog.step, desc=f"train {stage}", unit="step", disable=not (cfg.progress and rt.is_main), dynamic_ncols=True)
    session_start, session_tokens = time.perf_counter(), 0
    elapsed_before = prog.elapsed
    cached_epoch, batches = 0, first
    log = log_path.open("a", encoding="utf-8") if rt.is_main else None
    try:
        for step in range(prog.step, total):
            epoch, index = divmod(step, steps_per_epoch)
            if epoch != cached_epoch:
                cached_epoch, batches = epoch, epoch_batches(epoch)
            mine, units = _step_group(batches, index, rt, cfg.grad_accum)
            step_loss, metrics, step_tokens = 0.0, {}, 0
            for batch, weight in mine:
                ctx = rt.accelerator.accumulate(model) if rt.accelerator is not None else contextlib.nullcontext()
                with ctx, attention_kernels():
                    with autocast():
                        loss_sum, batch_metrics = loss_fn(model, batch.to(rt.device))
                    loss = loss_sum * weight / units
                    if rt.accelerator is not None:
                        rt.accelerator.backward(loss * loss_scale)
                    else:
                        loss.backward()
                step_loss += loss.item()
                step_tokens += batch.tokens if weight else 0
                for k, v in batch_metrics.items():
                    metrics[k] = metrics.get(k, 0.0) + weight * v / units
            if rt.accelerator is not None:
                grad_norm = rt.accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                step_loss, step_tokens, metrics = _sum_over_ranks(rt, step_loss, step_tokens, metrics)
            else:
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            # (DeepSpeed clips inside its own step and returns no norm.)
            _stop_if_diverged(cfg, step + 1, {"loss": step_loss, **({"gradient norm": float(grad_norm)} if grad_norm is not None else {})})
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)

            prog.step = step + 1
            prog.tokens += step_tokens
            session_tokens += step_tokens
            session = time.perf_counter() - session_start
            prog.elapsed = elapsed_before + session
            if log is not None:
                record = {"step": prog.step, "epoch": epoch, "loss": round(step_loss, 6), "lr": lr, "tokens": prog.tokens,
                          "tokens_per_s": round(session_tokens / max(session, 1e-9), 1), "elapsed": round(prog.elapsed, 3)}
                record.update({k: round(v, 6) for k, v in metrics.items()})
                log.write(json.dumps(record) + "\n")
                log.flush()
            bar.set_postfix(loss=f"{step_loss:.4f}", tok_s=f"{session_tokens / max(session, 1e-9):.0f}")
            bar.update(1)
            if cfg.save_steps and prog.step % cfg.save_steps == 0 and prog.step < total:
                save_checkpoint(out, prog.step, model, optimizer, scheduler, prog, fingerprint, rt, cfg.keep_checkpoints)
    finally:
        bar.close()
        if log is not None:
            log.close()

    if rt.accelerator is None:  # the last step's update is in no loss yet (sharded weights: the loss check must do)
        _stop_if_diverged(cfg, prog.step, {"largest |weight|": _largest_weight(model)})
    _save_final(cfg, lm, model, rt)
    if rt.is_main:
        last = read_log(log_path)[-1:] or [{}]
        mark_done(out, {"stage": stage, "steps": prog.step, "tokens": prog.tokens, "final_loss": last[0].get("loss"), "seconds": round(prog.elapsed, 2),
                        "processes": rt.world})
    rt.wait()
    return out


def _sum_over_ranks(rt: Runtime, loss: float, tokens: int, metrics: dict[str, float]) -> tuple[float, int, dict[str, float]]:
    """The step's loss, tokens and metrics summed over every rank's share of the group (one all-reduce)."""
    import torch

    values = rt.accelerator.reduce(torch.tensor([loss, tokens, *metrics.values()], dtype=torch.float64, device=rt.device), "sum").tolist()
    return values[0], round(values[1]), dict(zip(metrics, values[2:]))


def _stop_if_diverged(cfg: TrainConfig, step: int, values: dict[str, float]) -> None:
    """Raise TrainingDivergedError if a value is inf or NaN: training on it would only save garbage."""
    bad = [f"{name} = {value}" for name, value in values.items() if not math.isfinite(value)]
    if bad:
        raise TrainingDivergedError(
            f"{cfg.out}: training diverged at step {step} ({', '.join(bad)}); nothing was marked done "
            f"(fix: lower the learning rate, now {cfg.lr:g}, or raise warmup_ratio)"
        )


def _largest_weight(model) -> float:
    """The largest |trainable weight| (nan if any is nan): one pass over the trainable parameters."""
    largest = [float(p.detach().abs().max()) for p in model.parameters() if p.requires_grad]
    return next((x for x in largest if not math.isfinite(x)), max(largest))  # max() would skip a nan


def _save_final(cfg: TrainConfig, lm, model, rt: Runtime) -> None:
    """out/model (full weights; LoRA merged) and, for LoRA, out/adapter."""
    from ._merge import merge

    out = Path(cfg.out)
    state_dict = None
    if rt.accelerator is not None:
        state_dict = rt.accelerator.get_state_dict(model)  # gathers ZeRO-3 / FSDP shards
        model = rt.accelerator.unwrap_model(model)
    if rt.is_main:
        if cfg.lora_r:
            with atomic_dir(out / "adapter") as tmp:
                model.save_pretrained(tmp, state_dict=state_dict)
                lm.tokenizer.save_pretrained(tmp)
            if cfg.save_merged:
                merge(out / "adapter", out / STAGE_MODEL_DIR)
        else:
            with atomic_dir(out / STAGE_MODEL_DIR) as tmp:
                model.save_pretrained(tmp, state_dict=state_dict, safe_serialization=True)
                lm.tokenizer.save_pretrained(tmp)
    rt.wait()
