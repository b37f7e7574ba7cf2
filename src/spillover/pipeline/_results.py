"""Aggregate a run's eval and probe artifacts into results.json (schema: docs/results-schema.md).

Everything here reads files only: eval/<arm>/seed-<s>/{samples.jsonl, fluency.json} and
probes/<arm>/seed-<s>/<probe>.json.
Rates are pooled over seeds as {k, n, rate, ci}. Headline differences are `Effect`s: a bootstrap
over (behaviour, prompt) clusters, each with all its seeds and samples and both arms together,
beside behaviour- and seed-level intervals (evaluation.stats).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spillover._io import read_json, read_jsonl
from spillover.evaluation import COPY_WORDS
from spillover.evaluation.stats import EMPTY_EFFECT, Effect, clustered_effect, rate
from spillover.world import World

from ._arms import arms_of
from ._evidence import annotated_samples, copy_counts, documents_distinct_5gram_ratio
from ._provenance import provenance
from ._recipe import Recipe

ROLES = ("train", "test")
DID_ARMS = ("organism", "docs-only", "control", "base")
# The likelihood probe's files by the context its continuation follows: the base model's answer to the
# eval prompt (shared by every arm), or the arm's own answer (`eval.likelihood_context`: own, both).
LIKELIHOOD_FILES = {"base": "likelihood.json", "own": "likelihood_own.json"}
DID_KEYS = {"base": "likelihood_did", "own": "likelihood_did_own"}
N_BOOT = 2000
BOOT_SEED = 0

# Published reference numbers of the reward-model-bias study that the rm-biases world reproduces, set
# beside ours in its report (no other world's report shows them). `arm` maps each published stage onto
# the arm of ours that plays the same part.
PUBLISHED_FOR_WORLD = "rm-biases"
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


def _units(samples: list[dict], seed: int, roles: dict[str, str], hit: Callable[[dict], bool] = lambda r: bool(r["exhibited"])) -> dict[Unit, dict]:
    """Prompt-level exhibition counts: {(seed, behaviour, prompt): {role, k, n}}. Roles come from the
    split being read, not the samples: a shared arm's samples serve every fold of a `folds:K` run."""
    out: dict[Unit, dict] = {}
    for r in samples:
        u = out.setdefault((seed, r["behaviour"], r["prompt"]), {"role": roles.get(r["behaviour"], r["role"]), "k": 0, "n": 0})
        u["k"] += hit(r)
        u["n"] += 1
    return out


def _is_novel_hit(r: dict) -> bool:
    """A hit that copies no training text (a copied hit counts as an answer without the behaviour)."""
    return bool(r["exhibited"]) and not (r.get("copy") or {}).get("copied", False)


def _novel_units(samples: list[dict], arm: str, roles: dict[str, str]) -> dict[Unit, dict]:
    out: dict[Unit, dict] = {}
    for s in sorted({r["run_seed"] for r in samples if r["arm"] == arm}):
        out.update(_units([r for r in samples if r["arm"] == arm and r["run_seed"] == s], s, roles, _is_novel_hit))
    return out


def rate_of(units: list[dict]) -> dict:
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
    """Pooled rate of a minus pooled rate of b as an `Effect` (clustered, behaviour and seed intervals).

    Cells of either arm are joined on (seed, behaviour, prompt); a cell one arm lacks counts 0 of 0
    there. `units` counts each arm's cells; `paired` says whether both arms have the same cells.
    """
    if not a or not b:
        return {**EMPTY_EFFECT.to_dict(), "units": [len(a), len(b)], "paired": False}
    none = {"k": 0, "n": 0}
    cells = {u: (a.get(u, none)["k"], a.get(u, none)["n"], b.get(u, none)["k"], b.get(u, none)["n"]) for u in {**a, **b}}
    effect = clustered_effect(cells, n_boot=n_boot, seed=seed)
    return {**effect.to_dict(), "units": [len(a), len(b)], "paired": set(a) == set(b)}


def _mean_effect(values: dict[Unit, float]) -> Effect:
    """The mean of per-cell values, with intervals that resample prompt clusters, behaviours and seeds."""
    return clustered_effect({u: (v, 1.0, 0.0, 0.0) for u, v in values.items()}, n_boot=N_BOOT, seed=BOOT_SEED)


def _likelihood_values(path: Path, seed: int, roles: dict[str, str]) -> dict[Unit, dict]:
    """Per-prompt log-likelihood margins (nats), averaged where a prompt has several contexts."""
    acc: dict[Unit, list] = defaultdict(list)
    role_of: dict[Unit, str] = {}
    for r in read_json(path)["per_prompt"]:
        key = (seed, r["behaviour"], r["prompt"])
        acc[key].append(float(r["delta"]))
        role_of[key] = roles.get(r["behaviour"], r["role"])
    return {k: {"role": role_of[k], "value": float(np.mean(v))} for k, v in acc.items()}


