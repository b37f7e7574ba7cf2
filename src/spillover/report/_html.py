"""report.html: one self-contained page (charts inlined as base64 PNG, no external URLs)."""

from __future__ import annotations

from pathlib import Path

from markupsafe import Markup, escape

from spillover._io import read_jsonl

from . import _plots
from ._audit import audit_section
from ._markdown import ARM_ORDER, HEADLINE_LABELS, fmt_diff, fmt_published, fmt_rate

TRANSCRIPTS_PER_ARM = 4
TRANSCRIPT_CHARS = 1200


def _arms(results: dict) -> list[str]:
    return [a for a in ARM_ORDER if a in results["arms"]]


def behaviours_chart(results: dict) -> str | None:
    arms = _arms(results)
    ids = list(dict.fromkeys(b for a in arms for b in results["arms"][a]["behaviours"]))
    if not ids:
        return None
    role_of = {b: r for a in arms for b, rec in results["arms"][a]["behaviours"].items() for r in [rec["role"]]}
    ids.sort(key=lambda b: (role_of[b] != "train", b))
    series = {a: [results["arms"][a]["behaviours"].get(b) for b in ids] for a in arms}
    labels = [f"{b} ({role_of[b]})" for b in ids]
    colours = {f"{b} ({role_of[b]})": ("#b71c1c" if role_of[b] == "test" else "black") for b in ids}
    return _plots.grouped_bars(
        labels, series, ylabel="exhibition rate", title="Per behaviour, by arm (test behaviours in red)",
        group_colours=colours, width=max(7.0, 0.55 * len(ids) + 2),
    )


def forest_chart(results: dict) -> str | None:
    """Each held-out behaviour's effect, organism − docs-plain and organism − control, with its CI."""
    per = results.get("per_behaviour") or {}
    if not per:
        return None
    rows = list(per)
    series = {"organism − docs-plain": [per[b].get("vs_docs_plain") for b in rows], "organism − control": [per[b].get("vs_control") for b in rows]}
    return _plots.forest(rows, series, title="Each behaviour while held out: effect on its exhibition rate")


def roles_chart(results: dict) -> str | None:
    arms = _arms(results)
    if not any(results["arms"][a]["roles"].get(r, {}).get("n") for a in arms for r in ("train", "test")):
        return None
    series = {a: [results["arms"][a]["roles"].get(r) for r in ("train", "test")] for a in arms}
    return _plots.grouped_bars(["train behaviours", "test behaviours"], series, ylabel="exhibition rate", title="Train vs held-out test behaviours, by arm")


def _rate_items(value) -> dict[str, dict]:
    """The rate records inside a probe result: itself if it is one, else its rate-valued fields
    (the in-context probe keeps one per attribution under `attributions`, then the pooled `other`)."""
    if not isinstance(value, dict):
        return {}
    if "rate" in value and "ci" in value:
        return {"rate": value}
    fields = {**value.get("attributions", {}), **value}
    return {k: v for k, v in fields.items() if isinstance(v, dict) and "rate" in v and "ci" in v}


def probe_chart(results: dict, probe: str, title: str) -> str | None:
    arms = _arms(results)
    items = {a: _rate_items(results["arms"][a].get(probe)) for a in arms}
    keys = list(dict.fromkeys(k for v in items.values() for k in v))
    if not keys:
        return None
    series = {a: [items[a].get(k) for k in keys] for a in arms}
    return _plots.grouped_bars(keys, series, ylabel="rate", title=title, width=max(5.0, 1.4 * len(keys) + 2))


def likelihood_chart(results: dict) -> str | None:
    arms = [a for a in _arms(results) if results["arms"][a].get("likelihood")]
    if not arms:
        return None
    series = {a: [results["arms"][a]["likelihood"].get(r) for r in ("train", "test")] for a in arms}
    return _plots.grouped_bars(
        ["train behaviours", "test behaviours"], series, ylabel="log P(behaviour) − log P(neutral), nats",
        title="Likelihood probe, by arm", percent=False,
    )


def loss_points(path: Path) -> list[tuple[float, float]]:
    points = []
    for i, r in enumerate(read_jsonl(path)):
        if isinstance(r.get("loss"), (int, float)):
            points.append((float(r.get("step", i)), float(r["loss"])))
    return points


def run_files(run_dir: Path, pattern: str) -> list[Path]:
    """Files matching `pattern` in the run directory and in each fold's (`folds/fold-<i>/`, a `folds:K`
    split), leaving out the folds' links to the shared arms' directories (the same files)."""
    def through_link(path: Path) -> bool:
        return any((run_dir / parent).is_symlink() for parent in path.relative_to(run_dir).parents)

    own = [p for p in run_dir.glob(f"folds/*/{pattern}") if not through_link(p)]
    return sorted(run_dir.glob(pattern)) + sorted(own)


