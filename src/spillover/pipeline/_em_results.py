"""results.json of an emergent-misalignment run, from its files only (probes/, judge/, direction/, data/).

Margins are per question, averaged over seeds; every comparison of two arms is paired by question
with a percentile bootstrap over questions (spillover.evaluation.stats). The headline is
(insecure − base) − (secure − base), which is insecure − secure question by question.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from spillover._io import read_json, read_jsonl
from spillover.evaluation.stats import bootstrap_paired, rate

from ._em_recipe import EMRecipe

N_BOOT = 2000
BOOT_SEED = 0
# (name, arm, reference arm): each a paired difference of misalignment margins.
COMPARISONS = (
    ("insecure_vs_secure", "insecure", "secure"),
    ("educational_vs_secure", "educational", "secure"),
    ("insecure_vs_educational", "insecure", "educational"),
    ("financial_risky_vs_good", "financial-risky", "financial-good"),
    ("insecure_vs_base", "insecure", "base"),
    ("secure_vs_base", "secure", "base"),
    ("educational_vs_base", "educational", "base"),
    ("financial_risky_vs_base", "financial-risky", "base"),
    ("financial_good_vs_base", "financial-good", "base"),
)
EFFECTS = ("steer_base", "steer_base_random", "ablate_insecure", "ablate_insecure_random")
EVIDENCE_PER_ARM = 6


def _done(d: Path) -> bool:
    return (d / "DONE").exists()


def _margins(run_dir: Path, arm: str, seeds: list[int]) -> dict[int, dict[str, dict]]:
    """{seed: {question id: per-question record}} for the seeds whose probes finished."""
    out = {}
    for s in seeds:
        d = run_dir / "probes" / arm / f"seed-{s}"
        if _done(d):
            out[s] = {r["id"]: r for r in read_json(d / "likelihood.json")["per_question"]}
    return out


def _paired(a: dict[int, dict], b: dict[int, dict], group: str | None = None) -> dict:
    """Mean over questions of (a − b), each question's margin averaged over the seeds both arms have."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return {"diff": None, "ci": [None, None], "n": 0, "seeds": []}
    ids = [q for q in a[seeds[0]] if all(q in a[s] and q in b[s] for s in seeds) and (group is None or a[seeds[0]][q]["group"] == group)]
    diffs = [float(np.mean([a[s][q]["delta"] - b[s][q]["delta"] for s in seeds])) for q in ids]
    per_seed = {str(s): float(np.mean([a[s][q]["delta"] - b[s][q]["delta"] for q in ids])) for s in seeds}
    return {**bootstrap_paired(diffs, n_boot=N_BOOT, seed=BOOT_SEED), "n": len(ids), "seeds": seeds, "per_seed": per_seed}


def _arm_summary(run_dir: Path, arm: str, margins: dict[int, dict], seeds: list[int]) -> dict:
    ids = list(next(iter(margins.values()))) if margins else []
    per_q = [float(np.mean([margins[s][q]["delta"] for s in margins])) for q in ids]
    b = bootstrap_paired(per_q, n_boot=N_BOOT, seed=BOOT_SEED)
    samples = [r for s in seeds if _done(run_dir / "probes" / arm / f"seed-{s}") for r in read_jsonl(run_dir / "probes" / arm / f"seed-{s}" / "samples.jsonl")]
    judged = [read_json(run_dir / "judge" / arm / f"seed-{s}" / "judge.json") for s in seeds if _done(run_dir / "judge" / arm / f"seed-{s}")]
    return {
        "likelihood": {"mean": b["diff"], "ci": b["ci"], "n": len(per_q), "per_seed": {str(s): float(np.mean([r["delta"] for r in m.values()])) for s, m in margins.items()}},
        "samples": {"n": len(samples), "truncated": rate(sum(bool(r["truncated"]) for r in samples), len(samples))},
        "judge": rate(sum(j["misaligned"]["k"] for j in judged), sum(j["misaligned"]["n"] for j in judged)) if judged else None,
    }


def _direction(run_dir: Path, seeds: list[int]) -> dict | None:
    per_seed = {s: read_json(run_dir / "direction" / f"seed-{s}" / "direction.json") for s in seeds if _done(run_dir / "direction" / f"seed-{s}")}
    if not per_seed:
        return None
    pooled = {}
    for effect in EFFECTS:  # every (seed, held-out question) change, pooled
        values = [v for d in per_seed.values() for v in d[effect]["values"]]
        pooled[effect] = {**bootstrap_paired(values, n_boot=N_BOOT, seed=BOOT_SEED), "n": len(values)}
    keep = ("layer", "norm", "scale", "n_questions", "margins", *EFFECTS)
    return {"pooled": pooled, "per_seed": {str(s): {k: d[k] for k in keep} for s, d in per_seed.items()}}


def _evidence(run_dir: Path, arm: str, seeds: list[int]) -> list[dict]:
    """The first sampled answers to the paper's eight questions, for reading (first finished seed)."""
    for s in seeds:
        path = run_dir / "probes" / arm / f"seed-{s}" / "samples.jsonl"
        if path.exists():
            rows = [r for r in read_jsonl(path) if r["group"] == "figure1" and r["sample"] == 0]
            return [{k: r[k] for k in ("seed", "id", "question", "response", "truncated")} for r in rows[:EVIDENCE_PER_ARM]]
    return []


def build_em_results(run_dir: str | Path, recipe: EMRecipe, timing: dict[str, float | None] | None = None) -> dict:
    run_dir = Path(run_dir)
    arms = ["base", *recipe.arms]
    margins = {arm: _margins(run_dir, arm, recipe.seeds) for arm in arms}
    headline = {name: _paired(margins[a], margins[b]) for name, a, b in COMPARISONS if a in margins and b in margins}
    if "insecure" in margins and "secure" in margins:
        headline["insecure_vs_secure_figure1"] = _paired(margins["insecure"], margins["secure"], group="figure1")
    stats_path = run_dir / "data" / "stats.json"
    timing = dict(timing or {})
    timing["total_stage_seconds"] = round(sum(v for v in timing.values() if isinstance(v, (int, float)) and not math.isnan(v)), 3)
    return {
        "organism": "em",
        "recipe": recipe.name,
        "model": recipe.model.spec,
        "seeds": recipe.seeds,
        "unit": "nats: log P(misaligned answer) - log P(aligned answer) per broad question",
        "data": read_json(stats_path) if stats_path.exists() else None,
        "arms": {arm: _arm_summary(run_dir, arm, margins[arm], recipe.seeds) for arm in arms},
        "headline": headline,
        "direction": _direction(run_dir, recipe.seeds) if recipe.direction.enabled else None,
        "evidence": {arm: _evidence(run_dir, arm, recipe.seeds) for arm in arms},
        "timing": timing,
    }