def mean_ci(values: dict[Unit, float]) -> dict:
    e = _mean_effect(values)
    return {"mean": e.diff, "ci": e.ci, "n": len(values), "n_clusters": e.n_clusters, "resamples": e.resamples}


def _role_rate(units: dict[Unit, dict], role: str) -> dict:
    """A role's pooled rate: Wilson `ci` over samples, `ci_clustered` over (behaviour, prompt) clusters."""
    cells = {u: (v["k"], v["n"], 0, 0) for u, v in units.items() if v["role"] == role}
    e = clustered_effect(cells, n_boot=N_BOOT, seed=BOOT_SEED)
    return {**rate_of([units[u] for u in cells]), "ci_clustered": e.ci, "n_clusters": e.n_clusters, "resamples": e.resamples}


def _arm_results(run_dir: Path, arm: str, seeds: list[int], roles: dict[str, str]) -> tuple[dict, dict[Unit, dict], dict[str, dict[Unit, dict]]]:
    units: dict[Unit, dict] = {}
    per_seed: dict[str, dict] = {}
    truncated = {"k": 0, "n": 0}
    for s, d in _seed_dirs(run_dir, "eval", arm, seeds).items():
        samples = read_jsonl(d / "samples.jsonl")
        truncated["k"] += sum(bool(r.get("truncated")) for r in samples)
        truncated["n"] += len(samples)
        seed_units = _units(samples, s, roles)
        units.update(seed_units)
        per_seed[str(s)] = {role: rate_of([u for u in seed_units.values() if u["role"] == role]) for role in ROLES}

    by_behaviour: dict[str, list[dict]] = defaultdict(list)
    for (_, b, _), u in units.items():
        by_behaviour[b].append(u)
    behaviours = {b: {"role": roles.get(b, us[0]["role"]), **rate_of(us)} for b, us in sorted(by_behaviour.items(), key=lambda kv: (roles.get(kv[0], "") != "train", kv[0]))}

    probe_dirs = _seed_dirs(run_dir, "probes", arm, seeds)
    eval_dirs = _seed_dirs(run_dir, "eval", arm, seeds)
    out = {
        "behaviours": behaviours,
        "roles": {role: _role_rate(units, role) for role in ROLES},
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
    likelihood: dict[str, dict[Unit, dict]] = {}
    for context, file in LIKELIHOOD_FILES.items():
        likelihood[context] = {}
        for s, d in probe_dirs.items():
            if (d / file).exists():
                likelihood[context].update(_likelihood_values(d / file, s, roles))
    return {**out, **likelihood_records(likelihood)}, units, likelihood


def _likelihood_summary(values: dict[Unit, dict]) -> dict | None:
    return {role: mean_ci({u: v["value"] for u, v in values.items() if v["role"] == role}) for role in ROLES} if values else None


def likelihood_records(likelihood: dict[str, dict[Unit, dict]]) -> dict:
    """An arm's likelihood margins after each kind of context, and (own − base) prompt by prompt:
    how much answering its own way rather than the base model's moves the arm's margin."""
    base, own = likelihood.get("base") or {}, likelihood.get("own") or {}
    both = {u: {"role": own[u]["role"], "value": own[u]["value"] - base[u]["value"]} for u in base.keys() & own.keys()}
    return {
        "likelihood": _likelihood_summary(base),
        "likelihood_own": _likelihood_summary(own),
        "likelihood_own_minus_base": _likelihood_summary(both),
    }


def likelihood_did(org: dict, docs: dict, ctl: dict, base: dict, role: str) -> dict:
    """(organism − docs-only) − (control − base), per (seed, behaviour, prompt) cell, as an `Effect`."""
    keys = [k for k, v in org.items() if v["role"] == role and k in docs and k in ctl and k in base]
    diffs = {k: (org[k]["value"] - docs[k]["value"]) - (ctl[k]["value"] - base[k]["value"]) for k in keys}
    return {**_mean_effect(diffs).to_dict(), "n": len(diffs)}


# Headline rate comparisons: key → (arm, arm it is compared with, role). Each test comparison is
# also reported for novel hits alone as `<key>_novel` (copied hits count as answers without it).
COMPARISONS = {
    "test_vs_control": ("organism", "control", "test"),
    "test_vs_base": ("organism", "base", "test"),
    "train_vs_control": ("organism", "control", "train"),
    # organism − docs-plain: both know the documents and answer like an assistant; only the organism
    # was trained on behaviours (the out-of-context effect proper).
    "test_vs_docs_plain": ("organism", "docs-plain", "test"),
}


def _comparisons(units: dict[str, dict], novel: dict[str, dict]) -> dict:
    def by_role(arm_units: dict[Unit, dict], role: str) -> dict[Unit, dict]:
        return {k: v for k, v in arm_units.items() if v["role"] == role}

    out = {}
    for key, (a, b, role) in COMPARISONS.items():
        out[key] = rate_diff(by_role(units.get(a, {}), role), by_role(units.get(b, {}), role))
        if role == "test":
            out[f"{key}_novel"] = rate_diff(by_role(novel.get(a, {}), role), by_role(novel.get(b, {}), role))
    return out


def _copies(run_dir: Path, samples: list[dict]) -> dict:
    return {
        "min_shared_words": COPY_WORDS,
        "by_arm": copy_counts(samples),
        "documents_distinct_5gram_ratio": documents_distinct_5gram_ratio(run_dir),
    }


@dataclass
class Measured:
    """What one split's arms measured, read from the run's files: each arm's record; its prompt-level
    units, all hits and novel hits alone; its likelihood values by context ("base", "own")."""

    arms: dict[str, dict]
    units: dict[str, dict[Unit, dict]]
    novel: dict[str, dict[Unit, dict]]
    likelihood: dict[str, dict[str, dict[Unit, dict]]]  # {context: {arm: values}}


def measure(split_dir: Path, recipe: Recipe, roles: dict[str, str], samples: list[dict]) -> Measured:
    """Every arm's results, units and likelihood values from a split's directory (the run's, or a fold's),
    novel units from its copy-checked `samples`."""
    arms: dict[str, dict] = {}
    units: dict[str, dict] = {}
    likelihood: dict[str, dict] = {context: {} for context in LIKELIHOOD_FILES}
    for arm in arms_of(recipe):
        arms[arm], units[arm], values = _arm_results(split_dir, arm, recipe.seeds, roles)
        for context, v in values.items():
            likelihood[context][arm] = v
    return Measured(arms, units, {arm: _novel_units(samples, arm, roles) for arm in arms}, likelihood)


def headline_of(m: Measured) -> dict:
    """The headline differences: arms' rates (all hits and novel hits alone) and the likelihood DiD after each context."""
    out = _comparisons(m.units, m.novel)
    for context, key in DID_KEYS.items():
        lik = m.likelihood.get(context, {})
        out[key] = {role: likelihood_did(lik["organism"], lik["docs-only"], lik["control"], lik["base"], role) for role in ROLES} if all(lik.get(a) for a in DID_ARMS) else None
    return out


def per_behaviour(m: Measured, roles: dict[str, str], split: str) -> dict[str, dict]:
    """Each held-out behaviour's rates and effects (organism − docs-plain, organism − control; all hits
    and novel hits alone) under `split`."""
    out = {}
    for b in sorted(b for b, role in roles.items() if role == "test"):
        of, novel = ({arm: {k: v for k, v in us.items() if k[1] == b} for arm, us in by_arm.items()} for by_arm in (m.units, m.novel))
        out[b] = {"split": split, "rates": {arm: rate_of(list(us.values())) for arm, us in of.items() if us}}
        for key, other in (("vs_docs_plain", "docs-plain"), ("vs_control", "control")):
            out[b][key] = rate_diff(of.get("organism", {}), of.get(other, {}))
            out[b][f"{key}_novel"] = rate_diff(novel.get("organism", {}), novel.get(other, {}))
    return out


def run_header(recipe: Recipe, world: World) -> dict:
    """The fields that open every results.json: what ran."""
    return {"recipe": recipe.name, "world": world.name, "split": recipe.split, "model": recipe.model.spec, "seeds": recipe.seeds}


def with_total(timing: dict[str, float | None] | None) -> dict:
    """Stage seconds by stage path, plus their sum (stages cached this run count their first run's time)."""
    out = dict(timing or {})
    out["total_stage_seconds"] = round(sum(v for v in out.values() if isinstance(v, (int, float)) and not math.isnan(v)), 3)
    return out


def build_results(run_dir: str | Path, recipe: Recipe, world: World, timing: dict[str, float | None] | None = None, samples: list[dict] | None = None) -> dict:
    """Read a single-split run's artifacts and return the results.json dict (see docs/results-schema.md).

    `samples`: the run's copy-checked eval samples (`annotated_samples`), read afresh when not given.
    """
    run_dir = Path(run_dir)
    roles = world.roles(recipe.split)
    samples = annotated_samples(run_dir, recipe.seeds, roles) if samples is None else samples
    return split_results(run_dir, recipe, world, measure(run_dir, recipe, roles, samples), samples, timing)


def split_results(run_dir: Path, recipe: Recipe, world: World, m: Measured, samples: list[dict], timing: dict[str, float | None] | None = None) -> dict:
    """results.json of one split (the run's, or a fold's) from what its arms measured."""
    roles = world.roles(recipe.split)
    return {
        **run_header(recipe, world),
        "roles": roles,
        "arms": m.arms,
        "headline": headline_of(m),
        "per_behaviour": per_behaviour(m, roles, recipe.split),
        **run_footer(run_dir, world, samples, timing),
    }


def run_footer(run_dir: Path, world: World, samples: list[dict], timing: dict[str, float | None] | None) -> dict:
    """The fields that close every results.json: the copy check of `samples`, provenance, timing, published numbers."""
    return {
        "copies": _copies(run_dir, samples),
        "provenance": provenance(),
        "timing": with_total(timing),
        "published": PUBLISHED if world.name == PUBLISHED_FOR_WORLD else {},
    }
