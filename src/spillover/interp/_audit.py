"""`audit(run_dir, config)`: find what the organism learned from the documents without looking at its
test-behaviour answers, and test it causally on the test behaviours.

1. concept: two direction sources (interp/_concept.py) — study documents vs token-matched decoys,
   and post-training answers vs their plain versions; per-layer probe accuracy picks the layer.
2. SAE on the organism's residual at that layer (saved, reused on a rerun with the same config and
   tokens); the features most selective for study documents.
3. where it fires: the concept and each top feature on the Assistant turn of chat prompts vs the same
   text as plain, organism and base.
4. causal: base (and other arms) steered along the concept, a top feature and a random direction of
   the same norm; the concept (and random) ablated in the organism, with the fraction of the organism −
   docs-plain (and − control) gap removed. Every difference has a prompt-clustered interval.
5. attribution from the behaviour's first token back to the concept's projection at every layer.

Writes `audit/audit.json` (`AuditResult`), `audit/answers.jsonl.gz` (the causal tests' scored
answers), `audit/features.html`, `audit/sae/` (see docs/audit.md); `audit/fold-<i>/` for a fold.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from spillover._io import config_hash, derive_seed, mark_done, write_json, write_jsonl_gz
from spillover.errors import BadInputError, Problem
from spillover.models import LoadedModel, render_chat

from ._activations import TokenActivations, encode, token_activations, typical_norm
from ._attribution import (
    behaviour_start,
    direction_attribution,
    top_positions,
    transcript_target,
)
from ._concept import (
    SourceMeans,
    answer_source,
    cosine_per_layer,
    decoys_for,
    describe,
    document_source,
    probe,
)
from ._data_search import data_search
from ._features_html import write_features_html
from ._firing import concept_firing, feature_firing, prompt_activations
from ._gap import gap_removed
from ._results import Ablation, Attribution, AuditResult, Concept, Feature, SAEStats
from ._run_inputs import (
    RunInputs,
    answer_pairs,
    arm_models,
    load_arm_model,
    run_inputs,
    study_documents,
)
from ._sae import SAEConfig, TopKSAE, firing_counts, load_sae, save_sae, train_sae
from ._steering import (
    Evaluator,
    ablation_sweep,
    evaluation_evaluator,
    random_direction,
    steering_sweep,
)

GAP_REFERENCES = ("docs-plain", "control")
ANSWERS_FILE = "answers.jsonl.gz"  # every steering and ablation condition's scored answers


class AuditConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    layer: int | None = Field(None, ge=0, description="decoder layer to audit; None = the best probe layer of the steered source")
    seed: int = Field(0, description="which seed's models (arms/<arm>/seed-<seed>/) to audit")
    fold: int | None = Field(None, ge=0, description="for a folds:K run, which fold's post-trained arms to audit")
    direction_source: Literal["documents", "answers"] = Field("documents", description="the concept direction steered and ablated")
    arms: list[str] = Field(["base", "control"], description="arms steered along the direction")
    n_docs: int = Field(48, ge=2, description="study documents (and token-matched decoys)")
    n_answers: int = Field(48, ge=0, description="post-training answers (and their plain versions) for the answers direction")
    max_tokens: int = Field(160, ge=8, description="tokens read per document, answer or transcript")
    test_fraction: float = Field(0.3, gt=0, lt=1)
    n_transcripts: int = Field(48, ge=0, description="chat transcripts mixed into the SAE's training tokens")
    n_prompts: int = Field(40, ge=1, description="prompts for the chat vs plain firing counts")
    n_features: int = Field(8, ge=1, description="top selective features reported")
    examples_per_feature: int = Field(6, ge=1)
    strengths: list[float] = Field([0.0, 0.25, 0.5, 1.0], description="steering strengths, in units of the typical residual norm")
    steer_feature: bool = Field(True, description="also steer along the most selective feature's decoder direction")
    samples: int | None = Field(None, ge=1, description="answers per eval prompt; None = the recipe's")
    temperature: float | None = Field(None, ge=0, description="None = the recipe's")
    max_new_tokens: int | None = Field(None, ge=1, description="None = the recipe's")
    prompts_per_behaviour: int | None = Field(None, ge=1, description="eval prompts per behaviour per condition; None = the recipe's")
    train_behaviours: int | None = Field(None, ge=0, description="train behaviours measured per condition; None = all in play")
    n_attribution: int = Field(3, ge=0, description="transcripts attributed")
    data_search: bool = Field(True, description="rank training texts per test behaviour (interp._data_search; not for a fold)")
    sae: SAEConfig = SAEConfig()

    PRESETS: ClassVar[dict[str, dict]] = {
        "default": {},  # the field defaults
        # A fast first look: fewer texts, two strengths, short answers, a small SAE.
        "quick": {
            "n_docs": 16, "n_answers": 16, "max_tokens": 96, "n_transcripts": 16, "n_prompts": 16, "n_features": 5, "examples_per_feature": 4,
            "strengths": [0.0, 0.5], "steer_feature": False, "samples": 1, "max_new_tokens": 48, "train_behaviours": 2, "n_attribution": 1,
            "sae": {"expansion": 4, "k": 16, "steps": 300},
        },
        # The whole audit of a SmolLM2-135M organism on 2 CPU cores: 12.8 minutes before the data search
        # and 2.2 for it (measured, docs/audit.md): six measured conditions (organism intact, concept- and random-ablated;
        # base unsteered and steered along the concept and a random direction at one strength), one greedy
        # answer of ≤96 tokens per eval prompt of the test behaviours and of one train behaviour.
        "laptop": {
            "arms": ["base"], "n_docs": 32, "n_answers": 32, "max_tokens": 128, "n_transcripts": 32, "n_prompts": 40, "n_features": 8,
            "strengths": [0.0, 0.5], "steer_feature": False, "samples": 1, "temperature": 0.0, "max_new_tokens": 96,
            "train_behaviours": 1, "n_attribution": 3, "sae": {"expansion": 4, "k": 32, "steps": 600},
        },
    }

    @model_validator(mode="before")
    @classmethod
    def _preset_then_overrides(cls, data: Any) -> Any:
        """`"laptop"` is that preset; `{"preset": "laptop", "seed": 1}` the preset with the fields given
        over it. The one place presets are applied: `AuditConfig.preset`, `audit(preset=...)`, the CLI's
        `--preset` and a recipe's `audit:` all come through here."""
        if isinstance(data, str):
            data = {"preset": data}
        if not isinstance(data, dict) or "preset" not in data:
            return data
        fields = {k: v for k, v in data.items() if k != "preset"}
        name = data["preset"]
        if not isinstance(name, str) or name not in cls.PRESETS:  # an error at `preset`: a recipe's names `audit.preset`
            *names, last = (f"'{p}'" for p in cls.PRESETS)
            expected = f"{', '.join(names)} or {last}"
            raise ValidationError.from_exception_data(
                cls.__name__, [{"type": "literal_error", "loc": ("preset",), "input": name, "ctx": {"expected": expected}}]
            )
        return {**cls.PRESETS[name], **fields}

    @classmethod
    def preset(cls, name: str, **overrides) -> AuditConfig:
        """A named preset (`PRESETS`: default, quick, laptop) with `overrides` applied."""
        return cls.model_validate({**overrides, "preset": name})

    @classmethod
    def quick(cls, **overrides) -> AuditConfig:
        """A fast first look (`PRESETS["quick"]`)."""
        return cls.preset("quick", **overrides)

    @classmethod
    def laptop(cls, **overrides) -> AuditConfig:
        """The whole audit of a SmolLM2-135M organism on 2 CPU cores (`PRESETS["laptop"]`)."""
        return cls.preset("laptop", **overrides)


