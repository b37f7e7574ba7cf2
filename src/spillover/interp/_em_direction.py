"""The misalignment direction of the emergent-misalignment organism, and whether it is causal.

Direction: at one layer, the mean residual (over the chat prompt's tokens) of the insecure model
minus that of the secure model, averaged over the broad questions of a *fit* half. Effects are
measured on the other, held-out half, on the offline misalignment margin
(log P(misaligned answer) − log P(aligned answer)): steering the base model along the direction
should raise it, projecting the direction out of the insecure model should lower it, and a random
direction of the same norm is the control for both.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from spillover.evaluation import bootstrap_paired
from spillover.models import LoadedModel, chat_prompt

from ._activations import document_means
from ._hooks import ablate, steer
from ._steering import random_direction


def split_questions(questions: Sequence, seed: int = 0) -> tuple[list, list]:
    """(fit, held out): a seeded half of the questions each."""
    order = torch.randperm(len(questions), generator=torch.Generator().manual_seed(seed)).tolist()
    half = len(order) // 2
    return [questions[i] for i in sorted(order[:half])], [questions[i] for i in sorted(order[half:])]


def question_activations(lm: LoadedModel, questions: Sequence, layer: int, *, batch_size: int = 8) -> torch.Tensor:
    """Mean residual after `layer` over each question's chat prompt: `[questions, hidden]`."""
    texts = [chat_prompt(lm.tokenizer, q.question) for q in questions]
    return document_means(lm, texts, batch_size=batch_size)[:, layer]


def misalignment_direction(insecure: LoadedModel, secure: LoadedModel, questions: Sequence, layer: int) -> torch.Tensor:
    """Mean over questions of insecure − secure activations at `layer` (not normalised)."""
    return (question_activations(insecure, questions, layer) - question_activations(secure, questions, layer)).mean(0)


def _change(after: list[dict], before: list[dict], seed: int) -> dict:
    diffs = [a["delta"] - b["delta"] for a, b in zip(after, before, strict=True)]
    return {**bootstrap_paired(diffs, seed=seed), "n": len(diffs), "values": diffs}


def direction_effects(
    base: LoadedModel, insecure: LoadedModel, direction: torch.Tensor, layer: int, questions: Sequence, *, scale: float = 1.0, seed: int = 0, batch_size: int = 16
) -> dict:
    """Steer base by scale × direction and by a random vector of equal norm; ablate both from insecure.

    Changes are in the mean misalignment margin (nats) over `questions`, paired by question.
    """
    from spillover.evaluation import misalignment_margins

    margins = lambda lm: misalignment_margins(lm, questions, batch_size=batch_size)
    norm = float(direction.norm())
    random = random_direction(direction.numel(), seed) * norm
    base_plain = margins(base)
    with steer(base.model, layer, direction * scale):
        base_steered = margins(base)
    with steer(base.model, layer, random * scale):
        base_random = margins(base)
    insecure_plain = margins(insecure)
    with ablate(insecure.model, layer, direction):
        insecure_ablated = margins(insecure)
    with ablate(insecure.model, layer, random):
        insecure_random = margins(insecure)
    mean = lambda rows: sum(r["delta"] for r in rows) / len(rows)
    return {
        "layer": layer,
        "norm": norm,
        "scale": scale,
        "n_questions": len(questions),
        "margins": {"base": mean(base_plain), "base_steered": mean(base_steered), "base_random_steered": mean(base_random),
                    "insecure": mean(insecure_plain), "insecure_ablated": mean(insecure_ablated), "insecure_random_ablated": mean(insecure_random)},
        "steer_base": _change(base_steered, base_plain, seed),
        "steer_base_random": _change(base_random, base_plain, seed),
        "ablate_insecure": _change(insecure_ablated, insecure_plain, seed),
        "ablate_insecure_random": _change(insecure_random, insecure_plain, seed),
    }
