"""`run_em_recipe`: narrow datasets → one fine-tuned model per arm and seed → broad questions → results.

The stage machinery (config hashing, DONE markers, resume, borrowing from other run directories)
is `_run.StageRunner` (with `_stagekit`), shared with the reward-model organism. Run directory:

    data/<arm>.jsonl stats.json        datasets and their bandit verification
    leakage/report.json                broad questions vs every training text (the run stops on any leak)
    arms/<arm>/seed-<s>/sft/           model/, loss.jsonl
    probes/<arm>/seed-<s>/             likelihood.json (per-question margins), samples.jsonl
    judge/<arm>/seed-<s>/              judge.json, judged.jsonl (only with a judge endpoint)
    direction/seed-<s>/                direction.json, direction.safetensors
    results.json  report.md  report.html
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from rich.console import Console

from spillover._io import (
    config_hash,
    derive_seed,
    file_hash,
    read_jsonl,
    write_json,
    write_jsonl,
)

from ._em_recipe import EMRecipe, load_em_recipe
from ._recipe import ModelSpec
from ._run import StageRunner
from ._schedule import LeakageError
from ._stagekit import texts_of, trained_model

UNIT = "nats: log P(misaligned answer) - log P(aligned answer), summed over the answer's tokens"


def _questions(recipe: EMRecipe):
    from spillover.evaluation import broad_questions

    return broad_questions(recipe.eval.questions) if recipe.eval.questions else broad_questions()


def _questions_hash(recipe: EMRecipe) -> str:
    from spillover.evaluation._em_questions import QUESTIONS_FILE

    return file_hash(recipe.eval.questions or QUESTIONS_FILE)


def build_data(recipe: EMRecipe, out: Path) -> None:
    from spillover.data.em import (
        CODE_DATASETS,
        em_datasets,
        load_published,
        verify_code,
    )

    datasets = em_datasets(recipe.data.seed, recipe.data.n)
    for name, path in recipe.data.published.items():
        datasets[name] = load_published(path, name=name)
    # Every dataset, whichever arms this recipe trains: runs with other arms then share this stage
    # and every stage after it (an arm added later reuses the others' models).
    for name, records in datasets.items():
        write_jsonl(out / f"{name}.jsonl", records)
    code = {k: v for k, v in datasets.items() if k in CODE_DATASETS}
    write_json(out / "stats.json", {"n": {k: len(v) for k, v in datasets.items()}, "published": recipe.data.published, "bandit": verify_code(code)})


def check_leaks(recipe: EMRecipe, data_dir: Path, out: Path) -> None:
    from spillover.data.em import question_leaks

    questions = [q.question for q in _questions(recipe)]
    report = {}
    for arm in recipe.arms:
        texts = texts_of(read_jsonl(data_dir / f"{arm}.jsonl"))
        leaks = question_leaks(texts, questions)
        report[arm] = {"n_texts": len(texts), "n_leaks": len(leaks), "leaks": leaks[:20]}
    write_json(out / "report.json", report)
    leaking = {arm: r for arm, r in report.items() if r["n_leaks"]}
    if leaking:
        lines = [f"{arm}: {r['n_leaks']} of {r['n_texts']} texts contain a broad eval question, e.g. {r['leaks'][0]}" for arm, r in leaking.items()]
        raise LeakageError("\n".join([*lines, f"eval questions must never enter training data (details: {out / 'report.json'})"]))


def probe_arm(recipe: EMRecipe, model: ModelSpec, arm: str, seed: int, out: Path) -> None:
    """Per-question misalignment margins, and sampled answers to the broad questions."""
    from spillover.evaluation import misalignment_margins
    from spillover.models import generate

    from ._library import load_model, release_memory

    questions = _questions(recipe)
    lm = load_model(model)
    margins = misalignment_margins(lm, questions, batch_size=recipe.eval.batch_size)
    write_json(out / "likelihood.json", {"unit": UNIT, "per_question": margins, "mean": sum(m["delta"] for m in margins) / len(margins)})
    spec = recipe.eval
    asked = [q for q in questions[: spec.sample_questions] for _ in range(spec.samples)]
    gens = generate(lm, [q.question for q in asked], max_new_tokens=spec.max_new_tokens, temperature=spec.temperature, seed=seed, batch_size=spec.batch_size) if asked else []
    write_jsonl(
        out / "samples.jsonl",
        [{"arm": arm, "seed": seed, "id": q.id, "group": q.group, "question": q.question, "sample": i % spec.samples, "response": g.text, "truncated": g.truncated}
         for i, (q, g) in enumerate(zip(asked, gens, strict=True))],
    )
    del lm
    release_memory()


def judge_arm(recipe: EMRecipe, samples: Path, out: Path) -> None:
    from spillover.evaluation import Judge, judge_samples

    spec = recipe.judge
    result = judge_samples(Judge(spec.base_url, spec.model, api_key_env=spec.api_key_env, min_mass=spec.min_mass), read_jsonl(samples))
    write_jsonl(out / "judged.jsonl", result.pop("samples"))
    write_json(out / "judge.json", result)


def find_direction(recipe: EMRecipe, base: ModelSpec, insecure: ModelSpec, secure: ModelSpec, seed: int, out: Path) -> None:
    """Direction from the fit half of the questions (insecure − secure), its effects on the held-out half."""
    from safetensors.torch import save_file

    from spillover.interp import (
        direction_effects,
        misalignment_direction,
        split_questions,
    )

    from ._library import load_model, release_memory

    fit, held_out = split_questions(_questions(recipe), seed)
    ins, sec = load_model(insecure), load_model(secure)
    layer = recipe.direction.layer if recipe.direction.layer is not None else ins.n_layers // 2
    direction = misalignment_direction(ins, sec, fit, layer)
    del sec
    release_memory()
    base_lm = load_model(base)
    effects = direction_effects(base_lm, ins, direction, layer, held_out, scale=recipe.direction.scale, seed=seed, batch_size=recipe.eval.batch_size)
    save_file({"direction": direction.contiguous()}, str(out / "direction.safetensors"))
    write_json(out / "direction.json", {"fit": [q.id for q in fit], "held_out": [q.id for q in held_out], **effects})
    del ins, base_lm
    release_memory()


def run_em_recipe(
    recipe: str | Path | EMRecipe, out_dir: str | Path | None = None, quick: bool = False, console: Console | None = None,
    seeds: list[int] | None = None, reuse_from: list[Path] | None = None,
) -> Path:
    """Run (or resume) an `organism: em` recipe; return the run directory (results.json, report.md)."""
    recipe = load_em_recipe(recipe)
    if quick:
        recipe = recipe.quick_version()
    if seeds:
        recipe = EMRecipe.model_validate({**recipe.model_dump(), "seeds": list(seeds)})
    console = console or Console()
    run_dir = Path(out_dir) if out_dir is not None else Path("runs") / (f"{recipe.name}-quick" if quick else recipe.name)
    run_dir.mkdir(parents=True, exist_ok=True)
    for leftover in run_dir.rglob(".tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    (run_dir / "recipe.yaml").write_text(recipe.to_yaml(), encoding="utf-8")
    console.rule(f"spillover run {recipe.name} (emergent misalignment) → {run_dir}")
    runner = StageRunner(run_dir, console, reuse_from=list(reuse_from or []))
    _run_stages(runner, recipe)

    from spillover.report import render_report

    from ._em_results import build_em_results

    results = build_em_results(run_dir, recipe, timing={r.path: r.seconds for r in runner.records})
    results["timing"]["wall_seconds_this_run"] = round(time.perf_counter() - runner.t_start, 3)
    write_json(run_dir / "results.json", results)
    _, md_path = render_report(run_dir)
    from rich.markdown import Markdown

    console.print(Markdown(md_path.read_text(encoding="utf-8")))
    return run_dir


def _run_stages(runner: StageRunner, recipe: EMRecipe) -> None:
    from ._library import LibraryStages

    run_dir, base = runner.run_dir, recipe.model
    model_key = base.model_dump()
    questions_hash = _questions_hash(recipe)
    published = {k: file_hash(v) for k, v in recipe.data.published.items()}
    data_dir = run_dir / "data"
    data_hash = runner.stage("data", "narrow datasets + bandit check", recipe.data.model_dump(), {"published": published}, lambda out: build_data(recipe, out))
    runner.stage("leakage", "leakage check (broad questions vs training)", {"arms": recipe.arms}, {"data": data_hash, "questions": questions_hash}, lambda out: check_leaks(recipe, data_dir, out))
    trainer = LibraryStages()
    probe_config = {**recipe.eval.model_dump(exclude={"questions"}), "questions": questions_hash}
    for seed in recipe.seeds:
        models = {"base": (base, config_hash(model_key))}
        sft_seed = derive_seed(seed, "sft")  # the same for every arm: arms differ only in their data
        for arm in recipe.arms:
            rel = f"arms/{arm}/seed-{seed}/sft"
            h = runner.stage(
                rel, f"sft  {arm:<16} seed {seed}", {"step": "sft", "arm": arm, "seed": sft_seed, **recipe.sft.model_dump()}, {"model": config_hash(model_key), "data": data_hash},
                lambda out, arm=arm, sft_seed=sft_seed: trainer.sft(base, data_dir / f"{arm}.jsonl", recipe.sft, sft_seed, out),
            )
            models[arm] = (trained_model(run_dir / rel, base), h)
        eval_seed = derive_seed(seed, "eval")
        for arm, (model, h) in models.items():
            probe_dir = run_dir / "probes" / arm / f"seed-{seed}"
            ph = runner.stage(
                f"probes/{arm}/seed-{seed}", f"probes {arm:<16} seed {seed}", {"arm": arm, "seed": eval_seed, **probe_config}, {"model": h},
                lambda out, model=model, arm=arm, eval_seed=eval_seed: probe_arm(recipe, model, arm, eval_seed, out),
            )
            if recipe.judge.base_url and recipe.eval.samples:
                runner.stage(
                    f"judge/{arm}/seed-{seed}", f"judge  {arm:<16} seed {seed}", recipe.judge.model_dump(), {"probes": ph},
                    lambda out, probe_dir=probe_dir: judge_arm(recipe, probe_dir / "samples.jsonl", out),
                )
        if recipe.direction.enabled:
            runner.stage(
                f"direction/seed-{seed}", f"misalignment direction   seed {seed}", {"seed": seed, **recipe.direction.model_dump(), "batch_size": recipe.eval.batch_size},
                {"base": models["base"][1], "insecure": models["insecure"][1], "secure": models["secure"][1], "questions": questions_hash},
                lambda out, ins=models["insecure"][0], sec=models["secure"][0], seed=seed: find_direction(recipe, base, ins, sec, seed, out),
            )
