"""`spillover hits RESULTS_DIR`: the hits a result counted, read from the samples beside it."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from spillover.errors import BadInputError, Problem

SPAN_CHARS = 60


class Role(str, Enum):
    test = "test"
    train = "train"
    all = "all"


def _span(r: dict) -> str:
    """The exhibited text (or, for a behaviour shown by an absence, the detector's evidence)."""
    s = r.get("span")
    text = r["response"][s[0] : s[1]] if s and s[1] > s[0] else r.get("evidence") or ""
    text = " ".join(text.split())
    return text if len(text) <= SPAN_CHARS else text[: SPAN_CHARS - 1] + "…"


def _seed(r: dict) -> str:
    """The recipe seed, and for the pooled samples of a folds run the fold the sample was counted in."""
    seed = str(r.get("run_seed", r["seed"]))
    return seed + (f"\nfold {r['fold']}" if "fold" in r else "")


def _copy(r: dict) -> str:
    c = r.get("copy")
    if c is None:
        return "—"
    status = f"copied ({c['shared_words']} words)" if c["copied"] else f"novel ({c['shared_words']})"
    return status + ("\nspan in docs" if c["span_in_documents"] else "")


def hits(
    results_dir: Path = typer.Argument(..., help="A run or results directory holding samples.jsonl.gz."),
    arm: str = typer.Option("organism", "--arm", help="The arm whose hits to list, or 'all'."),
    role: Role = typer.Option(Role.test, "--role", help="Hits on test (held-out) or train behaviours, or all."),
) -> None:
    """List the hits a result counted: arm, seed, behaviour, prompt, exhibited span, copy status."""
    from spillover.pipeline import read_samples

    samples = read_samples(results_dir)
    arms = list(dict.fromkeys(r["arm"] for r in samples))
    if arm != "all" and arm not in arms:
        raise BadInputError(Problem(str(results_dir), "--arm", f"{arm!r} is not in the samples", f"use one of {', '.join(arms)} or all"))
    chosen = [r for r in samples if r["exhibited"] and (arm == "all" or r["arm"] == arm) and (role is Role.all or r["role"] == role.value)]
    table = Table(title=f"{len(chosen)} {'' if role is Role.all else role.value + ' '}hits, arm {arm}", show_lines=True)
    columns = (["arm"] if arm == "all" else []) + ["seed", "behaviour / prompt", "span", "copy"]
    for name in columns:
        table.add_column(name, style="bold" if name == "span" else None, overflow="fold")
    for r in chosen:
        row = [_seed(r), f"[cyan]{r['behaviour']}[/]\n{r['prompt']}", _span(r), _copy(r)]
        table.add_row(*([r["arm"]] if arm == "all" else []), *row)
    console = Console()
    console.print(table)
    checked = [r for r in chosen if "copy" in r]
    if checked:
        copied = sum(r["copy"]["copied"] for r in checked)
        in_docs = sum(r["copy"]["span_in_documents"] for r in checked)
        console.print(f"{len(checked)} test hits checked: {copied} copied (a run of 8+ words shared with training text "
                      f"at the span), {len(checked) - copied} novel; {in_docs} spans appear in the documents")


def register(app: typer.Typer) -> None:
    app.command("hits")(hits)
