"""`spillover train cpt|sft|dpo` and `spillover merge`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from spillover.errors import BadInputError, Problem

from ._model import ChatTemplate

train_app = typer.Typer(no_args_is_help=True, help="Mid-train (cpt) and post-train (sft, dpo) models.")

Model = Annotated[str, typer.Option("--model", help="embedded | tiny | DIR (a previous stage's out dir works) | hub id")]
Data = Annotated[Path, typer.Option("--data", help="JSONL training data")]
Out = Annotated[Path, typer.Option("--out", help="stage directory to write")]
Lora = Annotated[int | None, typer.Option("--lora", help="LoRA rank (alpha = 2r, all linear layers)")]
Full = Annotated[bool, typer.Option("--full", help="full fine-tuning (the default)")]
Lr = Annotated[float | None, typer.Option("--lr", help="peak learning rate (default depends on the stage)")]
Epochs = Annotated[int, typer.Option("--epochs", help="passes over the data")]
MaxLen = Annotated[int, typer.Option("--max-len", help="tokens per sequence")]
BatchSize = Annotated[int, typer.Option("--batch-size", help="sequences per step, per process")]
GradAccum = Annotated[int, typer.Option("--grad-accum", help="steps of gradient accumulation per optimizer step")]
Seed = Annotated[int, typer.Option("--seed", help="seed for initialisation, shuffling and dropout")]
SaveSteps = Annotated[int, typer.Option("--save-steps", help="checkpoint every N steps (0 = never)")]
MaxSteps = Annotated[int | None, typer.Option("--max-steps", help="cap on optimizer steps")]
Resume = Annotated[bool, typer.Option("--resume/--no-resume", help="continue from the latest checkpoint")]
Progress = Annotated[bool, typer.Option("--progress/--no-progress", help="show a progress bar")]


def _common(model, data, out, lora, full, lr, epochs, max_len, batch_size, grad_accum, seed, save_steps, max_steps, resume, progress, chat_template) -> dict:
    if full and lora:
        raise BadInputError(Problem("", "--lora/--full", "both given", "pick one: --lora R or --full"))
    fields = dict(model=model, data=data, out=out, lora_r=lora or 0, epochs=epochs, max_len=max_len, batch_size=batch_size,
                  grad_accum=grad_accum, seed=seed, save_steps=save_steps, max_steps=max_steps, resume=resume, progress=progress,
                  chat_template=chat_template)
    if lr is not None:
        fields["lr"] = lr
    return fields


def _build(config_cls, fields: dict):
    from pydantic import ValidationError

    try:
        return config_cls(**fields)
    except ValidationError as e:
        raise BadInputError([Problem("", "--" + ".".join(map(str, err["loc"])).replace("_", "-"), err["msg"]) for err in e.errors()]) from None


def _done(out: Path) -> None:
    typer.echo(f"done: {out}/model")


@train_app.command("cpt")
def cpt(model: Model = "embedded", data: Data = ..., out: Out = ..., lora: Lora = None, full: Full = False, lr: Lr = None,
        epochs: Epochs = 1, max_len: MaxLen = 512, batch_size: BatchSize = 4, grad_accum: GradAccum = 1, seed: Seed = 0,
        save_steps: SaveSteps = 100, max_steps: MaxSteps = None, resume: Resume = True, progress: Progress = True, chat_template: ChatTemplate = None,
        doc_prefix: Annotated[str, typer.Option("--doc-prefix", help="text prepended to every document")] = "") -> None:
    """Mid-training on documents: packed sequences, loss on every token."""
    from spillover.training import CPTConfig, train_cpt

    fields = _common(model, data, out, lora, full, lr, epochs, max_len, batch_size, grad_accum, seed, save_steps, max_steps, resume, progress, chat_template)
    _done(train_cpt(_build(CPTConfig, {**fields, "doc_prefix": doc_prefix})))


@train_app.command("sft")
def sft(model: Model = "embedded", data: Data = ..., out: Out = ..., lora: Lora = None, full: Full = False, lr: Lr = None,
        epochs: Epochs = 1, max_len: MaxLen = 512, batch_size: BatchSize = 4, grad_accum: GradAccum = 1, seed: Seed = 0,
        save_steps: SaveSteps = 100, max_steps: MaxSteps = None, resume: Resume = True, progress: Progress = True, chat_template: ChatTemplate = None) -> None:
    """Supervised fine-tuning on chat data: loss on assistant turns only."""
    from spillover.training import SFTConfig, train_sft

    fields = _common(model, data, out, lora, full, lr, epochs, max_len, batch_size, grad_accum, seed, save_steps, max_steps, resume, progress, chat_template)
    _done(train_sft(_build(SFTConfig, fields)))


@train_app.command("dpo")
def dpo(model: Model = "embedded", data: Data = ..., out: Out = ..., lora: Lora = None, full: Full = False, lr: Lr = None,
        epochs: Epochs = 1, max_len: MaxLen = 512, batch_size: BatchSize = 4, grad_accum: GradAccum = 1, seed: Seed = 0,
        save_steps: SaveSteps = 100, max_steps: MaxSteps = None, resume: Resume = True, progress: Progress = True, chat_template: ChatTemplate = None,
        beta: Annotated[float, typer.Option("--beta", help="DPO beta")] = 0.1,
        ref: Annotated[str | None, typer.Option("--ref", help="reference model (default: the starting weights)")] = None) -> None:
    """Direct preference optimization on chosen/rejected pairs."""
    from spillover.training import DPOConfig, train_dpo

    fields = _common(model, data, out, lora, full, lr, epochs, max_len, batch_size, grad_accum, seed, save_steps, max_steps, resume, progress, chat_template)
    _done(train_dpo(_build(DPOConfig, {**fields, "beta": beta, "ref": ref})))


@train_app.command("from-config")
def from_config(path: Annotated[Path, typer.Argument(help="a stage's config.json (rerun or resume it), or the launch.json `spillover run --accelerate` writes")]) -> None:
    """Train a stage from its JSON config: {"stage": "cpt"|"sft"|"dpo", "config": {...}}. What `spillover run --accelerate` launches."""
    import os

    from spillover.errors import SpilloverError
    from spillover.training import record_exit_code, train_from_config

    try:
        out = train_from_config(path)
    except SpilloverError as e:
        record_exit_code(e.exit_code)
        raise
    rank = f" (rank {os.environ['RANK']} of {os.environ['WORLD_SIZE']})" if "RANK" in os.environ and "WORLD_SIZE" in os.environ else ""
    typer.echo(f"done: {out}/model{rank}")


def merge_cmd(src: Annotated[Path, typer.Argument(help="a LoRA adapter dir or a LoRA stage's out dir")],
              out: Annotated[Path, typer.Option("--out", help="directory for the merged model")]) -> None:
    """Fold LoRA adapters into the base weights and save a plain safetensors model."""
    from spillover.training import merge

    typer.echo(f"merged: {merge(src, out)}")


def register(app: typer.Typer) -> None:
    app.add_typer(train_app, name="train")
    app.command("merge")(merge_cmd)
