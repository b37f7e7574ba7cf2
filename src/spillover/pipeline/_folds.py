"""Folds: `split: folds:K[:NAME]` runs K complementary splits of the behaviours in play under split
NAME (default english-core), so every behaviour is held out exactly once (`fold:I:K:NAME`, see
`World.roles`).

The stages that do not depend on the split (documents, probe contexts, CPT, base and docs-only eval
and probes) run once per seed in the run directory; each fold's own stages live in
`folds/fold-<i>/`, with its own results.json. The run's results.json pools the folds: every test
unit is a behaviour while it was held out, so the headline and `per_behaviour` cover each behaviour
once.
"""

from __future__ import annotations

from pathlib import Path

from spillover.errors import BadInputError, Problem
from spillover.world import World

from ._arms import SHARED_ARMS
from ._recipe import Recipe
from ._results import (
    PUBLISHED,
    ROLES,
    _mean_ci,
    _rate_of,
    build_results,
    collect_arms,
    headline_of,
    pool,
    run_header,
    with_total,
)

DEFAULT_POOL = "english-core"


def fold_splits(split: str) -> list[str] | None:
    """The K fold splits of `folds:K[:NAME]`, or None for any other split."""
    if not split.startswith("folds:"):
        return None
    parts = split.split(":")
    if len(parts) not in (2, 3) or not parts[1].isdigit() or (len(parts) == 3 and not parts[2]):
        raise BadInputError(Problem("recipe", "split", f"'{split}' is not a folds split", "use folds:K or folds:K:NAME, e.g. folds:3:english-core"))
    name = parts[2] if len(parts) == 3 else DEFAULT_POOL
    return [f"fold:{i}:{parts[1]}:{name}" for i in range(int(parts[1]))]


def pool_split(split: str) -> str:
    """The named split whose behaviours a `folds:K[:NAME]` split deals into folds."""
    parts = split.split(":")
    return parts[2] if len(parts) == 3 else DEFAULT_POOL


def check_split(world: World, split: str) -> None:
    """Raise BadInputError (one line) unless `split` names behaviours in play for this world."""
    for s in fold_splits(split) or [split]:
        world.roles(s)


def build_run_results(run_dir: Path, recipe: Recipe, world: World, timing: dict, samples: list[dict] | None = None) -> dict:
    """results.json of a run: `build_results`, or for a folds split each fold's (written to its own
    directory) pooled by `pool_folds`."""
    splits = fold_splits(recipe.split)
    if not splits:
        return build_results(run_dir, recipe, world, timing=timing, samples=samples)
    return pool_folds(run_dir, recipe, world, splits, timing)


def pool_folds(run_dir: Path, recipe: Recipe, world: World, splits: list[str], timing: dict) -> dict:
    from spillover._io import write_json

    folds, arms_by_fold = [], []
    units: dict[str, dict] = {}
    lik: dict[str, dict] = {}
    own_units: dict[str, dict] = {}
    own_lik: dict[str, dict] = {}
    behaviours: dict[str, dict] = {}
    for i, split in enumerate(splits):
        fold_dir = run_dir / "folds" / f"fold-{i}"
        fold_recipe = recipe.model_copy(update={"split": split})
        roles = world.roles(split)
        fold = build_results(fold_dir, fold_recipe, world)
        write_json(fold_dir / "results.json", fold)
        folds.append({"split": split, "test": world.test_ids(split), "headline": fold["headline"]})
        behaviours.update(fold["per_behaviour"])
        arms, fold_units, fold_lik = collect_arms(fold_dir, fold_recipe, roles)
        arms_by_fold.append(arms)
        for arm in arms:
            # Headline comparisons pair train units within a fold (the likelihood DiD pairs the
            # post-trained arms with the shared ones); the arms' own records count each sample once.
            units.setdefault(arm, {}).update(_tagged(fold_units[arm], i, shared=False))
            lik.setdefault(arm, {}).update(_tagged(fold_lik[arm], i, shared=False))
            own_units.setdefault(arm, {}).update(_tagged(fold_units[arm], i, shared=arm in SHARED_ARMS))
            own_lik.setdefault(arm, {}).update(_tagged(fold_lik[arm], i, shared=arm in SHARED_ARMS))
    pool_roles = world.roles(pool_split(recipe.split))
    return {
        **run_header(recipe, world),
        "roles": dict.fromkeys(pool_roles, "test"),  # each behaviour is held out in one fold
        "folds": folds,
        "arms": {arm: _pooled_arm(arm, own_units[arm], own_lik[arm], [a[arm] for a in arms_by_fold]) for arm in units},
        "headline": headline_of(units, lik),
        "per_behaviour": dict(sorted(behaviours.items())),
        "timing": with_total(timing),
        "published": PUBLISHED,
    }


def _tagged(values: dict, fold: int, shared: bool) -> dict:
    """A fold's units keyed for pooling so that they never collide across folds.

    Test units (a behaviour in its held-out fold) keep (seed, behaviour, prompt). Train units get a
    tagged seed slot: (seed, fold), or with `shared` (a shared arm's record, the same samples in every
    fold where the behaviour is trained) (seed, "train"), so each sample counts once.
    """
    return {(k if v["role"] == "test" else ((k[0], "train" if shared else fold), *k[1:])): v for k, v in values.items()}


def _pooled_arm(arm: str, units: dict, lik: dict, per_fold: list[dict]) -> dict:
    """An arm's record pooled over folds: rates from the pooled units (behaviours: held-out rates);
    probe summaries as in any fold for the shared arms (one model), pooled over folds otherwise."""
    def seed_of(k):
        return k[0][0] if isinstance(k[0], tuple) else k[0]

    seeds = sorted({seed_of(k) for k in units})
    out = {
        "behaviours": {b: {"role": "test", **_rate_of([u for k, u in units.items() if k[1] == b and u["role"] == "test"])}
                       for b in sorted({k[1] for k, u in units.items() if u["role"] == "test"})},
        "roles": {role: _rate_of([u for u in units.values() if u["role"] == role]) for role in ROLES},
        "seeds": {str(s): {role: _rate_of([u for k, u in units.items() if seed_of(k) == s and u["role"] == role]) for role in ROLES} for s in seeds},
        "likelihood": {role: _mean_ci({u: v["value"] for u, v in lik.items() if v["role"] == role}) for role in ROLES} if lik else None,
    }
    for key in ("truncated", "knowledge", "confession", "in_context", "fluency"):
        out[key] = per_fold[0].get(key) if arm in SHARED_ARMS else pool([f.get(key) for f in per_fold])
    return out
