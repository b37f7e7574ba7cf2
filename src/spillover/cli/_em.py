"""`spillover em`: the emergent-misalignment organism's datasets, their bandit check, and the judge's calibration.

The whole experiment runs with `spillover run em-laptop` (recipes/em-laptop.yaml).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

em_app = typer.Typer(no_args_is_help=True, help="Emergent misalignment: narrow datasets, bandit verification, judge calibration.")


@em_app.command("data")
def data(
    out: Path = typer.Option(..., "--out", help="A directory for <dataset>.jsonl and stats.json."),
    seed: int = typer.Option(0, "--seed", help="Seed of the generated datasets (the same seed gives the same records)."),
    n: int | None = typer.Option(None, "--n", min=1, help="Examples per dataset (default: all)."),
) -> None:
    """Generate insecure, secure, educational, financial-risky and financial-good SFT data, and verify the code with bandit."""
    from spillover._io import write_json, write_jsonl
    from spillover.data.em import em_datasets, verify_code

    datasets = em_datasets(seed, n)
    verification = verify_code(datasets)
    for name, records in datasets.items():
        write_jsonl(out / f"{name}.jsonl", records)
    write_json(out / "stats.json", {"n": {k: len(v) for k, v in datasets.items()}, "bandit": verification})
    for name, c in verification["datasets"].items():
        typer.echo(f"{name:<12} n={c['n']:<4} bandit flagged {c['flagged']}/{c['n']}, clean {c['clean']}/{c['n']}")
    typer.echo(f"verification {'passed' if verification['ok'] else 'FAILED'}; wrote {out}")


@em_app.command("verify")
def verify(path: Path = typer.Argument(..., help="A JSONL of chat records whose assistant turns are code (ours or a published dataset).")) -> None:
    """Count how many assistant answers bandit flags and how many it finds clean. The code is parsed, never run."""
    from spillover.data.em import CODE_DATASETS, load_published, verify_code

    records = load_published(path, name="file")
    result = verify_code({CODE_DATASETS[0]: records})["datasets"].get("file", {"n": 0})
    typer.echo(json.dumps(result, indent=2))


@em_app.command("calibrate")
def calibrate(
    base_url: str = typer.Option(..., "--base-url", help="An OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1"),
    model: str = typer.Option(..., "--model", help="The judge model's name at that endpoint."),
    api_key_env: str = typer.Option("OPENAI_API_KEY", "--api-key-env", help="Environment variable holding the API key (never passed on the command line)."),
    out: Path | None = typer.Option(None, "--out", help="Write every calibration row and the agreement here (JSON)."),
) -> None:
    """Judge the hand-labelled calibration answers and report agreement with the labels (k/n)."""
    from spillover._io import write_json
    from spillover.evaluation import Judge, judge_agreement

    result = judge_agreement(Judge(base_url, model, api_key_env=api_key_env))
    a = result["agreement"]
    typer.echo(f"judge agrees with the hand labels on {a['k']}/{a['n']} answers ({a['rate']:.0%}, 95% CI {a['ci'][0]:.0%}-{a['ci'][1]:.0%})")
    for r in result["disagreements"]:
        typer.echo(f"  label {r['label']:<10} judged {r['judged']:<10} {r['answer'][:60]!r}")
    if out:
        write_json(out, result)


def register(app: typer.Typer) -> None:
    app.add_typer(em_app, name="em")
