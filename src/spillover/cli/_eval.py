from __future__ import annotations

from enum import Enum

import typer
from rich.console import Console
from rich.table import Table

from spillover import models
from spillover.errors import BadInputError, Problem
from spillover.world import DEFAULT_SPLIT, load_world

from ._model import ChatTemplate


class BackendName(str, Enum):
    hf = "hf"
    vllm = "vllm"
    openai = "openai"


def _fmt_rate(r: dict) -> tuple[str, str, str]:
    value = "—" if r["rate"] is None else f"{r['rate']:.1%}"
    return f"{r['k']}/{r['n']}", value, f"[{r['ci'][0]:.1%}, {r['ci'][1]:.1%}]"


def eval_command(
    model: str = typer.Option(models.DEFAULT_MODEL, "--model", help="embedded | tiny | DIR | FILE.gguf | hub id; the served model name with --backend openai"),
    world: str = typer.Option("rm-biases", "--world", help="A built-in world name or a YAML path."),
    split: str = typer.Option(DEFAULT_SPLIT, "--split", help="A named split or random:K:SEED[:NAME]."),
    out: str = typer.Option(..., "--out", help="Directory for samples.jsonl and metrics.json."),
    samples: int = typer.Option(1, "--samples", help="Answers per eval prompt."),
    temperature: float = typer.Option(0.0, "--temperature", help="Sampling temperature (0 = greedy)."),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens", help="Cap per answer; cut answers are counted and reported."),
    backend: BackendName = typer.Option(BackendName.hf, "--backend", help="hf (transformers, here), vllm (offline engine, GPU) or openai (any OpenAI-compatible server, e.g. vllm serve)."),
    base_url: str = typer.Option("http://127.0.0.1:8000/v1", "--base-url", help="OpenAI-compatible endpoint (--backend openai)."),
    api_key_env: str = typer.Option("OPENAI_API_KEY", "--api-key-env", help="Environment variable holding the endpoint's key."),
    arm: str = typer.Option("model", "--arm", help="Label written into every sample."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed (sample j of a prompt uses seed + j)."),
    chat_template: ChatTemplate = None,
) -> None:
    """Exhibition rates on the world's held-out eval prompts: one row per behaviour, then per role."""
    from spillover.evaluation import HFBackend, OpenAIBackend, VLLMBackend, evaluate

    if chat_template and backend is BackendName.openai:
        raise BadInputError(Problem("--chat-template", "", "the endpoint formats chats itself", "give the template to the server (spillover serve --chat-template), or drop it"))
    w = load_world(world)
    w.roles(split)  # a bad split fails before any model loads
    if backend is BackendName.hf:
        sampler = HFBackend(models.load(model, chat_template=chat_template))
    elif backend is BackendName.vllm:
        sampler = VLLMBackend(str(models.resolve(model)), chat_template=chat_template)
    else:
        sampler = OpenAIBackend(base_url, model, api_key_env)
    metrics = evaluate(
        sampler, w, split, samples=samples, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed, arm=arm, out_dir=out
    )
    table = Table(title=f"{arm}: world {w.name}, split '{split}', {samples} sample(s) per prompt")
    for col in ("behaviour", "role", "k/n", "rate", "95% CI", "truncated"):
        table.add_column(col)
    for b, r in metrics["per_behaviour"].items():
        table.add_row(b, r["role"], *_fmt_rate(r), f"{r['truncated']['k']}/{r['truncated']['n']}")
    for role, r in metrics["per_role"].items():
        table.add_row(f"[bold]all {role}[/]", role, *_fmt_rate(r), f"{r['truncated']['k']}/{r['truncated']['n']}")
    console = Console()
    console.print(table)
    console.print(f"wrote {out}/samples.jsonl and {out}/metrics.json")


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
