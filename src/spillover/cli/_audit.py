from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from spillover.errors import BadInputError, Problem


def _pct(r: dict | None) -> str:
    if not r or r.get("rate") is None:
        return "–"
    lo, hi = r["ci"]
    return f"{r['k']}/{r['n']} {100 * r['rate']:.0f}% [{100 * lo:.0f}–{100 * hi:.0f}]"


def _fluency(f: dict | None) -> str:
    value = (f or {}).get("mean_logprob_per_token")
    return "–" if value is None else f"{value:.2f}"


class _OrganismByDefault(TyperGroup):
    """`spillover audit RUN_DIR ...` means `spillover audit organism RUN_DIR ...`: the audit was one
    command before `search` joined it, and scripts and docs call it that way."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["organism", *args]
        return super().parse_args(ctx, args)


class AuditPreset(str, Enum):
    """spillover.interp.AuditConfig.PRESETS by name (the CLI does not import interp, which loads torch;
    tests/test_audit.py checks the two agree)."""

    default = "default"
    quick = "quick"
    laptop = "laptop"


def audit_command(
    run_dir: Path = typer.Argument(..., help="A run directory written by `spillover run`."),
    layer: int | None = typer.Option(None, "--layer", min=0, help="Decoder layer to audit (default: the best probe layer)."),
    seed: int = typer.Option(0, "--seed", help="Which seed's models to audit."),
    preset: AuditPreset | None = typer.Option(None, "--preset", help="default (every field's default), quick (a fast first look: fewer "
                                              "documents, two strengths, short answers, a small SAE) or laptop (the whole audit of a "
                                              "135M organism on 2 CPU cores); docs/audit.md."),
    quick: bool = typer.Option(False, "--quick", help="Same as --preset quick."),
) -> None:
    """Probe, SAE, steering, ablation, attribution and training-data search on a run's organism → audit/audit.json, features.html."""
    if quick and preset not in (None, AuditPreset.quick):
        raise typer.BadParameter(f"--quick means --preset quick, not --preset {preset.value}: give one of them", param_hint="--quick/--preset")
    from spillover.interp import audit

    name = AuditPreset.quick.value if quick else (preset or AuditPreset.default).value
    console = Console(stderr=True)
    result = audit(run_dir, preset=name, layer=layer, seed=seed, log=lambda msg: console.print(f"[dim]{msg}[/]")).model_dump(mode="json")
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
    if result["data_search"] is not None:  # None for a fold's audit
        search = Table(title=f"training-data search: top {result['data_search']['k']} per test behaviour, pooled (spillover audit search for the texts)")
        for col in ("query", "method", "precision@k", "chance"):
            search.add_column(col)
        for p in result["data_search"]["pooled"]:
            search.add_row(p["query"], p["method"], _pct(p["precision_at_k"]), _pct(p["chance"]))
        out.print(search)
    out.print(f"wrote {run_dir / 'audit' / 'audit.json'} and {run_dir / 'audit' / 'features.html'}")


class SearchMethod(str, Enum):
    lexical = "lexical"
    activation = "activation"
    both = "both"


def search_command(
    run_dir: Path = typer.Argument(..., help="A run directory written by `spillover run`."),
    behaviour: str | None = typer.Option(None, "--behaviour", help="A behaviour id: search with its description and with an answer of the organism's that exhibits it."),
    text: str | None = typer.Option(None, "--text", help="Text to search with, e.g. a suspicious answer."),
    k: int = typer.Option(10, "--k", min=1, help="Training texts shown per ranking."),
    method: SearchMethod = typer.Option(SearchMethod.both, "--method", help="lexical (BM25), activation (cosine of the organism's mean residuals) or both."),
    layer: int | None = typer.Option(None, "--layer", help="Layer for activation similarity (default: the audited layer, else the middle one)."),
    seed: int = typer.Option(0, "--seed", help="Which seed's organism."),
) -> None:
    """Rank the run's training texts (documents, SFT/DPO records) that explain a behaviour or an answer."""
    from spillover.interp import data_search, open_searcher

    if (behaviour is None) == (text is None):
        raise BadInputError(Problem("audit search", "--behaviour/--text", "give exactly one", "pass --behaviour ID or --text \"...\""))
    methods = ["lexical", "activation"] if method is SearchMethod.both else [method.value]
    log = Console(stderr=True)
    out = Console()
    if behaviour is not None:
        result = data_search(run_dir, seed=seed, layer=layer, k=k, behaviours=[behaviour], methods=methods, log=lambda m: log.print(f"[dim]{m}[/]"))
        for found in result.behaviours:
            for ranking in found.rankings:
                out.print(_ranking_table(ranking, f"{found.behaviour} ({found.role}), {found.query.kind} query ({found.query.source})", found.chance))
        return
    searcher, _, _ = open_searcher(run_dir, seed=seed, layer=layer, methods=methods, log=lambda m: log.print(f"[dim]{m}[/]"))
    for ranking in searcher.search(text, k=k, methods=methods):
        out.print(_ranking_table(ranking, "text query", None))


def _ranking_table(ranking, what: str, chance) -> Table:
    title = f"{ranking.method}: {what}"
    if ranking.precision_at_k is not None:
        p = ranking.precision_at_k
        first = ranking.first_relevant_rank if ranking.first_relevant_rank is not None else "none"
        title += f"; precision@{p.n} {p.k}/{p.n}; first relevant rank {first}; chance {chance.k}/{chance.n} ({100 * chance.rate:.1f}%)"
    table = Table(title=title)
    for col in ("rank", "score", "id", "source", "behaviours", "relevant", "text"):
        table.add_column(col, overflow="fold")
    for h in ranking.hits:
        mark = "–" if h.relevant is None else ("yes" if h.relevant else "no")
        table.add_row(str(h.rank), f"{h.score:.3f}", h.id, h.source, ", ".join(h.behaviours) or "–", mark, h.excerpt)
    return table


def register(app: typer.Typer) -> None:
    group = typer.Typer(cls=_OrganismByDefault, no_args_is_help=True, add_completion=False, rich_markup_mode=None,
                        help="Look inside a run's organism: `spillover audit RUN_DIR` (= `audit organism`), `audit search`.")
    group.command("organism")(audit_command)
    group.command("search")(search_command)
    app.add_typer(group, name="audit")
