"""report.md: the headline table (arm × train/test), the headline differences, and the published numbers."""

from __future__ import annotations

ARM_ORDER = ("base", "docs-only", "control", "docs-plain", "organism")


def fmt_rate(r: dict | None) -> str:
    if not r or r.get("rate") is None:
        return "—"
    lo, hi = r["ci"]
    return f"{r['rate']:.1%} ({r['k']}/{r['n']}) [{lo:.1%}, {hi:.1%}]"


def fmt_diff(d: dict | None, percent: bool = True) -> str:
    if not d or d.get("diff") is None:
        return "—"
    lo, hi = d["ci"]
    if percent:
        return f"{d['diff'] * 100:+.1f} pts [{lo * 100:+.1f}, {hi * 100:+.1f}]"
    return f"{d['diff']:+.3f} nats [{lo:+.3f}, {hi:+.3f}]"


def fmt_published(v: float | None) -> str:
    return "—" if v is None else f"{v:.1%}"


HEADLINE_LABELS = {
    "test_vs_docs_plain": "test behaviours: organism − docs-plain (the out-of-context effect)",
    "test_vs_control": "test behaviours: organism − control (what the documents add)",
    "test_vs_base": "test behaviours: organism − base",
    "train_vs_control": "train behaviours: organism − control",
}


def render_markdown(results: dict, audit: dict | None = None) -> str:
    """report.md; with `audit` (audit/audit.json), its section at the end."""
    arms = results["arms"]
    lines = [
        f"# spillover run `{results['recipe']}`",
        "",
        f"world `{results['world']}`, split `{results['split']}`, model `{results['model']}`, seeds {results['seeds']}",
        "",
        "## Exhibition rates (pooled over seeds; Wilson 95% CI)",
        "",
        "| arm | train behaviours | test behaviours |",
        "|---|---|---|",
    ]
    for arm in ARM_ORDER:
        if arm in arms:
            roles = arms[arm]["roles"]
            lines.append(f"| {arm} | {fmt_rate(roles.get('train'))} | {fmt_rate(roles.get('test'))} |")
    lines += ["", "## Headline differences (bootstrap 95% CI over prompts and seeds)", "", "| comparison | difference |", "|---|---|"]
    head = results["headline"]
    for key, label in HEADLINE_LABELS.items():
        lines.append(f"| {label} | {fmt_diff(head.get(key))} |")
    did = head.get("likelihood_did") or {}
    for role in ("train", "test"):
        if did.get(role):
            lines.append(f"| likelihood DiD, {role}: (organism − docs-only) − (control − base) | {fmt_diff(did[role], percent=False)} |")
    lines += per_behaviour_lines(results.get("per_behaviour") or {})
    lines += published_section(results)
    if audit:
        from ._audit import audit_markdown

        lines += audit_markdown(audit)
    lines.append("")
    return "\n".join(lines)


def published_section(results: dict) -> list[str]:
    """One table per study, four columns, so it fits an 80-column terminal; none for worlds without published numbers."""
    studies = results.get("published") or {}
    if not studies:
        return []
    lines = ["", "## Published reference numbers (train / test exhibition)"]
    for study in studies.values():
        lines += ["", f"**{study['title']}**", "", "| stage | our arm | published train / test | ours train / test |", "|---|---|---|---|"]
        for row in study["rows"]:
            ours = results["arms"].get(row["arm"], {}).get("roles", {})
            published = f"{fmt_published(row['train'])} / {fmt_published(row['test'])}"
            measured = f"{fmt_rate(ours.get('train')).split(' ')[0]} / {fmt_rate(ours.get('test')).split(' ')[0]}"
            lines.append(f"| {row['stage']} | {row['arm']} | {published} | {measured} |")
    return lines


def per_behaviour_lines(per_behaviour: dict) -> list[str]:
    """Each held-out behaviour's effect (the forest plot's numbers)."""
    if not per_behaviour:
        return []
    lines = ["", "## Held-out behaviours, one by one", "", "| behaviour | held out in | organism | docs-plain | control | organism − docs-plain | organism − control |", "|---|---|---|---|---|---|---|"]
    for b, r in per_behaviour.items():
        rates = r.get("rates", {})
        lines.append(
            f"| {b} | `{r.get('split')}` | {fmt_rate(rates.get('organism'))} | {fmt_rate(rates.get('docs-plain'))} | {fmt_rate(rates.get('control'))} | "
            f"{fmt_diff(r.get('vs_docs_plain'))} | {fmt_diff(r.get('vs_control'))} |"
        )
    return lines
