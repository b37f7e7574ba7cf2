from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from spillover import models

# Every command that loads a model takes it; recipes set the same thing as `model.chat_template`.
ChatTemplate = Annotated[
    str | None,
    typer.Option("--chat-template", help="Chat template for models without one (base models) or to replace theirs: 'plain' (User:/Assistant: turns) or a Jinja file."),
]

model_app = typer.Typer(no_args_is_help=True, help="Inspect and chat with models.")


@model_app.command("info")
def info(spec: str = typer.Argument(models.DEFAULT_MODEL, help="embedded | tiny | DIR | FILE.gguf | hub id"), as_json: bool = typer.Option(False, "--json", help="Print the facts as JSON."),
         chat_template: ChatTemplate = None) -> None:
    """Parameters, layers, hidden size, vocab, chat template and load time."""
    lm = models.load(spec, chat_template=chat_template)
    data = models.model_info(lm)
    if as_json:
        print(json.dumps(data, indent=2))
        return
    table = Table(title=f"model {spec}", show_header=False)
    for k, v in data.items():
        table.add_row(k, f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v))
    Console().print(table)


@model_app.command("chat")
def chat(
    prompts: list[str] = typer.Argument(..., help="One or more user messages, each answered on its own."),
    spec: str = typer.Option(models.DEFAULT_MODEL, "--model", help="embedded | tiny | DIR | FILE.gguf | hub id"),
    max_new_tokens: int = typer.Option(200, "--max-new-tokens", help="Cap per answer."),
    temperature: float = typer.Option(0.0, "--temperature", help="Sampling temperature (0 = greedy)."),
    chat_template: ChatTemplate = None,
) -> None:
    """Answer each prompt with the model (greedy by default)."""
    lm = models.load(spec, chat_template=chat_template)
    console = Console()
    for prompt, gen in zip(prompts, models.generate(lm, prompts, max_new_tokens=max_new_tokens, temperature=temperature)):
        console.print(f"[bold cyan]user:[/] {prompt}")
        console.print(f"[bold green]{spec}:[/] {gen.text}" + (" [dim](cut at max-new-tokens)[/]" if gen.truncated else ""))


def register(app: typer.Typer) -> None:
    app.add_typer(model_app, name="model")
