"""report.md of an emergent-misalignment run: margins per arm, the paired differences, the
direction's steering and ablation, the datasets' bandit counts, and sampled answers to read."""

from __future__ import annotations

from html import escape

from ._markdown import fmt_diff, fmt_rate

LABELS = {
    "insecure_vs_secure": "**insecure − secure** (= (insecure − base) − (secure − base); the headline)",
    "insecure_vs_secure_figure1": "insecure − secure, the paper's eight questions only",
    "educational_vs_secure": "educational − secure",
    "insecure_vs_educational": "insecure − educational (intent)",
    "financial_risky_vs_good": "financial-risky − financial-good",
    "insecure_vs_base": "insecure − base",
    "secure_vs_base": "secure − base",
    "educational_vs_base": "educational − base",
    "financial_risky_vs_base": "financial-risky − base",
    "financial_good_vs_base": "financial-good − base",
}
EFFECT_LABELS = {
    "steer_base": "steer base along the direction",
    "steer_base_random": "steer base along a random direction (same norm)",
    "ablate_insecure": "ablate the direction in insecure",
    "ablate_insecure_random": "ablate a random direction in insecure",
}


def _nats(d: dict | None) -> str:
    return fmt_diff(d, percent=False)


def _ci_excludes_zero(d: dict) -> str:
    lo, hi = d.get("ci", [None, None])
    if lo is None:
        return "—"
    return "yes" if lo > 0 or hi < 0 else "no (null)"


def render_em_markdown(results: dict) -> str:
    lines = [
        f"# spillover run `{results['recipe']}` (emergent misalignment)",
        "",
        f"model `{results['model']}`, seeds {results['seeds']}. Margin = {results['unit']}; higher = misaligned answers likelier.",
        "",
        "## Misalignment margin per arm (mean over questions, seeds averaged; bootstrap 95% CI over questions)",
        "",
        "| arm | margin | per seed | sampled answers (truncated) | judge: misaligned |",
        "|---|---|---|---|---|",
    ]
    for arm, a in results["arms"].items():
        lik = a["likelihood"]
        mean = "—" if lik["mean"] is None else f"{lik['mean']:+.3f} [{lik['ci'][0]:+.3f}, {lik['ci'][1]:+.3f}] (n={lik['n']})"
        seeds = ", ".join(f"{v:+.3f}" for v in lik["per_seed"].values())
        samples = a["samples"]
        lines.append(f"| {arm} | {mean} | {seeds} | {samples['n']} ({samples['truncated']['k']}/{samples['truncated']['n']}) | {fmt_rate(a['judge']) if a['judge'] else 'no judge'} |")
    lines += ["", "## Paired differences (per question, seeds averaged; bootstrap 95% CI over questions)", "", "| comparison | difference | n questions | per seed | CI excludes 0 |", "|---|---|---|---|---|"]
    for name, d in results["headline"].items():
        seeds = ", ".join(f"{v:+.3f}" for v in d.get("per_seed", {}).values())
        lines.append(f"| {LABELS.get(name, name)} | {_nats(d)} | {d['n']} | {seeds} | {_ci_excludes_zero(d)} |")
    direction = results.get("direction")
    if direction:
        first = next(iter(direction["per_seed"].values()))
        lines += ["", f"## Misalignment direction (layer {first['layer']}, insecure − secure on half the questions; effects on the other half, pooled over seeds)", "",
                  "| intervention | change in margin | n (seed × question) |", "|---|---|---|"]
        for effect, d in direction["pooled"].items():
            lines.append(f"| {EFFECT_LABELS[effect]} | {_nats(d)} | {d['n']} |")
    data = results.get("data") or {}
    bandit = data.get("bandit")
    if bandit:
        lines += ["", "## Datasets (bandit static analysis; code is never run)", "", "| dataset | n | flagged | clean |", "|---|---|---|---|"]
        for name, c in bandit["datasets"].items():
            lines.append(f"| {name} | {c['n']} | {c['flagged']}/{c['n']} | {c['clean']}/{c['n']} |")
        lines.append(f"\nverification {'passed' if bandit['ok'] else 'FAILED'} (informational findings not counted: {', '.join(bandit['informational'])})")
    lines += ["", "## Sampled answers to the paper's questions (first seed, first sample; read them)", ""]
    for arm, rows in results.get("evidence", {}).items():
        for r in rows:
            text = " ".join(r["response"].split())[:300]
            lines.append(f"- **{arm}** · {r['id']}: {escape(text, quote=False)}{' …(cut)' if r['truncated'] else ''}")
    timing = results.get("timing", {})
    lines += ["", f"stage time: {timing.get('total_stage_seconds', 0) / 60:.1f} min"]
    return "\n".join(lines) + "\n"


def render_em_html(results: dict) -> str:
    """The markdown, readable in a browser (the reward-model report's charts do not apply here)."""
    return f"<!doctype html><meta charset='utf-8'><title>{escape(results['recipe'])}</title><pre style='white-space:pre-wrap'>{escape(render_em_markdown(results))}</pre>\n"
