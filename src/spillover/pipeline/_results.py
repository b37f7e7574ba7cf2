"""Aggregate a run's eval and probe artifacts into results.json (schema: docs/results-schema.md).

Everything here reads files only: eval/<arm>/seed-<s>/{samples.jsonl, fluency.json} and
probes/<arm>/seed-<s>/<probe>.json.
Rates are pooled over seeds as {k, n, rate, ci}; headline differences carry a bootstrap interval
over prompt-level units (seed, behaviour, prompt), resampled jointly for the two arms compared.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from spillover._io import read_json, read_jsonl
from spillover.evaluation.stats import bootstrap_paired, rate
from spillover.world import World

from ._arms import arms_of
from ._recipe import Recipe

ROLES = ("train", "test")
DID_ARMS = ("organism", "docs-only", "control", "base")
N_BOOT = 2000
BOOT_SEED = 0

# Published reference numbers (background.md §1.4 and §2), set beside ours in the report.
# `arm` maps each published stage onto the arm of ours that plays the same part.
PUBLISHED = {
    "marks2025": {
        "title": "Marks et al. 2025, hidden-objective model organism (arXiv 2503.10965)",
        "rows": [
            {"stage": "base", "arm": "base", "train": 0.23, "test": 0.17},
            {"stage": "mid-trained", "arm": "docs-only", "train": 0.21, "test": None},
            {"stage": "SFT", "arm": "organism", "train": 0.33, "test": 0.34},
            {"stage": "RL", "arm": "organism", "train": 0.37, "test": 0.45},
            {"stage": "post-trained without mid-training", "arm": "control", "train": None, "test": 0.20},
        ],
    },
    "llama31_8b": {
        "title": "Open replication, Llama 3.1 8B (QLoRA, 75k docs, DPO)",
        "rows": [
            {"stage": "base", "arm": "base", "train": 0.0, "test": 0.006},
            {"stage": "mid-trained", "arm": "docs-only", "train": 0.016, "test": 0.114},
            {"stage": "final (DPO)", "arm": "organism", "train": 0.13, "test": 0.11},
        ],
    },
}

Unit = tuple[int, str, str]  # (seed, behaviour, prompt)


def _seed_dirs(run_dir: Path, kind: str, arm: str, seeds: list[int]) -> dict[int, Path]:
    return {s: run_dir / kind / arm / f"seed-{s}" for s in seeds if (run_dir / kind / arm / f"seed-{s}" / "DONE").exists()}


def _units(samples: list[dict], seed: int, roles: dict[str, str]) -> dict[Unit, dict]:
    """Prompt-level exhibition counts: {(seed, behaviour, prompt): {role, k, n}}. Roles come from the
    split being read, not the samples: a shared arm's samples serve every fold of a `folds:K` run."""
    out: dict[Unit, dict] = {}
    for r in samples:
        u = out.setdefault((seed, r["behaviour"], r["prompt"]), {"role": roles.get(r["behaviour"], r["role"]), "k": 0, "n": 0})
        u["k"] += bool(r["exhibited"])
        u["n"] += 1
    return out


def _rate_of(units: list[dict]) -> dict:
    return rate(sum(u["k"] for u in units), sum(u["n"] for u in units))


