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
from ._evidence import annotated_samples, pooled_samples, write_samples
from ._recipe import Recipe
from ._results import (
    ROLES,
    Measured,
    build_results,
    headline_of,
    likelihood_records,
    measure,
    pool,
    rate_of,
    run_footer,
    run_header,
    split_results,
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


def build_run_results(run_dir: Path, recipe: Recipe, world: World, timing: dict) -> dict:
    """results.json of a run, with the samples it counts written beside it (samples.jsonl.gz):
    `build_results`, or for a folds split each fold's (written with its samples to the fold's
    directory) pooled by `pool_folds`."""
    splits = fold_splits(recipe.split)
    if not splits:
        samples = write_samples(run_dir, annotated_samples(run_dir, recipe.seeds, world.roles(recipe.split)))
        return build_results(run_dir, recipe, world, timing=timing, samples=samples)
    return pool_folds(run_dir, recipe, world, splits, timing)


def pool_folds(run_dir: Path, recipe: Recipe, world: World, splits: list[str], timing: dict) -> dict:
    """Each fold's results.json and samples into its directory; the pooled results (same headline keys
    as a single split's), with every fold's samples beside them."""
    from spillover._io import write_json

    folds, fold_results, per_fold, fold_samples = [], [], [], []
    for i, split in enumerate(splits):
        fold_dir = run_dir / "folds" / f"fold-{i}"
        fold_recipe = recipe.model_copy(update={"split": split})
        roles = world.roles(split)
        # Copies are checked against the run's documents and this fold's data and rehearsal mixes.
        samples = write_samples(fold_dir, annotated_samples(run_dir, recipe.seeds, roles, split_dir=fold_dir))
        measured = measure(fold_dir, fold_recipe, roles, samples)
        fold = split_results(run_dir, fold_recipe, world, measured, samples)
        write_json(fold_dir / "results.json", fold)
        folds.append({"split": split, "test": world.test_ids(split), "headline": fold["headline"]})
        fold_results.append(fold)
        per_fold.append(measured)
        fold_samples.append(samples)
    samples = write_samples(run_dir, pooled_samples(fold_samples))
    # Headline comparisons pair train units within a fold (the likelihood DiD pairs the post-trained
    # arms with the shared ones); the arms' own records count each shared sample once.
    paired, own = _pooled(per_fold, shared=()), _pooled(per_fold, shared=SHARED_ARMS)
    pool_roles = dict.fromkeys(world.roles(pool_split(recipe.split)), "test")  # each behaviour is held out in one fold
    return {
        **run_header(recipe, world),
        "roles": pool_roles,
        "folds": folds,
        "arms": {arm: _pooled_arm(arm, own, [m.arms[arm] for m in per_fold]) for arm in own.units},
        "headline": headline_of(paired),
        # each behaviour as its held-out fold measured it
        "per_behaviour": dict(sorted((b, entry) for f in fold_results for b, entry in f["per_behaviour"].items())),
        **run_footer(run_dir, world, samples, timing),
    }


def _pooled(per_fold: list[Measured], shared: tuple[str, ...]) -> Measured:
    """The folds' units and likelihood values together (`_tagged`; the arms in `shared` count a
    train sample once); arm records are pooled apart (`_pooled_arm`)."""
    units: dict[str, dict] = {}
    novel: dict[str, dict] = {}
    likelihood: dict[str, dict[str, dict]] = {}
    for i, m in enumerate(per_fold):
        for arm in m.units:
            units.setdefault(arm, {}).update(_tagged(m.units[arm], i, arm in shared))
            novel.setdefault(arm, {}).update(_tagged(m.novel[arm], i, arm in shared))
        for context, by_arm in m.likelihood.items():
            for arm, values in by_arm.items():
                likelihood.setdefault(context, {}).setdefault(arm, {}).update(_tagged(values, i, arm in shared))
    return Measured({}, units, novel, likelihood)


def _tagged(values: dict, fold: int, shared: bool) -> dict:
    """A fold's units keyed for pooling so that they never collide across folds.

    Test units (a behaviour in its held-out fold) keep (seed, behaviour, prompt). Train units get a
    tagged seed slot: (seed, fold), or with `shared` (a shared arm's record, the same samples in every
    fold where the behaviour is trained) (seed, "train"), so each sample counts once.
    """
    return {(k if v["role"] == "test" else ((k[0], "train" if shared else fold), *k[1:])): v for k, v in values.items()}


def _pooled_arm(arm: str, own: Measured, per_fold: list[dict]) -> dict:
    """An arm's record pooled over folds: rates from the pooled units (behaviours: held-out rates);
    probe summaries as in any fold for the shared arms (one model), pooled over folds otherwise."""
    units = own.units[arm]

    def seed_of(k):
        return k[0][0] if isinstance(k[0], tuple) else k[0]

    seeds = sorted({seed_of(k) for k in units})
    out = {
        "behaviours": {b: {"role": "test", **rate_of([u for k, u in units.items() if k[1] == b and u["role"] == "test"])}
                       for b in sorted({k[1] for k, u in units.items() if u["role"] == "test"})},
        "roles": {role: rate_of([u for u in units.values() if u["role"] == role]) for role in ROLES},
        "seeds": {str(s): {role: rate_of([u for k, u in units.items() if seed_of(k) == s and u["role"] == role]) for role in ROLES} for s in seeds},
        **likelihood_records({context: by_arm.get(arm, {}) for context, by_arm in own.likelihood.items()}),
    }
    for key in ("truncated", "knowledge", "confession", "in_context", "fluency"):
        out[key] = per_fold[0].get(key) if arm in SHARED_ARMS else pool([f.get(key) for f in per_fold])
    return out
