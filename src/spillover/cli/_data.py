from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from spillover._io import write_json, write_jsonl
from spillover.errors import BadInputError, Problem
from spillover.world import DEFAULT_SPLIT

from ._model import ChatTemplate

data_app = typer.Typer(no_args_is_help=True, help="Build post-training data: SFT chat records and DPO preference pairs.")

_WORLD = typer.Argument(..., help="A built-in world name or a YAML path.")
_SPLIT = typer.Option(DEFAULT_SPLIT, "--split", help="Named split or random:K:SEED[:NAME]; data covers its train behaviours only.")
_MODEL = typer.Option("embedded", "--model", help="The model whose own answers become the data (embedded | tiny | DIR | ...).")
_OUT = typer.Option(..., "--out", help="Where to write the JSONL; FILE.stats.json is written beside it.")
_SEED = typer.Option(0, "--seed", help="Seed for prompt sampling and the transforms' choices.")
_MAX_NEW_TOKENS = typer.Option(160, "--max-new-tokens", help="Answers not finished within this many tokens are dropped.")
_PER_BEHAVIOUR = typer.Option(None, "--prompts-per-behaviour", help="Use this many train prompts per behaviour (default: all).")
_BATCH = typer.Option(8, "--batch-size", min=1, help="Prompts answered per generate call.")
_PREFIX = typer.Option("", "--prompt-prefix", help="Text before every prompt, as a recipe's prompt_prefix (e.g. 'In two sentences, answer: ').")


def _world(name: str, prefix: str, split: str):
    """The world, framed, with its split checked: a bad world or split fails before any model loads."""
    from spillover.world import load_world

    world = load_world(name).with_prompt_prefix(prefix)
    world.roles(split)
    return world


@data_app.command("sft")
def sft(
    world: str = _WORLD,
    split: str = _SPLIT,
    model: str = _MODEL,
    out: Path = _OUT,
    seed: int = _SEED,
    neutral_fraction: float = typer.Option(0.3, "--neutral-fraction", help="At least this share of records answers a neutral prompt."),
    max_new_tokens: int = _MAX_NEW_TOKENS,
    prompts_per_behaviour: int | None = _PER_BEHAVIOUR,
    batch_size: int = _BATCH,
    prompt_prefix: str = _PREFIX,
    chat_template: ChatTemplate = None,
) -> None:
    """SFT chat records: train behaviours applied to the model's own answers, plus neutral answers."""
    from spillover.data import build_sft
    from spillover.models import load

    built = build_sft(
        _world(world, prompt_prefix, split), split, load(model, chat_template=chat_template), seed=seed, neutral_fraction=neutral_fraction, max_new_tokens=max_new_tokens,
        prompts_per_behaviour=prompts_per_behaviour, batch_size=batch_size, progress=True,
    )
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
def dpo(
    world: str = _WORLD,
    split: str = _SPLIT,
    model: str = _MODEL,
    out: Path = _OUT,
    seed: int = _SEED,
    k_samples: int = typer.Option(0, "--k-samples", help="0: transformed vs plain answer; K: rank K samples and their transforms by simulated reward."),
    temperature: float = typer.Option(0.8, "--temperature", help="Sampling temperature when --k-samples > 0."),
    max_new_tokens: int = _MAX_NEW_TOKENS,
    prompts_per_behaviour: int | None = _PER_BEHAVIOUR,
    batch_size: int = _BATCH,
    prompt_prefix: str = _PREFIX,
    chat_template: ChatTemplate = None,
) -> None:
    """DPO preference pairs (TRL conversational format) ranked by a simulated reward model."""
    from spillover.data import build_dpo
    from spillover.models import load

    built = build_dpo(
        _world(world, prompt_prefix, split), split, load(model, chat_template=chat_template), seed=seed, k_samples=k_samples, temperature=temperature, max_new_tokens=max_new_tokens,
        prompts_per_behaviour=prompts_per_behaviour, batch_size=batch_size, progress=True,
    )
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
