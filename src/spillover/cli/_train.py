"""`spillover train cpt|sft|dpo` and `spillover merge`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from spillover.errors import BadInputError, Problem
from spillover.training import CPTConfig, DPOConfig, SFTConfig, train_cpt, train_dpo, train_sft

from ._options import Given, Options, RecipeOption, derived_options

train_app = typer.Typer(no_args_is_help=True, help="Mid-train (cpt) and post-train (sft, dpo) models.")

Full = Annotated[bool, typer.Option("--full", help="full fine-tuning (the default; overrides a recipe's lora_r)")]
_NAMES = {"lora_r": "--lora"}
_STAGES = {"cpt": (CPTConfig, train_cpt), "sft": (SFTConfig, train_sft), "dpo": (DPOConfig, train_dpo)}


def _recipe_layer(recipe: str | None, stage: str) -> dict:
    """The recipe's settings for `stage` and its base model, as a run would train it (the seed aside:
    a run derives each stage's seed from the run seed)."""
    if recipe is None:
        return {}
    from spillover.pipeline import load_recipe

    r = load_recipe(recipe)
    spec = {"cpt": r.cpt, "sft": r.post.sft, "dpo": r.post.dpo}[stage]
    return {"model": r.model.spec, "chat_template": r.model.chat_template, **spec.model_dump()}


def _train(stage: str, recipe: str | None, full: bool, given: Given) -> None:
    config_cls, train = _STAGES[stage]
    if full and given.values["lora_r"] and "lora_r" in given.explicit:
        raise BadInputError(Problem("", "--lora/--full", "both given", "pick one: --lora R or --full"))
    cfg = given.build(config_cls, _recipe_layer(recipe, stage), **({"lora_r": 0} if full else {}))
    typer.echo(f"done: {train(cfg)}/model")


@train_app.command("cpt")
@derived_options(Options(CPTConfig, names=_NAMES))
def cpt(recipe: RecipeOption = None, full: Full = False, *, given: Given) -> None:
    """Mid-training on documents: packed sequences, loss on every token."""
    _train("cpt", recipe, full, given)


@train_app.command("sft")
@derived_options(Options(SFTConfig, names=_NAMES))
def sft(recipe: RecipeOption = None, full: Full = False, *, given: Given) -> None:
    """Supervised fine-tuning on chat data: loss on assistant turns only."""
    _train("sft", recipe, full, given)


@train_app.command("dpo")
@derived_options(Options(DPOConfig, names=_NAMES))
def dpo(recipe: RecipeOption = None, full: Full = False, *, given: Given) -> None:
    """Direct preference optimization on chosen/rejected pairs."""
    _train("dpo", recipe, full, given)


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
