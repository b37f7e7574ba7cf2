from __future__ import annotations

import typer
from rich.console import Console
from rich.markdown import Markdown

from ._run import parse_seeds


def sweep(
    recipe: str = typer.Argument(..., help="A built-in recipe name or a recipe YAML."),
    grid: str = typer.Option(..., "--grid", help="Grid YAML: axes: {dotted.field: [values]} and/or cells: [...]"),
    out: str = typer.Option(None, "--out", help="Sweep directory (default runs/sweeps/<recipe>-<grid>/)."),
    quick: bool = typer.Option(False, "--quick", help="Each cell runs the recipe's quick version."),
    seeds: str = typer.Option(None, "--seeds", help="Comma-separated seeds for every cell, e.g. 0,1,2 (applied after --quick)."),
) -> None:
    """Run a recipe over a grid of settings; one table row per setting (cached cells are not rerun)."""
    from spillover.pipeline import run_sweep

    sweep_dir = run_sweep(recipe, grid, out_dir=out, quick=quick, seeds=parse_seeds(seeds))
    console = Console()
    console.print(Markdown((sweep_dir / "sweep.md").read_text(encoding="utf-8")))
    console.print(f"table: {sweep_dir / 'sweep.md'}  plot: {sweep_dir / 'sweep.png'}  data: {sweep_dir / 'sweep.json'}")


def register(app: typer.Typer) -> None:
    app.command("sweep")(sweep)