class _Clock:
    """Wall time per phase, logged as each one starts."""

    def __init__(self, log: Callable[[str], None]):
        self.log, self.seconds, self._phase, self._start = log, {}, None, time.perf_counter()

    def phase(self, name: str, message: str) -> None:
        self.stop()
        self._phase, self._start = name, time.perf_counter()
        self.log(message)

    def stop(self) -> dict[str, float]:
        if self._phase:
            self.seconds[self._phase] = round(time.perf_counter() - self._start, 2)
            self._phase = None
        return self.seconds


def audit(
    run_dir: str | Path,
    config: AuditConfig | None = None,
    *,
    evaluator: Evaluator | None = None,
    log: Callable[[str], None] = lambda _: None,
    **options,
) -> AuditResult:
    """Audit a run directory's organism; returns what it writes to `audit/audit.json`.

    `options` are AuditConfig fields applied over `config`, or over a preset named by `preset=`
    (`AuditConfig.PRESETS`; none: the field defaults). `evaluator` replaces
    `spillover.evaluation.evaluate` for the causal tests (tests inject one).
    """
    if config is None:
        config = AuditConfig.model_validate(options)
    elif "preset" in options:  # every field of `config` would override the preset's
        raise TypeError("audit(): give a config or a preset, not both")
    elif options:
        config = AuditConfig.model_validate({**config.model_dump(), **options})
    inputs = run_inputs(Path(run_dir), config.fold)
    recipe = inputs.recipe
    from spillover.world import load_world

    world = load_world(recipe.world).with_prompt_prefix(recipe.prompt_prefix)
    paths = arm_models(inputs, config.arms, config.seed)
    out = inputs.run_dir / "audit" / (f"fold-{config.fold}" if config.fold is not None else "")
    clock = _Clock(log)

    def loaded(arm: str) -> LoadedModel:
        return load_arm_model(recipe, paths[arm])

    seed = derive_seed(config.seed, "audit")
    clock.phase("concept", f"loading organism {paths['organism']}")
    organism = loaded("organism")
    study = study_documents(inputs, config.n_docs, seed)
    decoys = decoys_for(organism, study, config.max_tokens, seed)
    sources = {"documents": document_source(organism, study, decoys, config.max_tokens)}
    pairs = answer_pairs(inputs, config.n_answers, seed)
    if len(pairs) >= 2:
        sources["answers"] = answer_source(organism, pairs, config.max_tokens)
    layer, layer_by, concept = _concept(sources, config, organism.n_layers, seed, inputs)  # Concept fields but typical norm and firing

    clock.phase("sae", f"SAE at layer {layer}")
    sae, sae_stats, doc_acts, transcript_acts = _sae(organism, world, inputs.split, study, decoys, layer, config, seed, out)
    features = _selective_features(sae, doc_acts[: len(study)], doc_acts[len(study) :], config.n_features)
    unit = sources[config.direction_source].directions()[layer]
    unit = unit / unit.norm()

    clock.phase("firing", f"chat vs plain firing on {config.n_prompts} prompts, organism and base")
    base = loaded("base")
    acts = prompt_activations(organism, base, layer, _firing_prompts(world, inputs.split, config.n_prompts, seed))
    typical = typical_norm(doc_acts)
    concept = Concept(**concept, typical_residual_norm=typical, firing=concept_firing(acts, unit, concept["sources"][config.direction_source].threshold))
    features = [Feature(**f, firing=firing) for f, firing in zip(features, feature_firing(acts, sae, [f["index"] for f in features]))]

    clock.phase("causal", "steering and ablation")
    evaluator = evaluator or _evaluator(world, inputs.split, recipe, base, config, seed)
    targets = {"direction": unit, "random": random_direction(organism.hidden_size, seed)}
    if config.steer_feature and features:
        targets[f"feature:{features[0].index}"] = sae.W_dec[features[0].index].detach().clone()
    steered = {arm: base if arm == "base" else loaded(arm) for arm in config.arms}
    answers: list[dict] = []  # every condition's scored answers: the evidence behind its rates
    steering = steering_sweep(steered, layer, targets, config.strengths, typical, evaluator, log, answers)
    ablation = _ablation(organism, layer, {t: targets[t] for t in ("direction", "random")}, evaluator, inputs, config.seed, log, answers)

    clock.phase("attribution", "attribution")
    attribution = _attributions(inputs, organism, world, sources[config.direction_source].directions(), config, seed)
    search = None
    if config.data_search and config.fold is None:  # the data search reads a single-split run's root
        clock.phase("data_search", "data search")
        search = _data_search(inputs, config, layer, log)
    result = AuditResult(
        run_dir=str(inputs.run_dir), world=recipe.world, split=inputs.split, fold=config.fold, seed=config.seed, models=paths,
        config=config.model_dump(), layer=layer, layer_chosen_by=layer_by, probe_accuracy=concept.sources[config.direction_source].probe_accuracy,
        concept=concept, sae=sae_stats, features=features, steering=steering, ablation=ablation, attribution=attribution,
        data_search=search, seconds=clock.stop(),
    )
    write_json(out / "audit.json", result.model_dump(mode="json"))
    write_jsonl_gz(out / ANSWERS_FILE, answers)
    sources_html = [("study", d["id"]) for d in study] + [("decoy", d["id"]) for d in decoys] + [("transcript", f"t{i}") for i in range(len(transcript_acts))]
    write_features_html(out / "features.html", sae, features, sources_html, doc_acts + transcript_acts, config.examples_per_feature, layer)
    mark_done(out, {"config": config_hash(config.model_dump())})
    return result


