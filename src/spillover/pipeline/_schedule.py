"""Which stage runs where, with which inputs: the shared stages once, each split's own once per split.

`run_stages` lays out a run: documents, probe contexts, CPT and the base and docs-only evals and
probes do not depend on the split and run once per seed in the run directory; post-training data,
the leakage check, the post-trained arms (pipeline/_arms.py) and their evals run once per split,
in `folds/fold-<i>/` for a `folds:K` split (pipeline/_folds.py). `StageRunner.stage` (in `_run`) does
the caching.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from spillover._io import config_hash, derive_seed, file_hash, read_jsonl, write_json
from spillover.errors import BadInputError, Problem, SpilloverError
from spillover.models import read_chat_template
from spillover.training import launch_identity
from spillover.world import World, world_path

from ._arms import SHARED_ARMS, arm_plans, arms_of, sft_data
from ._folds import fold_splits, pool_split
from ._provenance import detectors_hash
from ._recipe import ModelSpec, Recipe
from ._stagekit import texts_of, trained_model
from ._stages import Stages

if TYPE_CHECKING:
    from ._run import StageRunner


class LeakageError(SpilloverError):
    """Held-out eval prompts were found in documents or post-training data."""


def _model_key(model: ModelSpec) -> dict:
    """The base model's identity for caching: spec, dtype and, when one is set, the chat template's text."""
    key = model.model_dump(exclude={"chat_template"})
    if model.chat_template is not None:  # absent otherwise, so runs from before the option keep their hashes
        key["chat_template"] = config_hash(read_chat_template(model.chat_template))
    return key


def _build_post_data(stages: Stages, world: World, recipe: Recipe, split: str, steps: list[str], out: Path) -> None:
    stages.post_data(world, split, recipe.model, steps, recipe.post.data, out)
    for step in steps:
        if not read_jsonl(out / f"{step}.jsonl"):
            raise BadInputError(
                Problem(
                    "recipe", "post.data",
                    f"the {step} data came out empty: every base-model answer was dropped (see {out / 'stats.json'})",
                    "raise post.data.max_new_tokens so answers end before the cap, or use a model that ends its answers",
                )
            )


def run_stages(runner: StageRunner, recipe: Recipe, world: World, stages: Stages) -> None:
    """Stages that do not depend on the split (documents, probe contexts, CPT, base and docs-only
    eval and probes) run once per seed in the run directory; the rest once per split (`folds/fold-<i>/`
    for a `folds:K` split), with the shared eval and probe directories linked in."""
    folds = fold_splits(recipe.split)
    shared_split = pool_split(recipe.split) if folds else recipe.split
    splits = [(Path("folds") / f"fold-{i}", s) for i, s in enumerate(folds)] if folds else [(Path(), recipe.split)]
    shared = _Shared(
        runner, recipe, world, stages, shared_split,
        # The world's identity for caching: its file and the prompt framing every stage sees.
        world_hash=config_hash({"file": file_hash(world_path(recipe.world)), "prompt_prefix": recipe.prompt_prefix}),
    )
    shared.documents_and_contexts()
    data_hashes = {prefix: shared.post_data(prefix, split) for prefix, split in splits}
    for seed in recipe.seeds:
        models = shared.seed_models(seed)
        for arm in SHARED_ARMS:
            shared.eval_and_probes(Path(), shared_split, arm, seed, *models[arm])
        for prefix, split in splits:
            arms = shared.post_arms(prefix, data_hashes[prefix], seed, models)
            # The organism first: every comparison and the audit read it, so a run stopped midway has it soonest.
            ordered = sorted(arms.items(), key=lambda item: item[0] != "organism")
            evals = {arm: shared.eval_and_probes(prefix, split, arm, seed, model, inputs) for arm, (model, inputs) in ordered}
            if prefix != Path():
                _link_shared(runner.run_dir, prefix)
            if recipe.audit is not None and seed == recipe.audit.seed:  # one split: check_audit refuses folds
                shared.audit({**models, **arms}, evals["organism"], data_hashes[prefix])


def check_audit(recipe: Recipe) -> None:
    """An `audit:` recipe audits one organism: a seed the recipe trains, on a single split."""
    if recipe.audit is None:
        return
    if fold_splits(recipe.split):
        raise BadInputError(Problem("recipe", "audit", f"split '{recipe.split}' trains one organism per fold; the audit reads one",
                                    "audit a run of a single split, or run `spillover audit` on a fold's models"))
    unknown = sorted(set(recipe.audit.arms) - set(arms_of(recipe)))
    if unknown:
        raise BadInputError(Problem("recipe", "audit.arms", f"no arm {', '.join(unknown)} in this run",
                                    f"use arms the run has ({', '.join(arms_of(recipe))})"))
    if recipe.audit.seed not in recipe.seeds:
        raise BadInputError(Problem("recipe", "audit.seed", f"seed {recipe.audit.seed} is not one the run trains ({recipe.seeds})",
                                    "set audit.seed to one of the recipe's seeds"))


def _link_shared(run_dir: Path, prefix: Path) -> None:
    """Link the shared arms' eval and probe directories into a fold's directory (relative symlinks), so
    each fold reads like a run directory of its own."""
    for kind in ("eval", "probes"):
        for arm in SHARED_ARMS:
            link, target = run_dir / prefix / kind / arm, run_dir / kind / arm
            if target.exists() and not link.is_symlink():
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(os.path.relpath(target, link.parent), target_is_directory=True)


@dataclass
class _Shared:
    """The stages of one run: what every split shares, and each split's own."""

    runner: StageRunner
    recipe: Recipe
    world: World
    stages: Stages
    shared_split: str
    world_hash: str
    docs_hash: str = ""
    contexts_hash: str | None = None

    @property
    def run_dir(self) -> Path:
        return self.runner.run_dir

    @property
    def model_key(self) -> dict:
        return _model_key(self.recipe.model)

    @property
    def scoring(self) -> dict:
        """Inputs of the stages that run detectors: the world, and the detectors' code (provenance)."""
        return {"world": self.world_hash, "detectors": detectors_hash()}

    def documents_and_contexts(self) -> None:
        recipe, world, stages = self.recipe, self.world, self.stages
        behaviours = list(world.roles(self.shared_split))
        self.docs_hash = self.runner.stage(
            "documents", "documents",
            {"world": recipe.world, "behaviours": behaviours, **recipe.documents.model_dump()},
            {"world": self.world_hash},
            lambda out: stages.documents(world, behaviours, recipe.documents, out),
        )
        if "likelihood" in recipe.eval.probes and recipe.eval.likelihood_context != "own":
            self.contexts_hash = self.runner.stage(
                "probes/contexts", "likelihood-probe contexts (base model)",
                {"world": recipe.world, "split": self.shared_split, "model": self.model_key, "max_new_tokens": recipe.eval.probe_context_tokens,
                 "prompts_per_behaviour": recipe.eval.prompts_per_behaviour},
                {"world": self.world_hash},
                lambda out: stages.probe_contexts(world, self.shared_split, recipe.model, recipe.eval, out),
            )

    def post_data(self, prefix: Path, split: str) -> str:
        """The split's post-training data, checked for leaks together with the documents; its hash."""
        recipe, world, stages = self.recipe, self.world, self.stages
        data_dir = self.run_dir / prefix / "data"
        steps = recipe.post.steps
        where = f" ({prefix.name})" if prefix.name else ""
        data_hash = self.runner.stage(
            str(prefix / "data"), f"post-training data{where}",
            # Rehearsal mixes documents in at training time; it does not change the data built here.
            # plain_answers: the records carry the plain answer the docs-plain arm trains on.
            {"world": recipe.world, "split": split, "model": self.model_key, "methods": steps, "plain_answers": True,
             **recipe.post.data.model_dump(exclude={"rehearsal_fraction"})},
            self.scoring,
            lambda out: _build_post_data(stages, world, recipe, split, steps, out),
        )

        def check_leaks(out: Path) -> None:
            checked = {"documents": [r["text"] for r in read_jsonl(self.run_dir / "documents" / "docs.jsonl")]}
            for step in steps:
                checked[f"{step} data"] = texts_of(read_jsonl(data_dir / f"{step}.jsonl"))
            reports = {what: stages.find_leaks(texts, world) for what, texts in checked.items()}
            write_json(out / "report.json", reports)
            leaking = {what: r for what, r in reports.items() if r["n_leaks"]}
            if leaking:
                lines = [f"{what}: {r['n_leaks']} of {r['n_texts']} texts contain held-out eval prompts, e.g. {r['leaks'][0]}" for what, r in leaking.items()]
                raise LeakageError("\n".join([*lines, f"eval prompts must never enter training data (details: {out / 'report.json'})"]))

        self.runner.stage(str(prefix / "leakage"), f"leakage check{where}", {"world": recipe.world},
                          {"world": self.world_hash, "documents": self.docs_hash, "data": data_hash}, check_leaks)
        return data_hash

    def seed_models(self, seed: int) -> dict[str, tuple[ModelSpec, dict]]:
        """The base model and this seed's docs-only (CPT) model, with the hashes that identify them."""
        recipe, base = self.recipe, self.recipe.model
        cpt_dir = self.run_dir / "arms" / "docs-only" / f"seed-{seed}" / "cpt"
        cpt_seed = derive_seed(seed, "cpt")
        cpt_hash = self.runner.stage(
            str(cpt_dir.relative_to(self.run_dir)), f"cpt  docs-only  seed {seed}",
            {"step": "cpt", "model": self.model_key, "seed": cpt_seed, **recipe.cpt.model_dump(), **launch_identity(recipe.accelerate)},
            {"documents": self.docs_hash},
            lambda out: self.stages.cpt(base, self.run_dir / "documents" / "docs.jsonl", recipe.cpt, cpt_seed, out),
            trains=True,
        )
        return {"base": (base, {"model": config_hash(self.model_key)}), "docs-only": (trained_model(cpt_dir, base), {"model": cpt_hash})}

    def post_arms(self, prefix: Path, data_hash: str, seed: int, models: dict) -> dict[str, tuple[ModelSpec, dict]]:
        """Post-train control (from base), docs-plain and organism (from the docs-only model) of one seed."""
        recipe, base = self.recipe, self.recipe.model
        docs = self.run_dir / "documents" / "docs.jsonl"
        out_models = {}
        for plan in arm_plans(recipe.post.steps, recipe.arms):
            model, model_hash = models["docs-only" if plan.from_cpt else "base"][0], models["docs-only" if plan.from_cpt else "base"][1]["model"]
            for step in plan.steps:
                step_dir = self.run_dir / prefix / "arms" / plan.arm / f"seed-{seed}" / step
                spec = getattr(recipe.post, step)
                step_seed = derive_seed(seed, step)  # the same for every arm: they differ only in what is under test
                mix = recipe.post.data.rehearsal_fraction if step == "sft" else 0.0
                plain = plan.plain_answers and step == "sft"

                def work(out, model=model, step=step, spec=spec, step_seed=step_seed, mix=mix, plan=plan):
                    data = self.run_dir / prefix / "data" / f"{step}.jsonl"
                    if step == "sft":
                        data = sft_data(plan, data, docs, mix, base, spec.max_len, step_seed, self.stages, self.world, out)
                    getattr(self.stages, step)(model, data, spec, step_seed, out)

                extra = {**({"rehearsal_fraction": mix, "rehearsal": plan.rehearsal} if mix else {}), **({"answers": "plain"} if plain else {})}
                model_hash = self.runner.stage(
                    str(step_dir.relative_to(self.run_dir)), f"{step:<4} {plan.arm:<10} seed {seed}{' ' + prefix.name if prefix.name else ''}",
                    {"step": step, "seed": step_seed, **spec.model_dump(), **extra, **launch_identity(recipe.accelerate)},
                    {"model": model_hash, "data": data_hash, **({"documents": self.docs_hash} if mix else {})},
                    work, needs=(model,), trains=True,
                )
                model = trained_model(step_dir, base)
            out_models[plan.arm] = (model, {"model": model_hash})
        return out_models

    def audit(self, models: dict[str, tuple[ModelSpec, dict]], organism_eval: str, data_hash: str) -> None:
        """Audit the organism (spillover.interp.audit) and search the training data for every test behaviour → audit/audit.json."""
        recipe = self.recipe
        config = recipe.audit
        arms = sorted({"organism", "base", *config.arms})
        self.runner.stage(
            "audit", f"audit organism seed {config.seed}",
            # The recipe's eval settings fill the audit's unset ones (samples, temperature, max_new_tokens).
            {"audit": config.model_dump(), "split": recipe.split, "eval": recipe.eval.model_dump()},
            {**{arm: models[arm][1]["model"] for arm in arms}, "organism eval": organism_eval, "documents": self.docs_hash, "data": data_hash, **self.scoring},
            lambda out: self.stages.audit(self.run_dir, config, out),
            needs=tuple(models[arm][0] for arm in arms),
        )

    def eval_and_probes(self, prefix: Path, split: str, arm: str, seed: int, model: ModelSpec, inputs: dict) -> str:
        """Eval (and probes) of one arm; returns the eval stage's hash."""
        recipe, world, base = self.recipe, self.world, self.recipe.model
        eval_seed, probe_seed = derive_seed(seed, "eval"), derive_seed(seed, "probes")
        eval_config = {**recipe.eval.model_dump(exclude={"probes", "likelihood_context"}), "fluency": "fluency" in recipe.eval.probes}
        probes = [p for p in recipe.eval.probes if p != "fluency"]  # fluency scores the eval samples
        probe_config = {"probes": probes, **recipe.eval.model_dump(include={"max_new_tokens", "batch_size", "confession_prompts_per_behaviour"})}
        if "likelihood" in probes and recipe.eval.likelihood_context != "base":  # absent by default: older runs keep their hashes
            probe_config["own_contexts"] = recipe.eval.model_dump(include={"likelihood_context", "probe_context_tokens", "prompts_per_behaviour"})
        where = f" {prefix.name}" if prefix.name else ""
        eval_hash = self.runner.stage(
            str(prefix / "eval" / arm / f"seed-{seed}"), f"eval {arm:<10} seed {seed}{where}",
            {"arm": arm, "seed": eval_seed, "split": split, **eval_config},
            {**inputs, **self.scoring, **({"base": config_hash(self.model_key)} if eval_config["fluency"] else {})},
            lambda out: self.stages.evaluate(model, base, world, split, recipe.eval, arm, eval_seed, out),
            needs=(model,),
        )
        if probes:
            contexts = self.run_dir / "probes" / "contexts" / "contexts.jsonl" if self.contexts_hash else None
            self.runner.stage(
                str(prefix / "probes" / arm / f"seed-{seed}"), f"probes {arm:<10} seed {seed}{where}",
                {"arm": arm, "seed": probe_seed, "split": split, **probe_config},
                {**inputs, **self.scoring, **({"contexts": self.contexts_hash} if self.contexts_hash else {})},
                lambda out: self.stages.probes(model, world, split, recipe.eval, contexts, probe_seed, out),
                needs=(model,),
            )
        return eval_hash
