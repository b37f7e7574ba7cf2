from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from spillover._io import write_json, write_jsonl
from spillover.data import PostDataSettings
from spillover.errors import BadInputError, Problem
from spillover.pipeline import ModelSpec, Recipe, load_model, load_recipe

from ._options import Given, Options, RecipeOption, derived_options

data_app = typer.Typer(no_args_is_help=True, help="Build post-training data: SFT chat records and DPO preference pairs.")

_WORLD = typer.Argument(None, metavar="WORLD", help="A built-in world name or a YAML path.  [default: the recipe's world, else rm-biases]", show_default=False)
_OUT = typer.Option(..., "--out", help="Where to write the JSONL; FILE.stats.json is written beside it.")
_SCOPE = ("split", "prompt_prefix")
_MODEL = Options(ModelSpec, names={"spec": "--model"})
_SFT = ("seed", "neutral_fraction", "prompts_per_behaviour", "max_new_tokens", "temperature", "keep_truncated", "batch_size")
_DPO = ("seed", "dpo_samples", "dpo_temperature", "prompts_per_behaviour", "max_new_tokens", "keep_truncated", "batch_size")


def _inputs(world: str | None, recipe: str | None, given: Given):
    """The world (framed, its split checked: a bad world or split fails before any model loads), the
    split, the model and the data settings: a recipe's `post.data` under the options given, as `spillover run` builds them."""
    from spillover.world import load_world

    r = load_recipe(recipe) if recipe is not None else None
    layer = {} if r is None else {**r.model_dump(include=set(_SCOPE)), **r.model.model_dump(), **r.post.data.model_dump()}
    scope = given.over(layer)
    framed = load_world(world or (r.world if r is not None else Recipe.model_fields["world"].default)).with_prompt_prefix(scope["prompt_prefix"])
    framed.roles(scope["split"])
    settings = given.build(PostDataSettings, layer)
    model = given.build(ModelSpec, layer)
    return framed, scope["split"], load_model(model), settings


@data_app.command("sft")
@derived_options(Options(Recipe, include=_SCOPE), _MODEL, Options(PostDataSettings, include=_SFT))
def sft(world: str | None = _WORLD, out: Path = _OUT, recipe: RecipeOption = None, *, given: Given) -> None:
    """SFT chat records: train behaviours applied to the model's own answers, plus neutral answers."""
    from spillover.data import build_sft

    framed, split, lm, settings = _inputs(world, recipe, given)
    built = build_sft(framed, split, lm, **settings.sft_kwargs(), progress=True)
    s = built.stats
    rows = [("behaviour prompts", s["behaviour"]["prompts"]), ("behaviour records", s["behaviour"]["kept"])]
    rows += [(f"  dropped: {k}", v) for k, v in s["behaviour"]["dropped"].items()]
    rows += [("neutral prompts tried", s["neutral"].get("prompts", 0)), ("neutral records", s["neutral"]["kept"])]
    rows += [(f"  neutral {k}", v) for k, v in s["neutral"].items() if k not in ("prompts", "kept")]
    share = s["neutral_share"]
    rows += [("records", s["records"]), ("neutral share", f"{share['rate'] or 0:.2f} (95% CI {share['ci'][0]:.2f}-{share['ci'][1]:.2f})")]
    _print(f"SFT data → {out}", rows, s["per_behaviour"])
    _write(out, built)


@data_app.command("dpo")
@derived_options(Options(Recipe, include=_SCOPE), _MODEL, Options(PostDataSettings, include=_DPO, names={"dpo_samples": "--k-samples", "dpo_temperature": "--temperature"}))
def dpo(world: str | None = _WORLD, out: Path = _OUT, recipe: RecipeOption = None, *, given: Given) -> None:
    """DPO preference pairs (TRL conversational format) ranked by a simulated reward model."""
    from spillover.data import build_dpo

    framed, split, lm, settings = _inputs(world, recipe, given)
    built = build_dpo(framed, split, lm, **settings.dpo_kwargs(), progress=True)
    s = built.stats
    rows = [("prompts", s["prompts"]), ("pairs", s["records"])]
    rows += [(f"  dropped: {k}", v) for k, v in s["dropped"].items()]
    rows += [(f"  candidates {k}", v) for k, v in s["candidates"].items()]
    _print(f"DPO data → {out}", rows, s["per_behaviour"])
    _write(out, built)


def _write(out: Path, built) -> None:
    """The records and FILE.stats.json; with no records only the stats, and a one-line error (exit 2)."""
    write_json(stats_path(out), built.stats)
    if not built.records:
        raise BadInputError(Problem(str(out), "", f"no records survived the filters (counts above and in {stats_path(out)})",
                                    "raise --max-new-tokens if most answers were truncated"))
    write_jsonl(out, built.records)


def stats_path(out: Path) -> Path:
    """FILE.jsonl → FILE.stats.json, beside it."""
    return Path(out).with_suffix(".stats.json")


def _print(title: str, rows: list[tuple[str, object]], per_behaviour: dict[str, dict]) -> None:
    console = Console()
    table = Table(title=title, show_header=False)
    for name, value in rows:
        table.add_row(name, str(value))
    console.print(table)
    reasons = sorted({k for c in per_behaviour.values() for k in c if k not in ("prompts", "kept")})
    detail = Table(title="per behaviour")
    for col in ("behaviour", "prompts", "kept", *reasons):
        detail.add_column(col)
    for b, c in per_behaviour.items():
        detail.add_row(b, str(c.get("prompts", 0)), str(c.get("kept", 0)), *(str(c.get(r, 0)) for r in reasons))
    console.print(detail)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
