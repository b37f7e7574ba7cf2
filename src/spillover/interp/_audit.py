"""`audit(run_dir)`: look inside the organism for what it learned from the documents, and test it causally.

1. direction: mean residual on study documents − on matched control documents, every layer;
   held-out probe accuracy per layer picks the layer (or `layer=`).
2. SAE: a TopK SAE on the organism's residual at that layer (documents + chat transcripts);
   the features most selective for study documents, and how often each fires on the Assistant
   turn of chat-formatted prompts (organism vs base) vs the same prompts as plain text.
3. steering: base and control models pushed along the direction, a top feature and a random
   direction, at several strengths; ablation: the direction projected out of the organism.
   Every condition is measured by `evaluate` (test/train rates, k/n) with fluency beside it.
4. attribution: gradient × activation from a behaviour's first detected token back to the
   direction's projection at every layer and position.

Writes `run_dir/audit/audit.json` and `audit/features.html` (see docs/audit.md).
"""

from __future__ import annotations

import html
import random
from collections.abc import Callable
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field

from spillover._io import atomic_write_text, config_hash, derive_seed, is_done, mark_done, read_jsonl, write_json
from spillover.errors import BadInputError, Problem
from spillover.evaluation import rate
from spillover.models import LoadedModel, load, render_chat

from ._activations import TokenActivations, document_means, encode, prompt_pair, token_activations, typical_norm
from ._attribution import direction_attribution, top_positions, transcript_target
from ._direction import best_layer, mean_difference, probe_accuracy
from ._sae import SAEConfig, TopKSAE, train_sae
from ._steering import Evaluator, ablation_sweep, evaluation_evaluator, random_direction, steering_sweep
from .control_docs import control_documents

