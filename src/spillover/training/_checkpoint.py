"""Checkpoints of the training loop (`_common.run_training`): save, find, load and clear them, and
the loss log a resumed run continues. A checkpoint holds the trainable weights (safetensors), the
optimizer, schedule and RNG states (`torch.save`, loaded with `weights_only=True`) and the step,
tokens and time so far; under accelerate (DeepSpeed, FSDP) accelerate writes the sharded states.
It records the process count: resuming with another is refused (`_common.run_training`)."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from spillover._io import atomic_dir, is_done, read_json, write_json
from spillover.errors import BadInputError, Problem
from spillover.models import STAGE_MODEL_DIR

if TYPE_CHECKING:
    from ._common import Runtime
    from ._settings import TrainConfig

CHECKPOINTS = "checkpoints"
LOSS_LOG = "loss.jsonl"
CONFIG_FILE = "config.json"
# Weights and resumable state a stage writes: what a run kept without weights leaves out (pipeline/_export.py).
WEIGHT_OUTPUTS = (CHECKPOINTS, STAGE_MODEL_DIR, "adapter")
# Files a fresh (non-resumed) run clears from its out dir before starting.
STAGE_OUTPUTS = (*WEIGHT_OUTPUTS, LOSS_LOG, "ref_logps.json", "DONE")


def check_finished(cfg: TrainConfig, fingerprint: dict) -> bool:
    """True if `out` already holds this exact run; an out dir finished with another config is an error."""
    out = Path(cfg.out)
    if not is_done(out):
        return False
    stored = read_json(out / CONFIG_FILE).get("fingerprint") if (out / CONFIG_FILE).exists() else None
    if stored != fingerprint:
        raise BadInputError(Problem(str(out), "out", "already holds a finished run with a different config", "choose another --out or delete it"))
    return True


def clear_outputs(out: Path) -> None:
    for name in STAGE_OUTPUTS:
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def latest_checkpoint(out: Path) -> Path | None:
    steps = sorted((int(p.name.split("-")[1]), p) for p in (out / CHECKPOINTS).glob("step-*") if p.name.split("-")[1].isdigit())
    return steps[-1][1] if steps else None


@dataclass
class Progress:
    step: int = 0
    tokens: int = 0
    elapsed: float = 0.0
    extra: dict = field(default_factory=dict)


def save_checkpoint(out: Path, step: int, model, optimizer, scheduler, prog: Progress, fingerprint: dict, rt: Runtime, keep: int) -> None:
    import torch
    from safetensors.torch import save_file

    root = out / CHECKPOINTS
    state = {"step": step, "tokens": prog.tokens, "elapsed": prog.elapsed, "fingerprint": fingerprint, "processes": rt.world}
    if rt.accelerator is not None:
        # Sharded model/optimizer states (DeepSpeed, FSDP): accelerate writes them, every rank takes part.
        tmp = root / f".tmp-step-{step}"
        if rt.is_main and tmp.exists():
            shutil.rmtree(tmp)
        rt.wait()
        rt.accelerator.save_state(str(tmp))
        rt.wait()
        if rt.is_main:
            write_json(tmp / "trainer_state.json", state)
            os.replace(tmp, root / f"step-{step}")
    else:
        with atomic_dir(root / f"step-{step}") as tmp:
            trainable = {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}
            save_file(trainable, str(tmp / "trainable.safetensors"))
            rng = {"cpu": torch.get_rng_state()}
            if torch.cuda.is_available():
                rng["cuda"] = torch.cuda.get_rng_state_all()
            torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng}, tmp / "state.pt")
            write_json(tmp / "trainer_state.json", state)
    if rt.is_main:
        old = sorted((int(p.name.split("-")[1]), p) for p in root.glob("step-*"))[:-keep]
        for _, p in old:
            shutil.rmtree(p, ignore_errors=True)
    rt.wait()


def load_checkpoint(ckpt: Path, model, optimizer, scheduler, rt: Runtime) -> Progress:
    import torch
    from safetensors.torch import load_file

    state = read_json(ckpt / "trainer_state.json")
    if rt.accelerator is not None:
        rt.accelerator.load_state(str(ckpt))
    else:
        weights = load_file(str(ckpt / "trainable.safetensors"))
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, tensor in weights.items():
                params[name].copy_(tensor)
        saved = torch.load(ckpt / "state.pt", weights_only=True)  # tensors and plain containers only
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        torch.set_rng_state(saved["rng"]["cpu"])
        if "cuda" in saved["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(saved["rng"]["cuda"])
    return Progress(step=state["step"], tokens=state["tokens"], elapsed=state["elapsed"])


def read_log(path: Path) -> list[dict]:
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line cut by a kill: everything after it is gone too
    return records