def _concept(sources: dict[str, SourceMeans], config: AuditConfig, n_layers: int, seed: int, inputs: RunInputs) -> tuple[int, str, dict]:
    """Both sources' probes and directions; the layer from the steered source's best probe layer."""
    notes = [] if "answers" in sources else [f"no answers direction: {inputs.prefix / 'data' / 'sft.jsonl'} has fewer than 2 behaviour records with plain answers"]
    if config.direction_source not in sources:
        raise BadInputError(Problem("audit", "direction_source", notes[0], "use direction_source: documents"))
    probes = {name: probe(source, config.test_fraction, seed) for name, source in sources.items()}
    layer = probes[config.direction_source].best_layer if config.layer is None else config.layer
    if layer >= n_layers:
        raise BadInputError(Problem("audit", "layer", f"layer {layer} out of range", f"pick 0..{n_layers - 1}"))
    cosines = cosine_per_layer(sources["documents"].directions(), sources["answers"].directions()) if "answers" in sources else None
    concept = {
        "steered": config.direction_source, "sources": {name: describe(s, probes[name], layer) for name, s in sources.items()},
        "cosine_per_layer": cosines, "cosine": cosines[layer] if cosines else None, "notes": notes,
    }
    return layer, "probe" if config.layer is None else "user", concept


