"""The trainer settings, declared once: `TrainSettings` is what a recipe may set for a training
stage, `TrainConfig` what one trainer call takes (pipeline/_recipe.py, cli/_options.py and
docs/training.md derive from them)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from spillover._io import file_hash
from spillover._settings import Fraction, NonNegFloat, NonNegInt, PositiveFloat, PositiveInt


class TrainSettings(BaseModel):
    """The trainer settings a recipe may set (its `cpt:`, `post.sft:`, `post.dpo:`), declared once.

    The recipe's specs are these classes (pipeline/_recipe.py), the trainers' configs extend them,
    and `spillover train` derives its options from the fields (cli/_options.py): name, default and
    description here are the recipe field, the Python default and the `--help` line alike.
    A stage whose default differs (CPT, SFT and DPO learning rates) declares it on its own subclass.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # every float finite, declared or not

    lr: PositiveFloat = Field(5e-5, description="peak learning rate (linear warmup, cosine decay to 10%)")
    epochs: PositiveInt = Field(1, description="passes over the data")
    max_len: int = Field(512, ge=8, description="tokens per sequence (CPT packs documents to it; longer chats are cut)")
    batch_size: PositiveInt = Field(4, description="sequences per micro-batch, per process")
    grad_accum: PositiveInt = Field(1, description="micro-batches of gradient accumulation per optimizer step")
    lora_r: NonNegInt = Field(0, description="LoRA rank (alpha = 2r, all linear layers); 0 = full fine-tuning")
    warmup_ratio: Fraction = Field(0.05, description="share of the optimizer steps spent warming the learning rate up")
    weight_decay: NonNegFloat = Field(0.0, description="AdamW weight decay (not on norms and biases)")
    max_grad_norm: PositiveFloat = Field(1.0, description="clip the gradient to this norm")
    max_steps: PositiveInt | None = Field(None, description="cap on optimizer steps (default: epochs decide)")
    save_steps: NonNegInt = Field(100, description="checkpoint every N optimizer steps (0 = never)")
    gradient_checkpointing: bool | None = Field(None, description="recompute activations in the backward pass (default: on for CUDA)")
    bf16: bool | None = Field(None, description="bfloat16 autocast (default: on for CUDA)")


class TrainConfig(TrainSettings):
    """A trainer's whole config: the settings, plus what one call trains (model, data, out, seed)."""

    model: str = Field("embedded", description="embedded | tiny | DIR (a previous stage's out dir works) | hub id")
    chat_template: str | None = Field(
        None, description="chat template for models without one (base models) or to replace theirs: 'plain' (User:/Assistant: turns) or a Jinja file"
    )
    data: Path = Field(description="JSONL training data")
    out: Path = Field(description="stage directory to write")
    seed: int = Field(0, description="seed for initialisation, shuffling and dropout")
    keep_checkpoints: PositiveInt = Field(2, description="checkpoints kept (the latest ones)")
    save_merged: bool = Field(True, description="LoRA: merge adapters into out/model (out/adapter is kept)")
    resume: bool = Field(True, description="continue from the latest checkpoint if there is one")
    progress: bool = Field(True, description="show a progress bar")

    def fingerprint(self, stage: str) -> dict:
        """What decides the result: the config minus bookkeeping, plus the data file's hash."""
        # chat_template only when set: configs from before the option keep their fingerprints.
        unset = {"chat_template"} if self.chat_template is None else set()
        cfg = self.model_dump(mode="json", exclude={"resume", "progress", "out", "keep_checkpoints", *unset})
        return {"stage": stage, **cfg, "data_sha256": file_hash(self.data) if Path(self.data).is_file() else None}
