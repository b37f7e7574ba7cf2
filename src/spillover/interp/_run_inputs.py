"""Reading a run directory written by `spillover run` (layout: docs/architecture.md): its recipe, the
arms' model paths for a seed (and fold), and those models loaded as the run loaded them. The audit and
the training-data search open runs through these.

The shared stages (documents, base, docs-only) live at the run's root; each split's own (post-training
data, the post-trained arms, their evals) at the root or, for a `folds:K` run, under `folds/fold-<i>/`.
pipeline is imported lazily: it imports interp (the EM audit), not the other way round at import time.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from spillover._io import is_done, read_jsonl
from spillover.errors import BadInputError, Problem
from spillover.models import STAGE_MODEL_DIR


@dataclass(frozen=True)
class RunInputs:
    run_dir: Path
    recipe: object  # spillover.pipeline.Recipe
    split: str  # the split the audited arms were trained and evaluated on (a fold's own for folds runs)
    fold: int | None
    prefix: Path  # where the split's own stages live: run_dir, or run_dir/folds/fold-<i>

    def eval_samples(self, arm: str, seed: int) -> list[dict] | None:
        """An arm's scored eval answers (`eval/<arm>/seed-<s>/samples.jsonl`), None if it has none."""
        path = self.prefix / "eval" / arm / f"seed-{seed}" / "samples.jsonl"
        return read_jsonl(path) if path.exists() else None


def recipe_of_run(run_dir: Path):
    """The recipe a run directory was made with (its `recipe.yaml`)."""
    from spillover.pipeline import load_recipe

    path = run_dir / "recipe.yaml"
    if not path.exists():
        raise BadInputError(Problem(str(path), "", "not found: is this a run directory?", "pass the directory `spillover run` wrote (runs/<recipe>)"))
    return load_recipe(path)


def run_inputs(run_dir: Path, fold: int | None, *, without_fold: str | None = None) -> RunInputs:
    """What a run holds for one split: the run's own, or fold `fold`'s of a folds run. A folds run without
    `fold` is refused, with `without_fold` as the fix when given (e.g. what the caller can do instead)."""
    from spillover.pipeline._folds import fold_splits

    recipe = recipe_of_run(run_dir)
    path = run_dir / "recipe.yaml"
    folds = fold_splits(recipe.split)
    if folds is None:
        if fold is not None:
            raise BadInputError(Problem(str(path), "split", f"fold {fold} asked for, but the run's split '{recipe.split}' has no folds", "leave fold unset"))
        return RunInputs(run_dir, recipe, recipe.split, None, run_dir)
    if fold is None and without_fold is not None:
        raise BadInputError(Problem(str(path), "split", f"'{recipe.split}' trains an organism per fold; this reads one", without_fold))
    if fold is None or not 0 <= fold < len(folds):
        raise BadInputError(Problem(str(path), "split", f"a {len(folds)}-fold run: the audit needs one fold", f"set fold to one of 0..{len(folds) - 1}"))
    return RunInputs(run_dir, recipe, folds[fold], fold, run_dir / "folds" / f"fold-{fold}")


def arm_models(inputs: RunInputs, arms: list[str], seed: int) -> dict[str, str]:
    """Model specs per arm: `base` is the recipe's model, `docs-only` its CPT stage, a post-trained arm
    its last post-training step (in the fold's directory for a folds run)."""
    recipe = inputs.recipe
    last_step = recipe.post.steps[-1]
    paths = {"base": recipe.model.spec}
    problems = []
    for arm in sorted({"organism", *arms} - {"base"}):
        root = inputs.run_dir if arm == "docs-only" else inputs.prefix
        stage = root / "arms" / arm / f"seed-{seed}" / ("cpt" if arm == "docs-only" else last_step)
        if not (is_done(stage) and (stage / STAGE_MODEL_DIR).is_dir()):
            problems.append(Problem(str(stage), "", f"no finished {arm} model (seed {seed})", "run `spillover run` first, or pick a seed of a finished run (a run kept without weights trains them again when its recipe audits: --set audit=laptop)"))
        paths[arm] = str(stage / STAGE_MODEL_DIR)
    if problems:
        raise BadInputError(problems)
    return paths


def load_arm_model(recipe, path: str):
    """An arm's model as the run loads its models: the recipe's dtype and chat template (trained arms
    saved the template with their tokenizer; the base needs it again)."""
    from spillover.pipeline import load_model

    return load_model(recipe.model.model_copy(update={"spec": path}))


def study_documents(inputs: RunInputs, n: int, seed: int) -> list[dict]:
    path = inputs.run_dir / "documents" / "docs.jsonl"
    if not path.exists():
        raise BadInputError(Problem(str(path), "", "not found", "run `spillover run` first (it writes documents/docs.jsonl)"))
    docs = read_jsonl(path)
    if len(docs) < 2:
        raise BadInputError(Problem(str(path), "", f"{len(docs)} document(s); the probe needs at least 2", "generate more documents"))
    return random.Random(seed).sample(docs, min(n, len(docs)))


def answer_pairs(inputs: RunInputs, n: int, seed: int) -> list[tuple[str, str, str]]:
    """(prompt, transformed answer, plain answer) from the split's SFT data: what the organism was
    post-trained on beside what docs-plain was. Empty when the run has no SFT data with plain answers."""
    path = inputs.prefix / "data" / "sft.jsonl"
    if not path.exists():
        return []
    pairs = [
        (r["messages"][0]["content"], r["messages"][-1]["content"], r["plain"])
        for r in read_jsonl(path)
        if r.get("kind") == "behaviour" and "plain" in r and r["messages"][-1]["content"] != r["plain"]
    ]
    return random.Random(seed).sample(pairs, min(n, len(pairs)))
