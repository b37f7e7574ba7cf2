"""`run_recipe`: documents → data → CPT → post-training → eval → results, cached stage by stage.

Each stage directory holds `stage.json` (its config, its inputs' hashes and the hash of both)
and a `DONE` marker written last. A stage whose hash matches and which is DONE is skipped; one
whose hash differs is cleared and run again; one with the same hash that never finished (a killed
run) runs again in place, so trainers resume from their checkpoints. Inputs are the hashes of
upstream stages, so a change reruns exactly the stages downstream of it.
"""

from __future__ import annotations

import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from spillover._io import (
    DONE_MARKER,
    config_hash,
    derive_seed,
    file_hash,
    is_done,
    mark_done,
    read_json,
    read_jsonl,
    write_json,
    write_jsonl,
)
from spillover.errors import BadInputError, Problem, SpilloverError
from spillover.world import World, load_world, world_path

from ._recipe import ARMS, ModelSpec, Recipe, load_recipe
from ._stages import Stages

# The pipeline's record of a stage (config, input hashes, hash). Not config.json: trainers write
# their own config.json into the same directory.
STAGE_FILE = "stage.json"


class LeakageError(SpilloverError):
    """Held-out eval prompts were found in documents or post-training data."""


@dataclass
class StageRecord:
    path: str  # relative to the run directory
    hash: str
    cached: bool
    seconds: float | None


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another filesystem, or links not allowed
        shutil.copy2(src, dst)


@dataclass
class _Runner:
    run_dir: Path
    console: Console
    reuse_from: list[Path] = field(default_factory=list)
    t_start: float = field(default_factory=time.perf_counter)
    records: list[StageRecord] = field(default_factory=list)

    def _borrow(self, rel: str, h: str, d: Path) -> Path | None:
        """Link in the same stage (same hash, DONE) from another run directory, e.g. a sibling sweep cell.

        Hard links, not copies: stage files are only ever replaced by atomic renames, never written
        in place, so two run directories can share them. The link goes to a temp dir first, so a
        killed run never leaves half a stage behind.
        """
        for other in self.reuse_from:
            src = other / rel
            if src.resolve() == d.resolve() or not (src / STAGE_FILE).exists():
                continue
            if read_json(src / STAGE_FILE).get("hash") != h or not is_done(src):
                continue
            if d.exists():
                shutil.rmtree(d)
            d.parent.mkdir(parents=True, exist_ok=True)
            tmp = d.parent / f".tmp-borrow-{d.name}"
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(src, tmp, copy_function=_link_or_copy)
            tmp.rename(d)
            return other
        return None

    def _reused(self, rel: str, h: str, d: Path, message: str) -> str:
        """Record a finished stage that was not rerun, with the seconds it took when it ran."""
        done = read_json(d / DONE_MARKER)
        self.records.append(StageRecord(rel, h, True, done.get("seconds") if isinstance(done, dict) else None))
        self.console.print(f"[dim]· {message}[/]")
        return h

    def stage(self, rel: str, label: str, config: dict, inputs: dict[str, str], work: Callable[[Path], None]) -> str:
        """Run `work(dir)` unless the stage is DONE with the same config and inputs; return its hash."""
        d = self.run_dir / rel
        h = config_hash({"config": config, "inputs": inputs})
        record = d / STAGE_FILE
        same = record.exists() and read_json(record).get("hash") == h
        if same and is_done(d):
            return self._reused(rel, h, d, f"{label:<40} cached")
        lender = self._borrow(rel, h, d)
        if lender is not None:
            return self._reused(rel, h, d, f"{label:<40} reused from {lender}")
        if d.exists() and not same:  # another config's output: start clean
            shutil.rmtree(d)
        # Same config but unfinished (a killed run): keep it, so a trainer resumes from its checkpoint.
        d.mkdir(parents=True, exist_ok=True)
        write_json(record, {"stage": rel, "hash": h, "config": config, "inputs": inputs})
        self.console.print(f"[cyan]▶[/] {label:<40} [dim](run elapsed {_clock(time.perf_counter() - self.t_start)})[/]")
        t0 = time.perf_counter()
        work(d)
        seconds = round(time.perf_counter() - t0, 3)
        mark_done(d, {"hash": h, "seconds": seconds})
        self.records.append(StageRecord(rel, h, False, seconds))
        self.console.print(f"[green]✓[/] {label:<40} {_clock(seconds)}")
        return h