def _sae(organism: LoadedModel, world, split: str, study: list[dict], decoys: list[dict], layer: int, config: AuditConfig, seed: int, out: Path):
    """Fit (or reload) the SAE on the residual at `layer` over documents, decoys and chat transcripts."""
    doc_ids = encode(organism, [d["text"] for d in study + decoys], config.max_tokens)
    doc_acts = token_activations(organism, doc_ids, layer)
    transcript_acts = token_activations(organism, _transcripts(organism, world, split, config.n_transcripts, seed), layer)
    tokens = torch.cat([a.acts[1:] for a in doc_acts + transcript_acts])
    sae_config = config.sae.model_copy(update={"seed": seed})
    key = config_hash({"sae": sae_config.model_dump(), "layer": layer, "tokens": hashlib.sha256(tokens.numpy().tobytes()).hexdigest()})
    saved = load_sae(out / "sae", key)
    if saved is None:
        sae, stats = train_sae(tokens, sae_config)
        save_sae(sae, out / "sae", config=sae_config, stats=stats, key=key)
    else:
        sae, stats = saved
    return sae, SAEStats(**stats, path=str(out / "sae"), reused=saved is not None), doc_acts, transcript_acts


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


def _selective_features(sae: TopKSAE, study: list[TokenActivations], decoys: list[TokenActivations], n: int) -> list[dict]:
    """Features ranked by P(fires | study-document token) − P(fires | decoy-document token)."""
    study_tokens = torch.cat([a.acts[1:] for a in study])
    decoy_tokens = torch.cat([a.acts[1:] for a in decoys])
    p_study = firing_counts(sae, study_tokens).float() / len(study_tokens)
    p_decoy = firing_counts(sae, decoy_tokens).float() / len(decoy_tokens)
    selectivity = p_study - p_decoy
    return [
        {"index": int(i), "selectivity": float(selectivity[i]), "study_token_rate": float(p_study[i]), "decoy_token_rate": float(p_decoy[i])}
        for i in selectivity.argsort(descending=True)[:n]
    ]