def loss_chart(run_dir: Path) -> str | None:
    curves: dict[str, dict[str, list]] = {}
    for path in run_files(run_dir, "arms/*/seed-*/*/loss.jsonl"):
        step, seed, arm = path.parent.name, path.parent.parent.name, path.parent.parent.parent.name
        fold = path.relative_to(run_dir).parts[1] if path.relative_to(run_dir).parts[0] == "folds" else ""
        points = loss_points(path)
        if points:
            curves.setdefault(step, {})[" ".join(x for x in (arm, seed, fold) if x)] = points
    order = {"cpt": 0, "sft": 1, "dpo": 2}
    curves = dict(sorted(curves.items(), key=lambda kv: order.get(kv[0], 9)))
    return _plots.loss_curves(curves) if curves else None


def highlight(response: str, span) -> Markup:
    """The response with the detected span wrapped in <mark>, everything else escaped."""
    text = response[:TRANSCRIPT_CHARS]
    if span and 0 <= span[0] < span[1] <= len(text):
        a, b = span
        return escape(text[:a]) + Markup("<mark>") + escape(text[a:b]) + Markup("</mark>") + escape(text[b:])
    return escape(text)


def transcripts(run_dir: Path, results: dict) -> dict[str, list[dict]]:
    """A few exhibited samples per arm (test behaviours first), the detected span marked."""
    out: dict[str, list[dict]] = {}
    for arm in _arms(results):
        samples = [r for p in run_files(run_dir, f"eval/{arm}/seed-*/samples.jsonl") for r in read_jsonl(p)]
        shown = sorted((r for r in samples if r.get("exhibited")), key=lambda r: (r["role"] != "test", r["behaviour"]))
        picked, seen = [], set()
        for r in shown:  # one per behaviour first, for variety
            if r["behaviour"] not in seen:
                picked.append(r)
                seen.add(r["behaviour"])
        out[arm] = [
            {**r, "html": highlight(r["response"], r.get("span"))} for r in picked[:TRANSCRIPTS_PER_ARM]
        ]
    return out


def published_rows(results: dict) -> list[dict]:
    rows = []
    for study in results.get("published", {}).values():
        for row in study["rows"]:
            ours = results["arms"].get(row["arm"], {}).get("roles", {})
            rows.append(
                {
                    "study": study["title"], "stage": row["stage"], "arm": row["arm"],
                    "published_train": fmt_published(row["train"]), "published_test": fmt_published(row["test"]),
                    "ours_train": fmt_rate(ours.get("train")), "ours_test": fmt_rate(ours.get("test")),
                }
            )
    return rows


def render_html(run_dir: Path, results: dict, audit: dict | None = None) -> str:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("spillover.report", "templates"), autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
    )
    arms = _arms(results)
    charts = [
        ("chart-behaviours", "Exhibition rate per behaviour", behaviours_chart(results)),
        ("chart-roles", "Train vs test behaviours", roles_chart(results)),
        ("chart-forest", "Held-out behaviours, one by one (forest plot)", forest_chart(results)),
        ("chart-knowledge", "Knowledge probe (multiple choice on the world's facts)", probe_chart(results, "knowledge", "Knowledge probe accuracy, by arm")),
        ("chart-in-context", "In-context test", probe_chart(results, "in_context", "In-context test, by arm")),
        ("chart-confession", "Confession probe", probe_chart(results, "confession", "Confession probe, by arm")),
        ("chart-likelihood", "Likelihood probe", likelihood_chart(results)),
        ("chart-loss", "Training loss", loss_chart(run_dir)),
    ]
    head = results["headline"]
    headline = [(label, fmt_diff(head.get(key))) for key, label in HEADLINE_LABELS.items()]
    for role in ("train", "test"):
        d = (head.get("likelihood_did") or {}).get(role)
        if d:
            headline.append((f"likelihood DiD, {role}: (organism − docs-only) − (control − base)", fmt_diff(d, percent=False)))
    recipe_path = run_dir / "recipe.yaml"
    return env.get_template("report.html.j2").render(
        r=results,
        arms=arms,
        role_rows=[(a, fmt_rate(results["arms"][a]["roles"].get("train")), fmt_rate(results["arms"][a]["roles"].get("test"))) for a in arms],
        headline=headline,
        charts=charts,
        fluency={a: results["arms"][a].get("fluency") for a in arms},
        truncated={a: results["arms"][a].get("truncated") for a in arms},
        transcripts=transcripts(run_dir, results),
        published=published_rows(results),
        recipe_text=recipe_path.read_text(encoding="utf-8") if recipe_path.exists() else "",
        timing=results.get("timing", {}),
        audit=audit_section(audit) if audit else None,
    )