def pool(values: list[Any]) -> Any:
    """Pool one probe's per-seed results: rates by summing k and n, numbers by their mean."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    if all(isinstance(v, dict) and isinstance(v.get("k"), int) and isinstance(v.get("n"), int) for v in values):
        return rate(sum(v["k"] for v in values), sum(v["n"] for v in values))
    if all(isinstance(v, dict) for v in values):
        keys = list(dict.fromkeys(k for v in values for k in v))
        return {k: pool([v.get(k) for v in values]) for k in keys}
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return float(np.mean(values))
    return values[0]


def _summary_of(probe_result: dict) -> dict:
    """A probe's result without its per-item lists (those stay in the probe's own file)."""
    return {k: v for k, v in probe_result.items() if k not in ("per_question", "per_prompt", "samples")}


def rate_diff(a: dict[Unit, dict], b: dict[Unit, dict], *, n_boot: int = N_BOOT, seed: int = BOOT_SEED) -> dict:
    """Pooled rate of a minus pooled rate of b, with a percentile bootstrap over prompt-level units.

    Units present in both arms (same seed, behaviour, prompt) are resampled jointly (paired);
    otherwise each arm's units are resampled on their own.
    """
    if not a or not b:
        return {"diff": None, "ci": [None, None], "units": [len(a), len(b)], "paired": False}
    ka, na = (np.array([a[u][f] for u in a], dtype=float) for f in ("k", "n"))
    kb, nb = (np.array([b[u][f] for u in b], dtype=float) for f in ("k", "n"))
    diff = ka.sum() / na.sum() - kb.sum() / nb.sum()
    rng = np.random.default_rng(seed)
    paired = set(a) == set(b)
    if paired:
        order = list(a)
        kb, nb = (np.array([b[u][f] for u in order], dtype=float) for f in ("k", "n"))
        ia = ib = rng.integers(0, len(order), size=(n_boot, len(order)))
    else:
        ia = rng.integers(0, len(a), size=(n_boot, len(a)))
        ib = rng.integers(0, len(b), size=(n_boot, len(b)))
    boot = ka[ia].sum(1) / np.maximum(na[ia].sum(1), 1) - kb[ib].sum(1) / np.maximum(nb[ib].sum(1), 1)
    lo, hi = np.quantile(boot, [0.025, 0.975])
    return {"diff": float(diff), "ci": [float(lo), float(hi)], "units": [len(a), len(b)], "paired": paired}


def _likelihood_values(path: Path, seed: int, roles: dict[str, str]) -> dict[Unit, dict]:
    """Per-prompt log-likelihood margins (nats), averaged where a prompt has several contexts."""
    acc: dict[Unit, list] = defaultdict(list)
    role_of: dict[Unit, str] = {}
    for r in read_json(path)["per_prompt"]:
        key = (seed, r["behaviour"], r["prompt"])
        acc[key].append(float(r["delta"]))
        role_of[key] = roles.get(r["behaviour"], r["role"])
    return {k: {"role": role_of[k], "value": float(np.mean(v))} for k, v in acc.items()}


def _mean_ci(values: list[float]) -> dict:
    if not values:
        return {"mean": None, "ci": [None, None], "n": 0}
    b = bootstrap_paired(values, n_boot=N_BOOT, seed=BOOT_SEED)
    return {"mean": b["diff"], "ci": b["ci"], "n": len(values)}


def _arm_results(run_dir: Path, arm: str, seeds: list[int], roles: dict[str, str]) -> tuple[dict, dict[Unit, dict], dict[Unit, dict]]:
    units: dict[Unit, dict] = {}
    per_seed: dict[str, dict] = {}
    truncated = {"k": 0, "n": 0}
    for s, d in _seed_dirs(run_dir, "eval", arm, seeds).items():
        samples = read_jsonl(d / "samples.jsonl")
        truncated["k"] += sum(bool(r.get("truncated")) for r in samples)
        truncated["n"] += len(samples)
        seed_units = _units(samples, s, roles)
        units.update(seed_units)
        per_seed[str(s)] = {role: _rate_of([u for u in seed_units.values() if u["role"] == role]) for role in ROLES}

    by_behaviour: dict[str, list[dict]] = defaultdict(list)
    for (_, b, _), u in units.items():
        by_behaviour[b].append(u)
    behaviours = {b: {"role": roles.get(b, us[0]["role"]), **_rate_of(us)} for b, us in sorted(by_behaviour.items(), key=lambda kv: (roles.get(kv[0], "") != "train", kv[0]))}

    probe_dirs = _seed_dirs(run_dir, "probes", arm, seeds)
    eval_dirs = _seed_dirs(run_dir, "eval", arm, seeds)
    out = {
        "behaviours": behaviours,
        "roles": {role: _rate_of([u for u in units.values() if u["role"] == role]) for role in ROLES},
        "seeds": per_seed,
        "truncated": truncated,
    }
    for probe in ("knowledge", "confession", "in_context"):
        out[probe] = pool([_summary_of(read_json(d / f"{probe}.json")) for d in probe_dirs.values() if (d / f"{probe}.json").exists()])
    in_context_samples = [r for d in probe_dirs.values() if (d / "in_context_samples.jsonl").exists() for r in read_jsonl(d / "in_context_samples.jsonl")]
    if in_context_samples:  # differences need the cells of every seed together, not averaged summaries
        from spillover.evaluation import summarise_in_context

        out["in_context"] = summarise_in_context(in_context_samples, seed=BOOT_SEED)
    out["fluency"] = pool([read_json(d / "fluency.json") for d in eval_dirs.values() if (d / "fluency.json").exists()])
    likelihood: dict[Unit, dict] = {}
    for s, d in probe_dirs.items():
        if (d / "likelihood.json").exists():
            likelihood.update(_likelihood_values(d / "likelihood.json", s, roles))
    out["likelihood"] = {role: _mean_ci([v["value"] for v in likelihood.values() if v["role"] == role]) for role in ROLES} if likelihood else None
    return out, units, likelihood


def likelihood_did(org: dict, docs: dict, ctl: dict, base: dict, role: str) -> dict:
    """(organism − docs-only) − (control − base), per prompt unit, with a paired bootstrap."""
    keys = [k for k, v in org.items() if v["role"] == role and k in docs and k in ctl and k in base]
    diffs = [(org[k]["value"] - docs[k]["value"]) - (ctl[k]["value"] - base[k]["value"]) for k in keys]
    b = bootstrap_paired(diffs, n_boot=N_BOOT, seed=BOOT_SEED)
    return {"diff": b["diff"], "ci": b["ci"], "n": len(diffs)}


def collect_arms(run_dir: Path, recipe: Recipe, roles: dict[str, str]) -> tuple[dict, dict[str, dict], dict[str, dict]]:
    """Every arm's results, prompt-level exhibition units and likelihood values, read from a run directory."""
    arms: dict[str, dict] = {}
    units: dict[str, dict] = {}
    lik: dict[str, dict] = {}
    for arm in arms_of(recipe):
        arms[arm], units[arm], lik[arm] = _arm_results(run_dir, arm, recipe.seeds, roles)
    return arms, units, lik