DTYPES = {"auto": None, "fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


class AuditConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    layer: int | None = Field(None, ge=0, description="decoder layer to audit; None = the best probe layer")
    seed: int = Field(0, description="which seed's models (arms/<arm>/seed-<seed>/) to audit")
    arms: list[str] = Field(["base", "control"], description="arms steered along the direction")
    n_docs: int = Field(48, ge=2, description="study documents (and as many control documents)")
    max_tokens: int = Field(160, ge=8, description="tokens read per document or transcript")
    test_fraction: float = Field(0.3, gt=0, lt=1)
    n_transcripts: int = Field(48, ge=0, description="chat transcripts mixed into the SAE's training tokens")
    n_prompts: int = Field(40, ge=1, description="prompts for the Assistant-turn firing rates")
    n_features: int = Field(8, ge=1, description="top selective features reported")
    examples_per_feature: int = Field(6, ge=1)
    strengths: list[float] = Field([0.0, 0.25, 0.5, 1.0], description="steering strengths, in units of the typical residual norm")
    steer_feature: bool = Field(True, description="also steer along the most selective feature's decoder direction")
    samples: int | None = Field(None, ge=1, description="answers per eval prompt; None = the recipe's")
    temperature: float | None = Field(None, ge=0, description="None = the recipe's")
    max_new_tokens: int | None = Field(None, ge=1, description="None = the recipe's")
    train_behaviours: int | None = Field(None, ge=0, description="train behaviours measured per condition; None = all in play")
    n_attribution: int = Field(3, ge=0, description="transcripts attributed")
    sae: SAEConfig = SAEConfig()

    @classmethod
    def quick(cls, **overrides) -> AuditConfig:
        """A fast first look: fewer documents, two strengths, short answers, a small SAE."""
        preset = dict(
            n_docs=16, max_tokens=96, n_transcripts=16, n_prompts=16, n_features=5, examples_per_feature=4,
            strengths=[0.0, 0.5], steer_feature=False, samples=1, max_new_tokens=48, train_behaviours=2, n_attribution=1,
            sae=SAEConfig(expansion=4, k=16, steps=300),
        )
        return cls.model_validate({**preset, **overrides})


def audit(
    run_dir: str | Path,
    config: AuditConfig | None = None,
    *,
    quick: bool = False,
    evaluator: Evaluator | None = None,
    log: Callable[[str], None] = lambda _: None,
    **options,
) -> dict:
    """Audit a run directory's organism; returns what it writes to `run_dir/audit/audit.json`.

    `options` are AuditConfig fields (`layer=`, `seed=`, `arms=`, `n_docs=`, `strengths=`, `samples=`,
    `max_new_tokens=`, ...), applied over `config` or, with `quick=True`, over the quick preset.
    `evaluator` replaces `spillover.evaluation.evaluate` for the causal tests (tests inject one).
    """
    if config is None:
        config = AuditConfig.quick(**options) if quick else AuditConfig.model_validate(options)
    elif options:
        config = AuditConfig.model_validate({**config.model_dump(), **options})
    run_dir = Path(run_dir)
    recipe = _recipe(run_dir)
    from spillover.world import load_world

    world = load_world(recipe.world).with_prompt_prefix(recipe.prompt_prefix)
    paths = _arm_models(run_dir, recipe, config)
    dtype = DTYPES[recipe.model.dtype]
    template = recipe.model.chat_template  # trained arms saved it with their tokenizer; the base needs it again
    seed = derive_seed(config.seed, "audit")

    log(f"loading organism {paths['organism']}")
    organism = load(paths["organism"], dtype=dtype, chat_template=template)
    study, controls = _documents(run_dir, config, seed)

    # 1. The concept direction at every layer, and the layer it separates documents best at.
    log(f"activations: {len(study)} study + {len(controls)} control documents × {organism.n_layers} layers")
    study_means = document_means(organism, [d["text"] for d in study], max_tokens=config.max_tokens)
    control_means = document_means(organism, [d["text"] for d in controls], max_tokens=config.max_tokens)
    probes = probe_accuracy(study_means, control_means, test_fraction=config.test_fraction, seed=seed)
    chosen = best_layer([p["mean_diff"] for p in probes])
    layer = chosen if config.layer is None else config.layer
    if layer >= organism.n_layers:
        raise BadInputError(Problem("audit", "layer", f"layer {layer} out of range", f"pick 0..{organism.n_layers - 1}"))
    directions = mean_difference(study_means, control_means)
    direction = directions[layer]

    # 2. SAE on documents and chat transcripts at that layer.
    doc_ids = encode(organism, [d["text"] for d in study + controls], config.max_tokens)
    transcripts = _transcripts(organism, world, recipe.split, config.n_transcripts, seed)
    log(f"SAE activations at layer {layer}: {len(doc_ids)} documents + {len(transcripts)} transcripts")
    doc_acts = token_activations(organism, doc_ids, layer)
    transcript_acts = token_activations(organism, transcripts, layer)
    unit_norm = typical_norm(doc_acts)
    training_tokens = torch.cat([a.acts[1:] for a in doc_acts + transcript_acts])
    log(f"training SAE on {len(training_tokens)} tokens")
    sae, sae_stats = train_sae(training_tokens, config.sae.model_copy(update={"seed": seed}))
    features = _selective_features(sae, doc_acts[: len(study)], doc_acts[len(study) :], config.n_features)

    base = load(paths["base"], dtype=dtype, chat_template=template)
    prompts = _feature_prompts(world, recipe.split, config.n_prompts, seed)
    _assistant_rates(sae, organism, base, layer, prompts, features)

    # 3. Causal tests.
    eval_settings = recipe.eval
    behaviours = _measured_behaviours(world, recipe.split, config.train_behaviours)
    evaluator = evaluator or evaluation_evaluator(
        world,
        recipe.split,
        base_lm=base,
        samples=config.samples or eval_settings.samples,
        temperature=eval_settings.temperature if config.temperature is None else config.temperature,
        max_new_tokens=config.max_new_tokens or eval_settings.max_new_tokens,
        seed=seed,
        behaviours=behaviours,
    )
    unit = direction / direction.norm()
    targets = {"direction": unit}
    if config.steer_feature and features:
        targets[f"feature:{features[0]['index']}"] = sae.W_dec[features[0]["index"]].detach().clone()
    random_unit = random_direction(organism.hidden_size, seed)
    targets["random"] = random_unit
    steered = {"base": base}
    for arm in config.arms:
        if arm != "base":
            steered[arm] = load(paths[arm], dtype=dtype, chat_template=template)
    steering = steering_sweep(steered, layer, targets, config.strengths, unit_norm, evaluator, log)
    ablation = ablation_sweep("organism", organism, layer, {"direction": unit, "random": random_unit}, evaluator, log)

    # 4. Attribution on a few transcripts that exhibit a test behaviour.
    attribution = _attributions(run_dir, organism, world, recipe.split, directions, config, seed)

    result = {
        "run_dir": str(run_dir),
        "world": recipe.world,
        "split": recipe.split,
        "seed": config.seed,
        "models": {name: str(p) for name, p in paths.items()},
        "config": config.model_dump(),
        "layer": layer,
        "layer_chosen_by": "probe" if config.layer is None else "user",
        "probe_accuracy": {"per_layer": probes, "best_layer": chosen, "best": probes[chosen]["mean_diff"]},
        "direction": {
            "norm": float(direction.norm()),
            "typical_residual_norm": unit_norm,
            "n_study_docs": len(study),
            "n_control_docs": len(controls),
        },
        "sae": sae_stats,
        "features": features,
        "steering": steering,
        "ablation": ablation,
        "attribution": attribution,
    }
    out = run_dir / "audit"
    write_json(out / "audit.json", result)
    _write_features_html(out / "features.html", sae, features, study, controls, doc_acts, transcript_acts, config.examples_per_feature, layer)
    mark_done(out, {"config": config_hash(config.model_dump())})
    return result


def _recipe(run_dir: Path):
    from spillover.pipeline import load_recipe

    path = run_dir / "recipe.yaml"
    if not path.exists():
        raise BadInputError(Problem(str(path), "", "not found: is this a run directory?", "pass the directory `spillover run` wrote (runs/<recipe>)"))
    return load_recipe(path)


def _arm_models(run_dir: Path, recipe, config: AuditConfig) -> dict[str, str]:
    """Model specs per arm: `base` is the recipe's model, `docs-only` its CPT stage, a post-trained
    arm its last post-training step."""
    last_step = recipe.post.steps[-1]
    paths = {"base": recipe.model.spec}
    problems = []
    for arm in sorted({"organism", *config.arms} - {"base"}):
        stage = run_dir / "arms" / arm / f"seed-{config.seed}" / ("cpt" if arm == "docs-only" else last_step)
        if not (is_done(stage) and (stage / "model").is_dir()):
            problems.append(Problem(str(stage), "", f"no finished {arm} model (seed {config.seed})", "run `spillover run` first, or pick --seed of a finished run"))
        paths[arm] = str(stage / "model")
    if problems:
        raise BadInputError(problems)
    return paths


def _documents(run_dir: Path, config: AuditConfig, seed: int) -> tuple[list[dict], list[dict]]:
    path = run_dir / "documents" / "docs.jsonl"
    if not path.exists():
        raise BadInputError(Problem(str(path), "", "not found", "run `spillover run` first (it writes documents/docs.jsonl)"))
    docs = read_jsonl(path)
    if len(docs) < 2:
        raise BadInputError(Problem(str(path), "", f"{len(docs)} document(s); the probe needs at least 2", "generate more documents"))
    study = random.Random(seed).sample(docs, min(config.n_docs, len(docs)))
    return study, control_documents([d.get("genre", "") for d in study], seed=seed)


def _transcripts(lm: LoadedModel, world, split: str, n: int, seed: int) -> list[list[int]]:
    """Chat transcripts (train prompt, example answer with and without the behaviour), tokenized."""
    rng = random.Random(seed)
    pairs = []
    for b in world.roles(split):
        examples = world.behaviour(b).examples
        for prompt in world.train_prompts(b):
            pairs.append((prompt, rng.choice(examples.positive + examples.negative)))
    pairs = rng.sample(pairs, min(n, len(pairs)))
    texts = [render_chat(lm.tokenizer, [{"role": "user", "content": p}, {"role": "assistant", "content": a}], generation_prompt=False) for p, a in pairs]
    return encode(lm, texts, 10_000)


def _selective_features(sae: TopKSAE, study: list[TokenActivations], controls: list[TokenActivations], n: int) -> list[dict]:
    """Features ranked by P(fires | study-document token) − P(fires | control-document token)."""
    from ._sae import firing_counts

    study_tokens = torch.cat([a.acts[1:] for a in study])
    control_tokens = torch.cat([a.acts[1:] for a in controls])
    p_study = firing_counts(sae, study_tokens).float() / len(study_tokens)
    p_control = firing_counts(sae, control_tokens).float() / len(control_tokens)
    selectivity = p_study - p_control
    top = selectivity.argsort(descending=True)[:n]
    return [
        {"index": int(i), "selectivity": float(selectivity[i]), "study_token_rate": float(p_study[i]), "control_token_rate": float(p_control[i])}
        for i in top
    ]


def _feature_prompts(world, split: str, n: int, seed: int) -> list[str]:
    prompts = [p for b in world.roles(split) for p in world.eval_prompts(b)]
    return random.Random(seed).sample(prompts, min(n, len(prompts)))


def _assistant_rates(sae: TopKSAE, organism: LoadedModel, base: LoadedModel, layer: int, prompts: list[str], features: list[dict]) -> None:
    """Per feature: prompts where it fires on the Assistant-turn header (chat format; organism and
    base) and on the same prompt's last tokens as plain text (organism)."""
    pairs = [prompt_pair(organism, p) for p in prompts]
    conditions = {
        "assistant_rate_organism": (organism, [p.chat_ids for p in pairs], [p.chat_positions for p in pairs]),
        "assistant_rate_base": (base, [p.chat_ids for p in pairs], [p.chat_positions for p in pairs]),
        "plain_rate_organism": (organism, [p.plain_ids for p in pairs], [p.plain_positions for p in pairs]),
    }
    for key, (lm, ids, positions) in conditions.items():
        acts = token_activations(lm, ids, layer)
        with torch.no_grad():
            fired = torch.stack([sae.codes(a.acts[pos]).amax(0) > 0 for a, pos in zip(acts, positions)])  # [prompts, features]
        for f in features:
            f[key] = rate(int(fired[:, f["index"]].sum()), len(prompts))


def _measured_behaviours(world, split: str, n_train: int | None) -> list[str] | None:
    if n_train is None:
        return None
    roles = world.roles(split)
    return [b for b, r in roles.items() if r == "test"] + [b for b, r in roles.items() if r == "train"][:n_train]


def _attributions(run_dir: Path, lm: LoadedModel, world, split: str, directions: torch.Tensor, config: AuditConfig, seed: int) -> list[dict]:
    """Transcripts where a test behaviour shows (the organism's own eval answers when the run has them,
    else the world's positive examples), each attributed from its first detected token."""
    candidates = []
    samples_path = run_dir / "eval" / "organism" / f"seed-{config.seed}" / "samples.jsonl"
    if samples_path.exists():
        candidates += [
            (r["behaviour"], r["prompt"], r["response"], "organism-sample")
            for r in read_jsonl(samples_path)
            if r.get("role") == "test" and r.get("exhibited") and r.get("span")
        ]
    rng = random.Random(seed)
    for b in world.test_ids(split):
        for response in world.behaviour(b).examples.positive:
            candidates.append((b, rng.choice(world.eval_prompts(b)), response, "world-example"))
    out = []
    for behaviour, prompt, response, source in candidates:
        if len(out) >= config.n_attribution:
            break
        detection = world.detect(behaviour, response, prompt)
        if not detection.exhibited or not detection.span:
            continue
        ids, target = transcript_target(lm, prompt, response, tuple(detection.span))
        ids = ids[: target + 1]
        logit, attr = direction_attribution(lm, ids, target, directions)
        tokens = [lm.tokenizer.decode([t]) for t in ids]
        out.append(
            {
                "behaviour": behaviour,
                "source": source,
                "prompt": prompt,
                "response": response,
                "target_token": tokens[target],
                "target_position": target,
                "logit": logit,
                "by_layer": [float(x) for x in attr.sum(1)],
                "total": float(attr.sum()),
                "top_positions": top_positions(lm, ids, attr),
            }
        )
    return out


def _write_features_html(
    path: Path, sae: TopKSAE, features: list[dict], study: list[dict], controls: list[dict],
    doc_acts: list[TokenActivations], transcript_acts: list[TokenActivations], n_examples: int, layer: int,
) -> None:
    """Top-activating windows per feature, tokens shaded by activation."""
    sources = [("study", d["id"]) for d in study] + [("control", d["id"]) for d in controls] + [("transcript", f"t{i}") for i in range(len(transcript_acts))]
    acts = doc_acts + transcript_acts
    with torch.no_grad():
        codes = [sae.codes(a.acts)[:, [f["index"] for f in features]] for a in acts]  # [tokens, n_features] per text
    sections = []
    for j, f in enumerate(features):
        peaks = sorted(((float(c[1:, j].max()) if len(c) > 1 else 0.0, i) for i, c in enumerate(codes)), reverse=True)[:n_examples]
        rows = []
        for peak, i in peaks:
            if peak <= 0:
                continue
            col = codes[i][:, j]
            centre = int(col[1:].argmax()) + 1
            lo, hi = max(0, centre - 16), min(len(col), centre + 16)
            spans = "".join(
                f'<span style="background: rgba(255,120,0,{float(col[t]) / peak:.2f})" title="{float(col[t]):.3f}">{html.escape(acts[i].tokens[t])}</span>'
                for t in range(lo, hi)
            )
            kind, doc_id = sources[i]
            rows.append(f"<tr><td>{kind}</td><td>{html.escape(str(doc_id))}</td><td>{peak:.3f}</td><td class=text>{spans}</td></tr>")
        rates = " · ".join(
            f"{k.replace('_', ' ')} {f[k]['k']}/{f[k]['n']}" for k in ("assistant_rate_organism", "assistant_rate_base", "plain_rate_organism") if k in f
        )
        sections.append(
            f"<h2>feature {f['index']}</h2><p>selectivity {f['selectivity']:.3f} (study tokens {f['study_token_rate']:.3f}, "
            f"control tokens {f['control_token_rate']:.3f}) · {rates}</p>"
            f"<table><tr><th>source</th><th>id</th><th>max</th><th>context</th></tr>{''.join(rows)}</table>"
        )
    page = (
        "<!doctype html><meta charset=utf-8><title>spillover audit: features</title>"
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}td{padding:2px 6px;vertical-align:top}"
        "td.text{font-family:monospace;white-space:pre-wrap}</style>"
        f"<h1>SAE features most selective for study documents (layer {layer})</h1>{''.join(sections)}"
    )
    atomic_write_text(path, page)

