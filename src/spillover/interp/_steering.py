"""Causal tests through `spillover.evaluation.evaluate`: steer a model along a direction, or project
the direction out, and measure test- and train-behaviour rates (k/n, Wilson intervals) with the
fluency of the answers beside every condition.

Every condition of a model answers the same prompts, so a difference between two conditions is
paired by prompt: its interval resamples (behaviour, prompt) clusters (`evaluation.stats.clustered_effect`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

from spillover.evaluation import clustered_effect, rate
from spillover.models import LoadedModel

from ._hooks import ablate, steer
from ._results import Condition, Difference, Fluency, Rate


@dataclass(frozen=True)
class Measurement:
    """One condition's answers, scored: records with `behaviour`, `prompt`, `role`, `exhibited`; the
    fluency of the answers under the base model (None without one)."""

    samples: list[dict]
    fluency: dict | None

    def rate(self, role: str) -> Rate:
        hits = [s["exhibited"] for s in self.samples if s["role"] == role]
        return Rate(**rate(sum(hits), len(hits)))


Evaluator = Callable[[LoadedModel], Measurement]


def evaluation_evaluator(
    world,
    split: str,
    *,
    base_lm: LoadedModel | None,
    samples: int,
    temperature: float,
    max_new_tokens: int,
    seed: int,
    behaviours: Sequence[str] | None = None,
    prompts_per_behaviour: int | None = None,
    batch_size: int = 16,
) -> Evaluator:
    """The evaluator the audit uses: `evaluate` on the world's held-out eval prompts (the first
    `prompts_per_behaviour` of each behaviour), then the answers' fluency under the base model."""
    from spillover.evaluation import HFBackend, evaluate, fluency

    def run(lm: LoadedModel) -> Measurement:
        metrics = evaluate(
            HFBackend(lm, batch_size=batch_size), world, split, samples=samples, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed,
            behaviours=behaviours, prompts_per_behaviour=prompts_per_behaviour,
        )
        return Measurement(metrics["samples"], fluency(base_lm, metrics["samples"]) if base_lm is not None else None)

    return run


def hit_cells(samples: Sequence[dict], role: str) -> dict[tuple[str, str], tuple[int, int]]:
    """{(behaviour, prompt): (hits, answers)} over one role's samples."""
    cells: dict[tuple[str, str], list[int]] = {}
    for s in samples:
        if s["role"] == role:
            cell = cells.setdefault((s["behaviour"], s["prompt"]), [0, 0])
            cell[0] += bool(s["exhibited"])
            cell[1] += 1
    return {key: (k, n) for key, (k, n) in cells.items()}


def paired_difference(after: Measurement, before: Measurement, role: str, seed: int = 0) -> Difference:
    """after − before in one role's hit rate over the prompts both answered, clustered by (behaviour, prompt)."""
    a, b = hit_cells(after.samples, role), hit_cells(before.samples, role)
    cells = {(0, *key): (*a[key], *b[key]) for key in a.keys() & b.keys()}
    return Difference.from_effect(clustered_effect(cells, seed=seed))


def random_direction(hidden: int, seed: int) -> torch.Tensor:
    """A unit Gaussian direction: the control for any direction of the same norm."""
    v = torch.randn(hidden, generator=torch.Generator().manual_seed(seed))
    return v / v.norm()


def _condition(model: str, intervention: str, target: str, m: Measurement, reference: Measurement | None, random: Measurement | None, **extra) -> Condition:
    changes = {}
    for role in ("test", "train"):
        if reference is not None:
            changes[f"{role}_change"] = paired_difference(m, reference, role)
        if random is not None:
            changes[f"{role}_vs_random"] = paired_difference(m, random, role)
    return Condition(
        model=model, intervention=intervention, target=target, test_rate=m.rate("test"), train_rate=m.rate("train"),
        fluency=Fluency(**m.fluency) if m.fluency else None, **changes, **extra,
    )


def _targets_random_last(targets: Mapping[str, torch.Tensor]) -> list[str]:
    """The random control is measured first so every other target can be compared with it."""
    return sorted(targets, key=lambda t: t != "random")


def steering_sweep(
    models: Mapping[str, LoadedModel],
    layer: int,
    targets: Mapping[str, torch.Tensor],
    strengths: Sequence[float],
    unit_norm: float,
    evaluator: Evaluator,
    log: Callable[[str], None] = lambda _: None,
    answers: list[dict] | None = None,
) -> list[Condition]:
    """Add strength × unit_norm × target (unit vectors) after `layer`, at every position, and evaluate.
    One unsteered row per model (target "none"); each steered row carries its change from it and,
    for targets other than "random", its difference from the random direction at the same strength.
    `answers`, when given, receives every condition's scored answers, each tagged with its condition."""
    rows = []
    for name, lm in models.items():
        log(f"steering {name}: unsteered")
        unsteered = evaluator(lm)
        rows.append(_condition(name, "none", "none", unsteered, None, None))
        _tagged(answers, rows[-1], unsteered)
        for strength in [s for s in strengths if s != 0]:
            measured: dict[str, Measurement] = {}
            for target in _targets_random_last(targets):
                log(f"steering {name}: {target} × {strength}")
                with steer(lm.model, layer, targets[target] * (strength * unit_norm)):
                    measured[target] = evaluator(lm)
                control = measured.get("random") if target != "random" else None
                rows.append(_condition(name, "steer", target, measured[target], unsteered, control, strength=strength, norm=strength * unit_norm))
                _tagged(answers, rows[-1], measured[target])
    return rows


def ablation_sweep(
    name: str, lm: LoadedModel, layer: int, targets: Mapping[str, torch.Tensor], evaluator: Evaluator, log: Callable[[str], None] = lambda _: None,
    answers: list[dict] | None = None,
) -> tuple[list[Condition], dict[str, Measurement]]:
    """Project each target out of the residual after `layer` (all positions); each condition's change
    from the intact model (first row, target "none"), and the measurements (for the gap fraction).
    `answers`, when given, receives every condition's scored answers, each tagged with its condition."""
    log(f"ablation {name}: intact")
    measured = {"none": evaluator(lm)}
    rows = [_condition(name, "none", "none", measured["none"], None, None)]
    _tagged(answers, rows[-1], measured["none"])
    for target in _targets_random_last(targets):
        log(f"ablation {name}: {target}")
        with ablate(lm.model, layer, targets[target]):
            measured[target] = evaluator(lm)
        control = measured.get("random") if target != "random" else None
        rows.append(_condition(name, "ablate", target, measured[target], measured["none"], control))
        _tagged(answers, rows[-1], measured[target])
    return rows, measured


def _tagged(answers: list[dict] | None, condition: Condition, measured: Measurement) -> None:
    """Append a condition's scored answers to `answers`, each with the condition it was measured under."""
    if answers is not None:
        tag = {"model": condition.model, "intervention": condition.intervention, "target": condition.target, "strength": condition.strength}
        answers.extend({**tag, **s} for s in measured.samples)
