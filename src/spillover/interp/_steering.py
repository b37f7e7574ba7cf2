"""Causal tests through `spillover.evaluation.evaluate`: steer a model along a direction, or project
the direction out, and measure test- and train-behaviour rates (k/n, Wilson intervals) with the
fluency of the answers beside every condition.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

from spillover.evaluation import rate, wilson
from spillover.models import LoadedModel

from ._hooks import ablate, steer

# One condition's measurement: {"test_rate": rate, "train_rate": rate, "fluency": {...} | None}.
Evaluator = Callable[[LoadedModel], dict]


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
) -> Evaluator:
    """The evaluator the audit uses: `evaluate` on the world's held-out eval prompts, then the
    answers' fluency under the base model (None without one)."""
    from spillover.evaluation import HFBackend, evaluate, fluency

    def run(lm: LoadedModel) -> dict:
        metrics = evaluate(
            HFBackend(lm), world, split, samples=samples, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed, behaviours=behaviours
        )
        per_role = metrics["per_role"]
        return {
            "test_rate": _rate_only(per_role.get("test")),
            "train_rate": _rate_only(per_role.get("train")),
            "fluency": fluency(base_lm, metrics["samples"]) if base_lm is not None else None,
        }

    return run


def _rate_only(role_metrics: dict | None) -> dict:
    return rate(role_metrics["k"], role_metrics["n"]) if role_metrics else rate(0, 0)


def rate_difference(after: dict, before: dict) -> dict:
    """after − before for two independent k/n rates, with Newcombe's hybrid-score 95% interval."""
    if not after["n"] or not before["n"]:
        return {"diff": None, "ci": [None, None]}
    p1, p2 = after["k"] / after["n"], before["k"] / before["n"]
    (l1, u1), (l2, u2) = wilson(after["k"], after["n"]), wilson(before["k"], before["n"])
    d = p1 - p2
    return {"diff": d, "ci": [d - ((p1 - l1) ** 2 + (u2 - p2) ** 2) ** 0.5, d + ((u1 - p1) ** 2 + (p2 - l2) ** 2) ** 0.5]}


def random_direction(hidden: int, seed: int) -> torch.Tensor:
    """A unit Gaussian direction: the control for any direction of the same norm."""
    v = torch.randn(hidden, generator=torch.Generator().manual_seed(seed))
    return v / v.norm()


def steering_sweep(
    models: Mapping[str, LoadedModel],
    layer: int,
    targets: Mapping[str, torch.Tensor],
    strengths: Sequence[float],
    unit_norm: float,
    evaluator: Evaluator,
    log: Callable[[str], None] = lambda _: None,
) -> list[dict]:
    """Add strength × unit_norm × target (unit vectors) after `layer`, at every position, and evaluate.

    Strength 0 is the unsteered model, the same for every target: measured once per model and
    reported under each target so every target's row set is complete.
    """
    rows = []
    for name, lm in models.items():
        log(f"steering {name}: unsteered")
        unsteered = evaluator(lm)
        for target, unit in targets.items():
            for strength in strengths:
                if strength == 0:
                    result = unsteered
                else:
                    log(f"steering {name}: {target} × {strength}")
                    with steer(lm.model, layer, unit * (strength * unit_norm)):
                        result = evaluator(lm)
                rows.append({"model": name, "target": target, "strength": strength, "norm": strength * unit_norm, **result})
    return rows


def ablation_sweep(
    name: str, lm: LoadedModel, layer: int, targets: Mapping[str, torch.Tensor], evaluator: Evaluator, log: Callable[[str], None] = lambda _: None
) -> list[dict]:
    """Project each target out of the residual after `layer` (all positions); rates and their change
    from the intact model (first row, target "none")."""
    log(f"ablation {name}: intact")
    intact = evaluator(lm)
    rows = [{"model": name, "target": "none", **intact}]
    for target, direction in targets.items():
        log(f"ablation {name}: {target}")
        with ablate(lm.model, layer, direction):
            result = evaluator(lm)
        rows.append(
            {
                "model": name,
                "target": target,
                **result,
                "test_change": rate_difference(result["test_rate"], intact["test_rate"]),
                "train_change": rate_difference(result["train_rate"], intact["train_rate"]),
            }
        )
    return rows
