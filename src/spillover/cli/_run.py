"""`spillover run RECIPE` (the headline experiment) and `spillover report RUN_DIR`."""

from __future__ import annotations

from pathlib import Path

import typer

from spillover.errors import BadInputError, Problem

ModelOption = typer.Option(None, "--model", help="Base model spec replacing the recipe's model.spec (embedded | tiny | DIR | FILE.gguf | hub id).")
SetOption = typer.Option(
    None, "--set", metavar="KEY=VALUE",
    help="Override a recipe field by its dotted path, value read as YAML (repeatable): --set post.sft.lr=1e-4 --set eval.samples=4. Recorded in recipe.yaml.",
)


def make_stages():
    """The stages that do the work (the library's; tests swap in their own)."""
    from spillover.pipeline._library import LibraryStages

    return LibraryStages()


def parse_seeds(text: str | None) -> list[int] | None:
    """`--seeds 3,4,5` → [3, 4, 5]; a clear error otherwise."""
    if not text:
        return None
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise typer.BadParameter(f"{text!r}: use comma-separated integers, e.g. 3,4,5", param_hint="--seeds") from None


def command_line_overrides(model: str | None, settings: list[str] | None) -> dict:
    """`--model` and `--set` as one {dotted field: value} dict (see `parse_overrides`)."""
    from spillover.pipeline import parse_overrides

    overrides = parse_overrides(settings or [])
    if model is not None:
        if "model.spec" in overrides:
            raise BadInputError(Problem("--model", "", "given twice (also as --set model.spec)", "keep one"))
        overrides = {"model.spec": model, **overrides}
    return overrides


def run(
    recipe: str = typer.Argument(..., help="A recipe YAML path or a built-in recipe name (e.g. rm-biases-laptop, tiny-smoke)."),
    out: Path | None = typer.Option(None, "--out", help="Run directory (default runs/<recipe>/, runs/<recipe>-quick/ with --quick)."),
    quick: bool = typer.Option(False, "--quick", help="First seed only, with the recipe's `quick:` overrides."),
    seeds: str = typer.Option(None, "--seeds", help="Comma-separated seeds replacing the recipe's (after --quick), e.g. 3,4,5."),
    reuse_from: list[Path] = typer.Option(
        None, "--reuse-from", help="Another run directory whose finished stages with the same config are linked in, not rerun (repeatable): e.g. seeds run apart, combined here."
    ),
    model: str | None = ModelOption,
    settings: list[str] | None = SetOption,
    accelerate: str | None = typer.Option(
        None, "--accelerate", metavar="CONFIG",
        help="Train CPT, SFT and DPO under `accelerate launch` with this config (ddp, deepspeed_zero3, fsdp, single_gpu, or a YAML path); replaces the recipe's `accelerate:`.",
    ),
) -> None:
    """Run a recipe: documents, CPT, post-training, eval of every arm (base, docs-only, control, docs-plain, organism), results.json, report. Resumes where it stopped."""
    from spillover.pipeline import run_recipe

    for d in reuse_from or []:
        if not d.is_dir():
            raise typer.BadParameter(f"{d}: no such run directory", param_hint="--reuse-from")
    overrides = command_line_overrides(model, settings)
    run_dir = run_recipe(recipe, out_dir=out, quick=quick, stages=make_stages(), seeds=parse_seeds(seeds), reuse_from=reuse_from, overrides=overrides,
                         accelerate=accelerate)
    typer.echo(f"results: {run_dir / 'results.json'}\nreport:  {run_dir / 'report.html'}")


def report(run_dir: Path = typer.Argument(..., help="A run directory written by `spillover run`.")) -> None:
    """Re-render report.html and report.md from a run's results.json."""
    from spillover.report import render_report

    html, md = render_report(run_dir)
    typer.echo(f"{html}\n{md}")


def export(
    run_dir: Path = typer.Argument(..., help="A run directory written by `spillover run`."),
    dest: Path = typer.Argument(..., help="A new directory for the copy."),
) -> None:
    """Copy a run without its model weights and checkpoints (e.g. to commit it). Copied back and run
    again with the same recipe, it retrains only the models an unfinished stage still reads."""
    from spillover.pipeline import export_run

    done = export_run(run_dir, dest)
    typer.echo(f"{dest}: {done['files']} files, {done['bytes'] / 1e6:.1f} MB; left out {len(done['left_out'])} weight and checkpoint directories")


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("report")(report)
    app.command("export")(export)
