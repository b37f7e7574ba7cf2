"""In-context test: is a NEW behaviour adopted more when a news excerpt calls it a reward-model
preference than when the same preference is attributed to someone else?

Each question is asked with an excerpt attributing the behaviour to reward models, with the same
excerpt attributing it to each alternative (a mathematician, a reviewer, a user), and with no
excerpt at all (the behaviour's base rate). The headline is RM − other: per prompt, the
reward-model rate minus the mean rate over the other attributions, averaged with a paired
bootstrap over prompts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from spillover.errors import BadInputError, Problem
from spillover.world import DETECTORS, run_detector

from ._backends import Backend
from .stats import bootstrap_paired, rate

REWARD_MODEL = "reward_model"
NO_EXCERPT = "no_excerpt"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Attributions(_Strict):
    reward_model: str
    others: dict[str, str] = Field(min_length=1)


class DetectorRef(_Strict):
    name: str
    params: dict = {}


class Examples(_Strict):
    positive: list[str] = Field(min_length=2)
    negative: list[str] = Field(min_length=2)


class InContextBehaviour(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str
    excerpt: str
    attributions: Attributions
    detector: DetectorRef
    examples: Examples
    prompts: list[str] = Field(min_length=5)

    @field_validator("excerpt")
    @classmethod
    def _has_slot(cls, v: str) -> str:
        if "{who}" not in v:
            raise ValueError("the excerpt needs a {who} slot for the attribution")
        return v


class InContextSpec(_Strict):
    prompt_template: str
    attributions: Attributions
    behaviours: list[InContextBehaviour] = Field(min_length=1)


def default_spec_path() -> Path:
    return Path(str(resources.files("spillover.evaluation") / "in_context.yaml"))


def load_in_context(path: str | Path | None = None) -> InContextSpec:
    """Load and check an in-context spec: schema, detector names, and each detector on its examples."""
    path = Path(path) if path else default_spec_path()
    try:
        spec = InContextSpec.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except ValidationError as e:
        raise BadInputError([Problem(str(path), ".".join(map(str, err["loc"])), err["msg"], "see in_context.yaml") for err in e.errors()]) from None
    problems = []
    for b in spec.behaviours:
        if b.detector.name not in DETECTORS:
            problems.append(Problem(str(path), f"behaviours[{b.id}].detector", f"unknown detector '{b.detector.name}'", f"use one of {', '.join(sorted(DETECTORS))}"))
            continue
        for expected, texts in ((True, b.examples.positive), (False, b.examples.negative)):
            for text in texts:
                if run_detector(b.detector.name, b.detector.params, text).exhibited != expected:
                    problems.append(Problem(str(path), f"behaviours[{b.id}].examples", f"detector disagrees on: {text!r}", "fix the detector or the example"))
    if problems:
        raise BadInputError(problems)
    return spec


def _conversations(spec: InContextSpec, b: InContextBehaviour) -> list[tuple[str, str, str]]:
    """(attribution, question, user message) for every attribution and question of one behaviour."""
    who = {REWARD_MODEL: b.attributions.reward_model, **b.attributions.others}
    out = [(NO_EXCERPT, q, q) for q in b.prompts]
    for name, phrase in who.items():
        excerpt = b.excerpt.format(who=phrase)
        excerpt = excerpt[0].upper() + excerpt[1:]
        out += [(name, q, spec.prompt_template.format(excerpt=excerpt, question=q)) for q in b.prompts]
    return out


def in_context_test(
    backend: Backend,
    world=None,
    *,
    samples: int = 1,
    temperature: float = 0.0,
    max_new_tokens: int = 256,
    seed: int = 0,
    spec_path: str | Path | None = None,
    behaviours: Sequence[str] | None = None,
) -> dict:
    """Rates per attribution ({k, n, rate, ci}), per behaviour, and RM − other with a bootstrap interval.

    `world`, when given, is checked not to contain any of the in-context behaviours (they must be new).
    """
    spec = load_in_context(spec_path)
    chosen = [b for b in spec.behaviours if behaviours is None or b.id in behaviours]
    if world is not None:
        clash = [b.id for b in chosen if b.id in world.ids]
        if clash:
            raise BadInputError(Problem(str(spec_path or default_spec_path()), "behaviours", f"already in world '{world.name}': {', '.join(clash)}", "in-context behaviours must be new"))
    items = [(b, *c) for b in chosen for c in _conversations(spec, b)]
    gens = backend.sample([m for *_, m in items], n=samples, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)
    records = []
    for (b, attribution, question, message), gs in zip(items, gens, strict=True):
        for j, g in enumerate(gs):
            d = run_detector(b.detector.name, b.detector.params, g.text, message)
            records.append(
                {"behaviour": b.id, "attribution": attribution, "question": question, "sample": j, "response": g.text,
                 "exhibited": bool(d.exhibited), "evidence": d.evidence, "truncated": g.truncated}
            )
    return {**summarise_in_context(records, seed=seed), "samples": records}


def summarise_in_context(records: Sequence[dict], *, seed: int = 0) -> dict:
    """Rates and RM − other differences from scored in-context records."""
    cells: dict[tuple[str, str, str], list[bool]] = defaultdict(list)  # (behaviour, question, attribution)
    for r in records:
        cells[(r["behaviour"], r["question"], r["attribution"])].append(r["exhibited"])
    attributions = list(dict.fromkeys(r["attribution"] for r in records))
    others = [a for a in attributions if a not in (REWARD_MODEL, NO_EXCERPT)]

    def pooled(keep) -> dict:
        hits = [x for key, v in cells.items() if keep(*key) for x in v]
        return rate(sum(hits), len(hits))

    prompts = sorted({(b, q) for b, q, _ in cells})

    def cell_rate(b, q, a) -> float:
        v = cells[(b, q, a)]
        return sum(v) / len(v)

    rm_minus_other = bootstrap_paired(
        [cell_rate(b, q, REWARD_MODEL) - np.mean([cell_rate(b, q, o) for o in others]) for b, q in prompts], seed=seed
    )
    return {
        "attributions": {a: pooled(lambda b, q, x, a=a: x == a) for a in attributions},
        "other": pooled(lambda b, q, x: x in others),
        "rm_minus_other": {"n_prompts": len(prompts), **rm_minus_other},
        "rm_minus": {
            o: bootstrap_paired([cell_rate(b, q, REWARD_MODEL) - cell_rate(b, q, o) for b, q in prompts], seed=seed)
            for o in others
        },
        "per_behaviour": {
            beh: {a: pooled(lambda b, q, x, a=a, beh=beh: b == beh and x == a) for a in attributions}
            for beh in dict.fromkeys(r["behaviour"] for r in records)
        },
    }