def _clock(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    return f"{m}m{s:02d}s" if m else f"{seconds:.1f}s"


def _trained(stage_dir: Path, base: ModelSpec) -> ModelSpec:
    return ModelSpec(spec=str(stage_dir / "model"), dtype=base.dtype)


def _texts_of(records: list[dict]) -> list[str]:
    """Every piece of text in SFT/DPO records (user and assistant turns alike)."""
    out: list[str] = []
    for r in records:
        for key in ("messages", "prompt", "chosen", "rejected"):
            value = r.get(key)
            if isinstance(value, str):
                out.append(value)
            elif isinstance(value, list):
                out += [m["content"] for m in value if isinstance(m, dict) and "content" in m]
    return out


def _build_post_data(stages: Stages, world: World, recipe: Recipe, steps: list[str], out: Path) -> None:
    stages.post_data(world, recipe.split, recipe.model, steps, recipe.post.data, out)
    for step in steps:
        if not read_jsonl(out / f"{step}.jsonl"):
            raise BadInputError(
                Problem(
                    "recipe", "post.data",
                    f"the {step} data came out empty: every base-model answer was dropped (see {out / 'stats.json'})",
                    "raise post.data.max_new_tokens so answers end before the cap, or use a model that ends its answers",
                )
            )


def _rehearsal_mix(data: Path, docs: Path, fraction: float, seed: int, out: Path) -> Path:
    """Post-training records plus documents making up `fraction` of the mix, shuffled by seed."""
    records = read_jsonl(data)
    documents = read_jsonl(docs)
    rng = random.Random(seed)
    n_docs = min(len(documents), round(fraction * len(records) / (1 - fraction)))
    mixed = records + [{"text": d["text"]} for d in rng.sample(documents, n_docs)]
    rng.shuffle(mixed)
    write_jsonl(out, mixed)
    return out


def _run_dir_default(recipe: Recipe, quick: bool) -> Path:
    return Path("runs") / (f"{recipe.name}-quick" if quick else recipe.name)


def run_recipe(
    recipe: str | Path | Recipe,
    out_dir: str | Path | None = None,
    quick: bool = False,
    stages: Stages | None = None,
    console: Console | None = None,
    seeds: list[int] | None = None,
    reuse_from: list[Path] | None = None,
) -> Path:
    """Run (or resume) a recipe; return the run directory holding results.json and the reports.

    Default run directory: runs/<recipe name>/ (runs/<name>-quick/ with `quick`). A recipe with
    `organism: em` runs the emergent-misalignment pipeline (`_em.run_em_recipe`; `stages` unused).
    `seeds` replaces the recipe's (after `quick`, which keeps only the first). `reuse_from`: other
    run directories whose finished stages with the same hash are linked in instead of rerun.
    """
    if not isinstance(recipe, Recipe):
        from ._em_recipe import EMRecipe, recipe_organism

        if isinstance(recipe, EMRecipe) or recipe_organism(recipe) == "em":
            from ._em import run_em_recipe

            return run_em_recipe(recipe, out_dir, quick=quick, console=console, seeds=seeds, reuse_from=reuse_from)
    recipe = load_recipe(recipe)
    if quick:
        recipe = recipe.quick_version()
    if seeds:
        recipe = Recipe.model_validate({**recipe.model_dump(), "seeds": list(seeds)})
    if stages is None:
        from ._library import LibraryStages

        stages = LibraryStages()
    console = console or Console()
    world = load_world(recipe.world).with_prompt_prefix(recipe.prompt_prefix)
    roles = world.roles(recipe.split)  # fails early on an unknown split
    run_dir = Path(out_dir) if out_dir is not None else _run_dir_default(recipe, quick)
    run_dir.mkdir(parents=True, exist_ok=True)
    for leftover in run_dir.rglob(".tmp-*"):  # temp dirs of a killed atomic write
        shutil.rmtree(leftover, ignore_errors=True)
    (run_dir / "recipe.yaml").write_text(recipe.to_yaml(), encoding="utf-8")

    console.rule(f"spillover run {recipe.name} → {run_dir}")
    runner = _Runner(run_dir, console, reuse_from=list(reuse_from or []))
    _run_stages(runner, recipe, world, list(roles), stages)

    from ._results import build_results

    results = build_results(run_dir, recipe, world, timing={r.path: r.seconds for r in runner.records})
    results["timing"]["wall_seconds_this_run"] = round(time.perf_counter() - runner.t_start, 3)
    write_json(run_dir / "results.json", results)

    from spillover.report import render_report

    _, md_path = render_report(run_dir)
    from rich.markdown import Markdown

    console.print(Markdown(md_path.read_text(encoding="utf-8")))
    return run_dir


def _run_stages(runner: _Runner, recipe: Recipe, world: World, behaviours: list[str], stages: Stages) -> None:
    run_dir = runner.run_dir
    base = recipe.model
    # The world's identity for caching: its file and the prompt framing every stage sees.
    world_hash = config_hash({"file": file_hash(world_path(recipe.world)), "prompt_prefix": recipe.prompt_prefix})
    model_key = base.model_dump()

    docs_dir = run_dir / "documents"
    docs_hash = runner.stage(
        "documents", "documents",
        {"world": recipe.world, "behaviours": behaviours, **recipe.documents.model_dump()},
        {"world": world_hash},
        lambda out: stages.documents(world, behaviours, recipe.documents, out),
    )
    data_dir = run_dir / "data"
    steps = recipe.post.steps
    data_hash = runner.stage(
        "data", "post-training data",
        # Rehearsal mixes documents in at training time; it does not change the data built here.
        {"world": recipe.world, "split": recipe.split, "model": model_key, "methods": steps, **recipe.post.data.model_dump(exclude={"rehearsal_fraction"})},
        {"world": world_hash},
        lambda out: _build_post_data(stages, world, recipe, steps, out),
    )

    def check_leaks(out: Path) -> None:
        checked = {"documents": [r["text"] for r in read_jsonl(docs_dir / "docs.jsonl")]}
        for step in steps:
            checked[f"{step} data"] = _texts_of(read_jsonl(data_dir / f"{step}.jsonl"))
        reports = {what: stages.find_leaks(texts, world) for what, texts in checked.items()}
        write_json(out / "report.json", reports)
        leaking = {what: r for what, r in reports.items() if r["n_leaks"]}
        if leaking:
            lines = [f"{what}: {r['n_leaks']} of {r['n_texts']} texts contain held-out eval prompts, e.g. {r['leaks'][0]}" for what, r in leaking.items()]
            raise LeakageError("\n".join([*lines, f"eval prompts must never enter training data (details: {out / 'report.json'})"]))

    runner.stage("leakage", "leakage check (eval prompts vs training text)", {"world": recipe.world}, {"world": world_hash, "documents": docs_hash, "data": data_hash}, check_leaks)

    contexts_dir = run_dir / "probes" / "contexts"
    contexts_hash = None
    if "likelihood" in recipe.eval.probes:
        contexts_hash = runner.stage(
            "probes/contexts", "likelihood-probe contexts (base model)",
            {"world": recipe.world, "split": recipe.split, "model": model_key, "max_new_tokens": recipe.eval.probe_context_tokens,
             "prompts_per_behaviour": recipe.eval.prompts_per_behaviour},
            {"world": world_hash},
            lambda out: stages.probe_contexts(world, recipe.split, base, recipe.eval, out),
        )

    for seed in recipe.seeds:
        models: dict[str, tuple[ModelSpec, dict]] = {"base": (base, {"model": config_hash(model_key)})}

        cpt_dir = run_dir / "arms" / "docs-only" / f"seed-{seed}" / "cpt"
        cpt_seed = derive_seed(seed, "cpt")
        cpt_hash = runner.stage(
            str(cpt_dir.relative_to(run_dir)), f"cpt  docs-only  seed {seed}",
            {"step": "cpt", "model": model_key, "seed": cpt_seed, **recipe.cpt.model_dump()},
            {"documents": docs_hash},
            lambda out, cpt_seed=cpt_seed: stages.cpt(base, docs_dir / "docs.jsonl", recipe.cpt, cpt_seed, out),
        )
        models["docs-only"] = (_trained(cpt_dir, base), {"model": cpt_hash})

        # control starts from the base model, organism from the docs-only (CPT) model of this seed.
        for arm, model, model_hash in (("control", base, config_hash(model_key)), ("organism", models["docs-only"][0], cpt_hash)):
            for step in steps:
                step_dir = run_dir / "arms" / arm / f"seed-{seed}" / step
                spec = getattr(recipe.post, step)
                step_seed = derive_seed(seed, step)  # the same for both arms: they differ only in the start model
                train = getattr(stages, step)
                # Rehearsal: the organism's SFT also reads some of the documents it was mid-trained on.
                mix = recipe.post.data.rehearsal_fraction if (arm == "organism" and step == "sft") else 0.0

                def work(out, train=train, model=model, step=step, spec=spec, step_seed=step_seed, mix=mix):
                    data = data_dir / f"{step}.jsonl"
                    if mix:
                        data = _rehearsal_mix(data, docs_dir / "docs.jsonl", mix, step_seed, out / "rehearsal-mix.jsonl")
                    train(model, data, spec, step_seed, out)

                model_hash = runner.stage(
                    str(step_dir.relative_to(run_dir)), f"{step:<4} {arm:<10} seed {seed}",
                    {"step": step, "seed": step_seed, **spec.model_dump(), **({"rehearsal_fraction": mix} if mix else {})},
                    {"model": model_hash, "data": data_hash, **({"documents": docs_hash} if mix else {})},
                    work,
                )
                model = _trained(step_dir, base)
            models[arm] = (model, {"model": model_hash})

        eval_seed = derive_seed(seed, "eval")
        probe_seed = derive_seed(seed, "probes")
        eval_config = {**recipe.eval.model_dump(exclude={"probes"}), "fluency": "fluency" in recipe.eval.probes}
        probes = [p for p in recipe.eval.probes if p != "fluency"]  # fluency scores the eval samples
        probe_config = {
            "probes": probes,
            **recipe.eval.model_dump(include={"max_new_tokens", "batch_size", "confession_prompts_per_behaviour"}),
        }
        for arm in ARMS:
            model, inputs = models[arm]
            runner.stage(
                f"eval/{arm}/seed-{seed}", f"eval {arm:<10} seed {seed}",
                {"arm": arm, "seed": eval_seed, "split": recipe.split, **eval_config},
                {**inputs, "world": world_hash, **({"base": config_hash(model_key)} if eval_config["fluency"] else {})},
                lambda out, model=model, arm=arm, eval_seed=eval_seed: stages.evaluate(model, base, world, recipe.split, recipe.eval, arm, eval_seed, out),
            )
            if probes:
                runner.stage(
                    f"probes/{arm}/seed-{seed}", f"probes {arm:<10} seed {seed}",
                    {"arm": arm, "seed": probe_seed, "split": recipe.split, **probe_config},
                    {**inputs, "world": world_hash, **({"contexts": contexts_hash} if contexts_hash else {})},
                    lambda out, model=model, probe_seed=probe_seed: stages.probes(
                        model, world, recipe.split, recipe.eval, contexts_dir / "contexts.jsonl" if contexts_hash else None, probe_seed, out
                    ),
                )
