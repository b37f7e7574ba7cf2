from __future__ import annotations

import typer
from pydantic import ValidationError
from rich.console import Console

from spillover import models
from spillover.errors import BadInputError, Problem
from spillover.serve import RequestLimits


def _limit_option(name: str):
    """A `--max-...` option declared by RequestLimits' field `name` (its default and its help)."""
    spec = RequestLimits.model_fields[name]
    return typer.Option(spec.default, "--" + name.replace("_", "-"), help=spec.description)


def _limit_problem(name: str, message: str) -> Problem:
    option = "--" + name.replace("_", "-")
    return Problem(option, "", message, f"use e.g. {option} {RequestLimits.model_fields[name].default}")

from ._model import ChatTemplate


def serve_cmd(
    spec: str = typer.Option(models.DEFAULT_MODEL, "--model", help="embedded | tiny | DIR | FILE.gguf | hub id"),
    host: str = typer.Option("127.0.0.1", "--host", help="Loopback by default; 0.0.0.0 exposes the server to your network."),
    port: int = typer.Option(8000, "--port", help="TCP port to listen on."),
    served_name: str | None = typer.Option(None, "--served-name", help="The model id clients send (default: the --model spec)."),
    max_batch: int = typer.Option(8, "--max-batch", help="Most sequences generated together in one batch."),
    max_tokens_limit: int = typer.Option(1024, "--max-tokens-limit", help="Requests asking for more max_tokens get a 400."),
    max_body_bytes: int = _limit_option("max_body_bytes"),
    max_n: int = _limit_option("max_n"),
    max_messages: int = _limit_option("max_messages"),
    chat_template: ChatTemplate = None,
) -> None:
    """Serve a model over an OpenAI-compatible API (POST /v1/chat/completions, GET /v1/models)."""
    from spillover.serve import serve

    if max_batch < 1:
        raise BadInputError(Problem("--max-batch", "", f"must be at least 1, got {max_batch}", "use e.g. --max-batch 8"))
    if max_tokens_limit < 1:
        raise BadInputError(Problem("--max-tokens-limit", "", f"must be at least 1, got {max_tokens_limit}", "use e.g. --max-tokens-limit 1024"))
    if not 0 < port < 65536:
        raise BadInputError(Problem("--port", "", f"{port} is not a TCP port", "use 1-65535, e.g. --port 8000"))
    try:
        limits = RequestLimits(max_body_bytes=max_body_bytes, max_n=max_n, max_messages=max_messages)
    except ValidationError as e:
        raise BadInputError([_limit_problem(str(err["loc"][0]), err["msg"]) for err in e.errors()]) from None
    name = served_name or spec
    Console(stderr=True).print(f"serving [bold]{name}[/] at http://{host}:{port}/v1 (OpenAI-compatible; any api key works)")
    serve(spec, host=host, port=port, served_name=name, max_batch=max_batch, max_tokens_limit=max_tokens_limit, limits=limits, chat_template=chat_template)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_cmd)
