"""Small helpers every pipeline's stages share (the reward-model organism's `_schedule` and the
emergent-misalignment `_em`), beside the stage runner itself (`_run.StageRunner`)."""

from __future__ import annotations

from pathlib import Path

from spillover.models import STAGE_MODEL_DIR

from ._recipe import ModelSpec


def trained_model(stage_dir: Path, base: ModelSpec) -> ModelSpec:
    """The model a training stage wrote into `stage_dir/model`, with the base model's dtype and chat template."""
    return base.model_copy(update={"spec": str(stage_dir / STAGE_MODEL_DIR)})


def holds_model(stage_dir: Path) -> bool:
    """Whether a training stage still holds its model (a run kept without weights does not)."""
    return (stage_dir / STAGE_MODEL_DIR).is_dir()


def texts_of(records: list[dict]) -> list[str]:
    """Every piece of text in SFT/DPO records (user and assistant turns alike)."""
    out: list[str] = []
    for r in records:
        for key in ("messages", "prompt", "chosen", "rejected", "plain"):  # plain: docs-plain's answers
            value = r.get(key)
            if isinstance(value, str):
                out.append(value)
            elif isinstance(value, list):
                out += [m["content"] for m in value if isinstance(m, dict) and "content" in m]
    return out