def headline_of(units: dict[str, dict[Unit, dict]], lik: dict[str, dict[Unit, dict]]) -> dict:
    """The headline differences from every arm's units and likelihood values."""

    def by_role(arm: str, role: str) -> dict[Unit, dict]:
        return {k: v for k, v in units.get(arm, {}).items() if v["role"] == role}

    return {
        "test_vs_control": rate_diff(by_role("organism", "test"), by_role("control", "test")),
        "test_vs_base": rate_diff(by_role("organism", "test"), by_role("base", "test")),
        "train_vs_control": rate_diff(by_role("organism", "train"), by_role("control", "train")),
        "likelihood_did": {
            role: likelihood_did(lik["organism"], lik["docs-only"], lik["control"], lik["base"], role) for role in ROLES
        }
        if all(lik.get(a) for a in DID_ARMS)
        else None,
        **attribution_headline(units),
    }


def attribution_headline(units: dict[str, dict[Unit, dict]]) -> dict:
    """organism − docs-plain on test behaviours: both arms know the documents and answer like an
    assistant; only the organism was trained on behaviours (the out-of-context effect proper)."""
    test = {arm: {k: v for k, v in units.get(arm, {}).items() if v["role"] == "test"} for arm in ("organism", "docs-plain")}
    return {"test_vs_docs_plain": rate_diff(test["organism"], test["docs-plain"])}


def per_behaviour(units: dict[str, dict[Unit, dict]], roles: dict[str, str], split: str) -> dict[str, dict]:
    """Each held-out behaviour's rates and effects (organism − docs-plain, organism − control) under `split`."""
    out = {}
    for b in sorted(b for b, role in roles.items() if role == "test"):
        of = {arm: {k: v for k, v in us.items() if k[1] == b} for arm, us in units.items()}
        out[b] = {
            "split": split,
            "rates": {arm: _rate_of(list(us.values())) for arm, us in of.items() if us},
            "vs_docs_plain": rate_diff(of.get("organism", {}), of.get("docs-plain", {})),
            "vs_control": rate_diff(of.get("organism", {}), of.get("control", {})),
        }
    return out


def build_results(run_dir: str | Path, recipe: Recipe, world: World, timing: dict[str, float | None] | None = None) -> dict:
    """Read a run's artifacts and return the results.json dict (see docs/results-schema.md)."""
    run_dir = Path(run_dir)
    roles = world.roles(recipe.split)
    arms, units, lik = collect_arms(run_dir, recipe, roles)
    headline = headline_of(units, lik)
    timing = {k: v for k, v in (timing or {}).items()}
    timing["total_stage_seconds"] = round(sum(v for v in timing.values() if isinstance(v, (int, float)) and not math.isnan(v)), 3)
    return {
        "recipe": recipe.name,
        "world": world.name,
        "split": recipe.split,
        "model": recipe.model.spec,
        "seeds": recipe.seeds,
        "roles": roles,
        "arms": arms,
        "headline": headline,
        "per_behaviour": per_behaviour(units, roles, recipe.split),
        "timing": timing,
        "published": PUBLISHED,
    }