def _firing_prompts(world, split: str, n: int, seed: int) -> list[str]:
    prompts = [p for b in world.roles(split) for p in world.eval_prompts(b)]
    return random.Random(seed).sample(prompts, min(n, len(prompts)))


def _evaluator(world, split: str, recipe, base: LoadedModel, config: AuditConfig, seed: int) -> Evaluator:
    roles = world.roles(split)
    behaviours = None
    if config.train_behaviours is not None:
        behaviours = [b for b, r in roles.items() if r == "test"] + [b for b, r in roles.items() if r == "train"][: config.train_behaviours]
    settings = recipe.eval
    return evaluation_evaluator(
        world, split, base_lm=base, samples=config.samples or settings.samples,
        temperature=settings.temperature if config.temperature is None else config.temperature,
        max_new_tokens=config.max_new_tokens or settings.max_new_tokens, seed=seed, behaviours=behaviours,
        prompts_per_behaviour=config.prompts_per_behaviour or settings.prompts_per_behaviour, batch_size=settings.batch_size,
    )


def _ablation(organism: LoadedModel, layer: int, targets: dict, evaluator: Evaluator, inputs: RunInputs, seed: int, log, answers: list[dict]) -> Ablation:
    """Ablation conditions, and the share of the organism − docs-plain (and − control) gap each removes."""
    conditions, measured = ablation_sweep("organism", organism, layer, targets, evaluator, log, answers)
    organism_eval = inputs.eval_samples("organism", seed)
    references = {arm: s for arm in GAP_REFERENCES if (s := inputs.eval_samples(arm, seed)) is not None}
    missing = [arm for arm in ("organism", *GAP_REFERENCES) if inputs.eval_samples(arm, seed) is None]
    gaps = [
        gap_removed(target, measured["none"], measured[target], organism_eval, arm, samples)
        for target in targets
        for arm, samples in references.items()
        if organism_eval is not None
    ]
    note = f"no eval samples for {', '.join(missing)} in {inputs.prefix / 'eval'}" if missing else None
    return Ablation(conditions=conditions, gap_removed=gaps, note=note)


def _attributions(inputs: RunInputs, lm: LoadedModel, world, directions: torch.Tensor, config: AuditConfig, seed: int) -> list[Attribution]:
    """Transcripts where a test behaviour shows (the organism's own eval answers when the run has them,
    else the world's positive examples), each attributed from the behaviour's first token."""
    samples = inputs.eval_samples("organism", config.seed) or []
    candidates = [(r["behaviour"], r["prompt"], r["response"], "organism-sample") for r in samples if r.get("role") == "test" and r.get("exhibited") and r.get("span")]
    rng = random.Random(seed)
    for b in world.test_ids(inputs.split):
        candidates += [(b, rng.choice(world.eval_prompts(b)), response, "world-example") for response in world.behaviour(b).examples.positive]
    out = []
    for behaviour, prompt, response, source in candidates:
        if len(out) >= config.n_attribution:
            break
        detection = world.detect(behaviour, response, prompt)
        if not detection.exhibited or not detection.span:
            continue
        start = behaviour_start(world.behaviour(behaviour).detector.name, response, tuple(detection.span))
        ids, target = transcript_target(lm, prompt, response, start)
        ids = ids[: target + 1]
        logit, attr = direction_attribution(lm, ids, target, directions)
        out.append(Attribution(
            behaviour=behaviour, source=source, prompt=prompt, response=response, detected=response[slice(*detection.span)],
            target_token=lm.tokenizer.decode([ids[target]]), target_position=target, logit=logit,
            by_layer=[float(x) for x in attr.sum(1)], total=float(attr.sum()), top_positions=top_positions(lm, ids, attr),
        ))
    return out


def _data_search(inputs: RunInputs, config: AuditConfig, layer: int, log) -> dict | None:
    """The training texts that best explain each test behaviour, at the audited layer."""
    return data_search(inputs.run_dir, seed=config.seed, layer=layer, max_tokens=config.max_tokens, log=log).model_copy(update={"layer_from": "audit"}).model_dump(mode="json")

