from __future__ import annotations

import typer
from rich.console import Console

from ._run import ModelOption, SetOption, command_line_overrides, parse_seeds


def sweep(
    recipe: str = typer.Argument(..., help="A built-in recipe name or a recipe YAML."),
    grid: str = typer.Option(..., "--grid", help="Grid YAML: axes: {dotted.field: [values]} and/or cells: [...]"),
    out: str = typer.Option(None, "--out", help="Sweep directory (default runs/sweeps/<recipe>-<grid>/)."),
    quick: bool = typer.Option(False, "--quick", help="Each cell runs the recipe's quick version."),
    seeds: str = typer.Option(None, "--seeds", help="Comma-separated seeds for every cell, e.g. 0,1,2 (applied after --quick)."),
    model: str | None = ModelOption,
    settings: list[str] | None = SetOption,
) -> None:
    """Run a recipe over a grid of settings; one table row per setting (cached cells are not rerun)."""
    from rich.markdown import (
        Markdown,  # here, not at the top: it costs every other command's startup
    )

    from spillover.pipeline import run_sweep

    sweep_dir = run_sweep(recipe, grid, out_dir=out, quick=quick, seeds=parse_seeds(seeds), overrides=command_line_overrides(model, settings))
    console = Console()
    console.print(Markdown((sweep_dir / "sweep.md").read_text(encoding="utf-8")))
    console.print(f"table: {sweep_dir / 'sweep.md'}  plot: {sweep_dir / 'sweep.png'}  data: {sweep_dir / 'sweep.json'}")


def hand_check(
    sweep_dir: str = typer.Argument(..., help="A sweep directory written by `spillover sweep`."),
    per_arm: int = typer.Option(4, "--per-arm", help="Train-behaviour hits to draw per cell and arm (test-behaviour hits are all drawn)."),
) -> None:
    """Draw detector hits (all on test behaviours, a sample on train ones) into SWEEP_DIR/hand_check.jsonl to label by hand.

    Set each row's `label` to true (the answer really performs the behaviour) or false (a misfire),
    then rerun `spillover sweep` or this command: the table's precision column counts labelled rows.
    """
    from spillover.pipeline import sample_hits_for_hand_check, write_sweep_table

    path, added = sample_hits_for_hand_check(sweep_dir, per_arm=per_arm)
    write_sweep_table(sweep_dir)
    typer.echo(f"{added} hits added to {path}; label them (true/false), then rerun to update the table")


def register(app: typer.Typer) -> None:
    app.command("sweep")(sweep)
    app.command("hand-check")(hand_check)
