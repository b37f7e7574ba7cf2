from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from spillover._io import derive_seed, read_json
from spillover.errors import BadInputError, Problem
from spillover.evaluation import EvalSettings, OpenAIBackend, evaluate
from spillover.pipeline import LibraryStages, ModelSpec, Recipe, load_recipe
from spillover.world import load_world

from ._options import Given, Options, RecipeOption, derived_options


class BackendName(str, Enum):
    hf = "hf"
    vllm = "vllm"
    openai = "openai"


def _fmt_rate(r: dict) -> tuple[str, str, str]:
    value = "—" if r["rate"] is None else f"{r['rate']:.1%}"
    return f"{r['k']}/{r['n']}", value, f"[{r['ci'][0]:.1%}, {r['ci'][1]:.1%}]"


_SCOPE = ("world", "split", "prompt_prefix")


@derived_options(Options(Recipe, include=_SCOPE), Options(ModelSpec, names={"spec": "--model"}), Options(EvalSettings, exclude=("backend",)))
def eval_command(
    out: Annotated[Path, typer.Option("--out", help="Directory for samples.jsonl, metrics.json, fluency.json and probes/.")],
    recipe: RecipeOption = None,
    backend: Annotated[BackendName | None, typer.Option("--backend", help="hf (transformers, here), vllm (offline engine, GPU) or openai (any OpenAI-compatible "
                                                        "server, e.g. vllm serve; exhibition rates only, no probes)  [default: hf, or the recipe's]")] = None,
    base: str | None = typer.Option(None, "--base", help="The base model: fluency scores the answers under it and the likelihood probe continues its answers "
                                    "[default: the recipe's model, else --model]"),
    base_url: str = typer.Option("http://127.0.0.1:8000/v1", "--base-url", help="OpenAI-compatible endpoint (--backend openai)."),
    api_key_env: str = typer.Option("OPENAI_API_KEY", "--api-key-env", help="Environment variable holding the endpoint's key."),
    arm: str = typer.Option("model", "--arm", help="Label written into every sample."),
    seed: int = typer.Option(0, "--seed", help="Run seed: as for arm seed-<s> of a run, answers are sampled with the seed derived from it for eval, probes with the one for probes."),
    *,
    given: Given,
) -> None:
    """Exhibition rates on the world's held-out eval prompts (one row per behaviour, then per role), and the probes."""
    r = load_recipe(recipe) if recipe is not None else None
    layer = {} if r is None else {**r.model_dump(include=set(_SCOPE)), **r.model.model_dump(), **r.eval.model_dump()}
    backend = backend or BackendName(r.eval.backend if r is not None else EvalSettings.model_fields["backend"].default)
    endpoint = backend is BackendName.openai
    # An endpoint gives answers, not weights: no probes unless asked for (then _check_endpoint refuses them).
    spec = given.build(EvalSettings, layer, backend="hf" if endpoint else backend.value,
                       **({"probes": []} if endpoint and "probes" not in given.explicit else {}))
    model = given.build(ModelSpec, layer)
    base_model = ModelSpec(spec=base) if base is not None else r.model if r is not None else model
    scope = given.over(layer)
    world = load_world(scope["world"]).with_prompt_prefix(scope["prompt_prefix"])
    split = scope["split"]
    world.roles(split)  # a bad split fails before any model loads
    if endpoint:
        _check_endpoint(model, spec)
        metrics = evaluate(OpenAIBackend(base_url, model.spec, api_key_env), world, split, samples=spec.samples, temperature=spec.temperature,
                           max_new_tokens=spec.max_new_tokens, seed=derive_seed(seed, "eval"), arm=arm, out_dir=out, prompts_per_behaviour=spec.prompts_per_behaviour)
    else:
        _eval_and_probes(model, base_model, world, split, spec, arm, seed, Path(out))
        metrics = read_json(Path(out) / "metrics.json")
    _print(metrics, arm, world.name, split, spec.samples, out)


def _check_endpoint(model: ModelSpec, spec: EvalSettings) -> None:
    if model.chat_template:
        raise BadInputError(Problem("--chat-template", "", "the endpoint formats chats itself", "give the template to the server (spillover serve --chat-template), or drop it"))
    if spec.probes:
        raise BadInputError(Problem("--probes", "", f"{', '.join(spec.probes)} need the model's weights, which --backend openai does not give", "drop --probes, or use --backend hf"))


def _eval_and_probes(model: ModelSpec, base: ModelSpec, world, split: str, spec: EvalSettings, arm: str, seed: int, out: Path) -> None:
    """What a run does for one arm and seed (pipeline/_schedule.py), into one directory: the eval
    (and fluency) in `out`, the other probes in `out/probes`, with the same stage code and seeds."""
    stages = LibraryStages()
    stages.evaluate(model, base, world, split, spec, arm, derive_seed(seed, "eval"), out)
    probes = [p for p in spec.probes if p != "fluency"]  # fluency scores the eval samples
    if probes:
        contexts = None
        if "likelihood" in probes:
            stages.probe_contexts(world, split, base, spec, out / "probes")
            contexts = out / "probes" / "contexts.jsonl"
        stages.probes(model, world, split, spec, contexts, derive_seed(seed, "probes"), out / "probes")


def _print(metrics: dict, arm: str, world: str, split: str, samples: int, out: Path) -> None:
    table = Table(title=f"{arm}: world {world}, split '{split}', {samples} sample(s) per prompt")
    for col in ("behaviour", "role", "k/n", "rate", "95% CI", "truncated"):
        table.add_column(col)
    for b, r in metrics["per_behaviour"].items():
        table.add_row(b, r["role"], *_fmt_rate(r), f"{r['truncated']['k']}/{r['truncated']['n']}")
    for role, r in metrics["per_role"].items():
        table.add_row(f"[bold]all {role}[/]", role, *_fmt_rate(r), f"{r['truncated']['k']}/{r['truncated']['n']}")
    console = Console()
    console.print(table)
    console.print(f"wrote {out}/samples.jsonl and {out}/metrics.json" + (f", and probes in {out}/probes" if (Path(out) / "probes").is_dir() else ""))


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
