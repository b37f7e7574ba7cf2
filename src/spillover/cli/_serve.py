from __future__ import annotations

import typer
from rich.console import Console

from spillover import models
from spillover.errors import BadInputError, Problem


def serve_cmd(
    spec: str = typer.Option(models.DEFAULT_MODEL, "--model", help="embedded | tiny | DIR | FILE.gguf | hub id"),
    host: str = typer.Option("127.0.0.1", "--host", help="Loopback by default; 0.0.0.0 exposes the server to your network."),
    port: int = typer.Option(8000, "--port", help="TCP port to listen on."),
    served_name: str | None = typer.Option(None, "--served-name", help="The model id clients send (default: the --model spec)."),
    max_batch: int = typer.Option(8, "--max-batch", help="Most sequences generated together in one batch."),
    max_tokens_limit: int = typer.Option(1024, "--max-tokens-limit", help="Requests asking for more max_tokens get a 400."),
) -> None:
    """Serve a model over an OpenAI-compatible API (POST /v1/chat/completions, GET /v1/models)."""
    from spillover.serve import serve

    if max_batch < 1:
        raise BadInputError(Problem("--max-batch", "", f"must be at least 1, got {max_batch}", "use e.g. --max-batch 8"))
    if max_tokens_limit < 1:
        raise BadInputError(Problem("--max-tokens-limit", "", f"must be at least 1, got {max_tokens_limit}", "use e.g. --max-tokens-limit 1024"))
    if not 0 < port < 65536:
        raise BadInputError(Problem("--port", "", f"{port} is not a TCP port", "use 1-65535, e.g. --port 8000"))
    name = served_name or spec
    Console(stderr=True).print(f"serving [bold]{name}[/] at http://{host}:{port}/v1 (OpenAI-compatible; any api key works)")
    serve(spec, host=host, port=port, served_name=name, max_batch=max_batch, max_tokens_limit=max_tokens_limit)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_cmd)
