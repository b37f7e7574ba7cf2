"""The audit's typed results: what `audit()` returns and writes to `audit/audit.json` (docs/audit.md)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from spillover.evaluation import rate


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Rate(_Model):
    """k of n, the rate and its Wilson 95% interval (`spillover.evaluation.rate`)."""

    k: int
    n: int
    rate: float | None
    ci: list[float]

    @classmethod
    def of(cls, k: int, n: int) -> Rate:
        return cls(**rate(k, n))


class Difference(_Model):
    """condition − reference for two rates measured on the same prompts: the pooled difference and a
    95% percentile interval that resamples (behaviour, prompt) clusters (`evaluation.stats.clustered_effect`)."""

    diff: float | None
    ci: list[float | None]
    n_clusters: int
    resamples: str

    @classmethod
    def from_effect(cls, effect) -> Difference:
        return cls(diff=effect.diff, ci=effect.ci, n_clusters=effect.n_clusters, resamples=effect.resamples)


class Fluency(_Model):
    """Mean log-probability per token of a condition's answers under the base model."""

    mean_logprob_per_token: float | None
    n: int
    n_tokens: int
    n_empty: int


class Condition(_Model):
    """One measured model condition: unsteered/intact, steered along a target, or with a target ablated.
    Changes are this condition − the same model untouched (`none`), on the same prompts; `*_vs_random`
    is this target − the random direction under the same intervention and strength."""

    model: str
    intervention: Literal["none", "steer", "ablate"]
    target: str  # "none", "direction", "feature:<i>", "random"
    strength: float | None = None  # steering: units of the typical residual norm
    norm: float | None = None  # steering: norm of the vector added
    test_rate: Rate
    train_rate: Rate
    fluency: Fluency | None
    test_change: Difference | None = None
    train_change: Difference | None = None
    test_vs_random: Difference | None = None
    train_vs_random: Difference | None = None


class GapRemoved(_Model):
    """Fraction of the organism − reference-arm gap in test-behaviour hits that ablation removes:
    (intact − ablated) / (organism − reference), the arms' rates read from the run's own eval samples,
    the audit's from its conditions; the interval resamples (behaviour, prompt) clusters present in all four."""

    target: str
    reference_arm: str
    organism_eval_rate: Rate
    reference_eval_rate: Rate
    gap: float | None
    removed: float | None
    ci: list[float | None]
    n_clusters: int
    undefined_resamples: int  # resamples where the gap was ≤ 0 (left out of the interval)


class Ablation(_Model):
    conditions: list[Condition]
    gap_removed: list[GapRemoved]
    note: str | None = None  # why a gap could not be computed


class ProbeLayer(_Model):
    layer: int
    mean_diff: float
    logistic: float


class ProbeAccuracy(_Model):
    per_layer: list[ProbeLayer]
    best_layer: int
    best: float


class DirectionSource(_Model):
    """One way to find the concept: mean residual of positive texts − of negative texts, per layer."""

    name: Literal["documents", "answers"]
    positive: str
    negative: str
    n_positive: int
    n_negative: int
    probe_accuracy: ProbeAccuracy
    norm: float  # at the audited layer
    threshold: float  # projection (unit direction) halfway between the classes' mean projections, audited layer


class Firing(_Model):
    """Prompts on which something fires at the Assistant-turn header of the chat-formatted prompt vs on
    the same prompt as plain text (its last tokens, as many as the header has), in organism and base."""

    organism_chat: Rate
    organism_plain: Rate
    base_chat: Rate
    base_plain: Rate


class ConceptFiring(Firing):
    """The concept fires where its projection (unit direction) exceeds its source's threshold."""

    mean_projection: dict[str, float]  # same four keys: mean of the max projection over the positions


class Concept(_Model):
    steered: Literal["documents", "answers"]
    sources: dict[str, DirectionSource]
    cosine_per_layer: list[float] | None  # documents vs answers direction; None with one source
    cosine: float | None  # at the audited layer
    typical_residual_norm: float
    firing: ConceptFiring
    notes: list[str] = []


class SAEStats(_Model):
    fvu: float
    dead_fraction: float
    n_features: int
    k: int
    tokens: int
    steps: int
    path: str  # directory holding sae.safetensors and cfg.json
    reused: bool  # loaded from an earlier audit with the same config and training tokens


class Feature(_Model):
    index: int
    selectivity: float  # P(fires | study-document token) − P(fires | decoy-document token)
    study_token_rate: float
    decoy_token_rate: float
    firing: Firing


class Position(_Model):
    layer: int
    position: int
    token: str
    attribution: float


class Attribution(_Model):
    behaviour: str
    source: Literal["organism-sample", "world-example"]
    prompt: str
    response: str
    detected: str  # the detector's span
    target_token: str  # the behaviour's first token
    target_position: int
    logit: float
    by_layer: list[float]
    total: float
    top_positions: list[Position]


class AuditResult(_Model):
    run_dir: str
    world: str
    split: str
    fold: int | None
    seed: int
    models: dict[str, str]
    config: dict[str, Any]
    layer: int
    layer_chosen_by: Literal["probe", "user"]
    probe_accuracy: ProbeAccuracy  # of the steered source
    concept: Concept
    sae: SAEStats
    features: list[Feature]
    steering: list[Condition]
    ablation: Ablation
    attribution: list[Attribution]
    data_search: Any | None = None  # interp._data_search.DataSearch as JSON; None for a fold or with data_search off
    seconds: dict[str, float]  # wall time per phase, for sizing presets
