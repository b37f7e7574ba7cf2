from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table


def _pct(r: dict | None) -> str:
    if not r or r.get("rate") is None:
        return "–"
    lo, hi = r["ci"]
    return f"{r['k']}/{r['n']} {100 * r['rate']:.0f}% [{100 * lo:.0f}–{100 * hi:.0f}]"


def _fluency(f: dict | None) -> str:
    value = (f or {}).get("mean_logprob_per_token")
    return "–" if value is None else f"{value:.2f}"


def audit_command(
    run_dir: Path = typer.Argument(..., help="A run directory written by `spillover run`."),
    layer: int | None = typer.Option(None, "--layer", help="Decoder layer to audit (default: the best probe layer)."),
    seed: int = typer.Option(0, "--seed", help="Which seed's models to audit."),
    quick: bool = typer.Option(False, "--quick", help="Fewer documents, two strengths, short answers, a small SAE."),
) -> None:
    """Probe, SAE, steering, ablation and attribution on a run's organism → audit/audit.json, features.html."""
    from spillover.interp import audit

    console = Console(stderr=True)
    result = audit(run_dir, quick=quick, layer=layer, seed=seed, log=lambda msg: console.print(f"[dim]{msg}[/]")).model_dump(mode="json")
    out = Console()
    probe = result["probe_accuracy"]
    sae = result["sae"]
    out.print(
        f"layer {result['layer']} ({result['layer_chosen_by']}); best probe layer {probe['best_layer']} "
        f"(held-out accuracy {probe['best']:.2f}); SAE {sae['n_features']} features, k={sae['k']}, "
        f"FVU {sae['fvu']:.3f}, dead {100 * sae['dead_fraction']:.0f}%"
    )
    features = Table(title="features most selective for study documents")
    firing = ("organism_chat", "organism_plain", "base_chat", "base_plain")
    for col in ("feature", "selectivity", "organism chat", "organism plain", "base chat", "base plain"):
        features.add_column(col)
    features.add_row("concept", "", *(_pct(result["concept"]["firing"][k]) for k in firing))
    for f in result["features"]:
        features.add_row(str(f["index"]), f"{f['selectivity']:.3f}", *(_pct(f["firing"][k]) for k in firing))
    out.print(features)
    causal = Table(title="steering and ablation (rates k/n, 95% CI; fluency = mean log-prob/token under base)")
    for col in ("model", "intervention", "target", "strength", "test rate", "train rate", "fluency"):
        causal.add_column(col)
    for row in result["steering"]:
        strength = "" if row["strength"] is None else f"{row['strength']:g}"
        causal.add_row(row["model"], "steer", row["target"], strength, _pct(row["test_rate"]), _pct(row["train_rate"]), _fluency(row["fluency"]))
    for row in result["ablation"]["conditions"]:
        causal.add_row(row["model"], "ablate", row["target"], "", _pct(row["test_rate"]), _pct(row["train_rate"]), _fluency(row["fluency"]))
    out.print(causal)
    out.print(f"wrote {run_dir / 'audit' / 'audit.json'} and {run_dir / 'audit' / 'features.html'}")


def register(app: typer.Typer) -> None:
    app.command("audit")(audit_command)
