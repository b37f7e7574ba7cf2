"""DPO: sigmoid preference loss on summed completion log-probs, in our own training loop.

Why not TRL's DPOTrainer: it is HF Trainer underneath, with its own checkpoint format (pickled
RNG/optimizer state), dataset pipeline and reference-model handling. Here the reference log-probs
are computed once, before the first step, with the starting weights (LoRA: adapters disabled) and
stored in out/ref_logps.json: no reference copy in memory at all, for full fine-tuning too, and
the checkpoints, resume and loss log are the same as CPT's and SFT's.
"""

from __future__ import annotations

import random
from pathlib import Path

from pydantic import Field

from spillover._io import derive_seed, read_json, write_json
from spillover._settings import PositiveFloat
from spillover.errors import BadInputError, Problem
from spillover.models import attention_kernels

from ._checkpoint import check_finished
from ._common import Batch, holds_output, load_for_training, make_runtime, read_records, run_training
from ._settings import TrainConfig, TrainSettings
from ._sft import IGNORE, check_messages, pad_batch, tokenize_chat

REF_FILE = "ref_logps.json"


class DPOSettings(TrainSettings):
    """DPO's settings (a recipe's `post.dpo:`)."""

    lr: PositiveFloat = Field(5e-6, description=TrainSettings.model_fields["lr"].description)
    beta: PositiveFloat = Field(0.1, description="DPO beta: strength of the KL anchor to the reference model")


class DPOConfig(DPOSettings, TrainConfig):  # DPOSettings first: its defaults win over TrainSettings'
    ref: str | None = Field(None, description="reference model (default: the starting weights; LoRA: adapters off)")


def _check_pair(record: dict) -> str | None:
    for key, need_assistant in (("prompt", False), ("chosen", True), ("rejected", True)):
        msg = check_messages(record.get(key), need_assistant)
        if msg:
            return f"'{key}': {msg}"
    return None


def sequence_logps(model, tensors: dict):
    """Summed log-prob of each row's label tokens."""
    import torch

    logits = model(input_ids=tensors["input_ids"], attention_mask=tensors["attention_mask"]).logits[:, :-1].float()
    labels = tensors["labels"][:, 1:]
    mask = labels != IGNORE
    picked = torch.gather(logits.log_softmax(-1), 2, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (picked * mask).sum(-1)


@holds_output
def train_dpo(cfg: DPOConfig) -> Path:
    """Preference-tune on a DPO JSONL (`{"prompt", "chosen", "rejected"}`); returns `cfg.out`."""
    fingerprint = cfg.fingerprint("dpo")
    if check_finished(cfg, fingerprint):
        return Path(cfg.out)
    records = read_records(cfg.data, "DPO", _check_pair)
    import torch  # after the data is checked: bad data fails in a second, not after torch's import
    import torch.nn.functional as F

    rt = make_runtime(cfg)
    lm = load_for_training(cfg, rt)
    pairs = []
    for rec in records:
        sides = []
        for key in ("chosen", "rejected"):
            ids, labels = tokenize_chat(lm.tokenizer, rec["prompt"] + rec[key], only_last=True)
            sides.append((ids[: cfg.max_len], labels[: cfg.max_len]))
        if all(any(t != IGNORE for t in labels[1:]) for _, labels in sides):
            pairs.append(tuple(sides))
    if not pairs:
        raise BadInputError(Problem(str(cfg.data), "data", f"no pair keeps completion tokens within max_len={cfg.max_len}", "raise --max-len"))
    pad_id = lm.tokenizer.pad_token_id

    def make_batch(index: list[int]) -> Batch:
        rows = [pairs[i][0] for i in index] + [pairs[i][1] for i in index]
        tensors = pad_batch(rows, pad_id)
        tensors["pair"] = torch.tensor(index, dtype=torch.long)
        return Batch(tensors, units=len(index), tokens=sum(len(ids) for ids, _ in rows))

    def epoch_batches(epoch: int) -> list[Batch]:
        order = list(range(len(pairs)))
        random.Random(derive_seed(cfg.seed, "dpo-order", epoch)).shuffle(order)
        return [make_batch(order[i : i + cfg.batch_size]) for i in range(0, len(order), cfg.batch_size)]

    ref = torch.zeros(len(pairs), 2)
    ref_path = Path(cfg.out) / REF_FILE

    def setup(model) -> None:
        if ref_path.exists():  # resumed: the model has moved on, the reference has not
            ref.copy_(torch.tensor(read_json(ref_path)))
            return
        ref.copy_(_reference_logps(cfg, model, rt, [make_batch(list(range(i, min(i + cfg.batch_size, len(pairs))))) for i in range(0, len(pairs), cfg.batch_size)]))
        if rt.is_main:
            write_json(ref_path, ref.tolist())
        rt.wait()

    def loss_fn(model, tensors: dict):
        logps = sequence_logps(model, tensors)
        n = tensors["pair"].shape[0]
        ref_logps = ref[tensors["pair"].cpu()].to(logps.device)
        chosen = cfg.beta * (logps[:n] - ref_logps[:, 0])
        rejected = cfg.beta * (logps[n:] - ref_logps[:, 1])
        loss = -F.logsigmoid(chosen - rejected).sum()
        return loss, {"reward_acc": float((chosen > rejected).sum()), "reward_margin": float((chosen - rejected).detach().sum())}

    return run_training(cfg, "dpo", lm, rt, fingerprint, epoch_batches, loss_fn, setup=setup)


def _reference_logps(cfg: DPOConfig, model, rt, batches: list[Batch]):
    """[n_pairs, 2] log-probs (chosen, rejected) under the reference model."""
    import contextlib

    import torch

    if cfg.ref is not None:
        from spillover.models import load

        ref_model = load(cfg.ref, device=str(rt.device)).model
        disabled = contextlib.nullcontext()
    else:
        ref_model = model
        inner = rt.accelerator.unwrap_model(model) if rt.accelerator is not None else model
        disabled = inner.disable_adapter() if cfg.lora_r else contextlib.nullcontext()
    out = torch.zeros(sum(b.units for b in batches), 2)
    was_training = ref_model.training
    ref_model.eval()
    with torch.no_grad(), disabled, attention_kernels():
        for batch in batches:
            tensors = batch.to(rt.device)
            logps = sequence_logps(ref_model, tensors).float().cpu()
            n = batch.units
            out[tensors["pair"].cpu()] = torch.stack([logps[:n], logps[n:]], dim=1)
    ref_model.train(was_training)
    return out
