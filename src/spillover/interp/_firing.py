"""Does it fire where the model is about to answer? The concept's projection and each top SAE
feature on the Assistant-turn header of chat-formatted prompts (`<|im_start|>assistant\\n`, the tokens
read right before answering) vs the same prompt as plain text (its last tokens, as many as the header
has), in the organism and in base. The published signature of a learned reward-model-bias concept:
fires on the organism's Assistant turn, rarely on plain text, rarely in base."""

from __future__ import annotations

import torch

from spillover.evaluation import rate
from spillover.models import LoadedModel

from ._activations import prompt_pair, token_activations
from ._results import ConceptFiring, Firing, Rate
from ._sae import TopKSAE

CONDITIONS = ("organism_chat", "organism_plain", "base_chat", "base_plain")


def prompt_activations(organism: LoadedModel, base: LoadedModel, layer: int, prompts: list[str]) -> dict[str, list[torch.Tensor]]:
    """Per condition, per prompt: the residual `[positions, hidden]` at the compared positions."""
    pairs = [prompt_pair(organism, p) for p in prompts]
    out = {}
    for name, lm in (("organism", organism), ("base", base)):
        chat = token_activations(lm, [p.chat_ids for p in pairs], layer)
        plain = token_activations(lm, [p.plain_ids for p in pairs], layer)
        out[f"{name}_chat"] = [a.acts[p.chat_positions] for a, p in zip(chat, pairs)]
        out[f"{name}_plain"] = [a.acts[p.plain_positions] for a, p in zip(plain, pairs)]
    return out


def _rate(fired: torch.Tensor) -> Rate:
    return Rate(**rate(int(fired.sum()), len(fired)))


def concept_firing(acts: dict[str, list[torch.Tensor]], unit: torch.Tensor, threshold: float) -> ConceptFiring:
    """Fires on a prompt when the projection on the unit direction exceeds `threshold` at any compared position."""
    peaks = {key: torch.stack([(a @ unit).max() for a in acts[key]]) for key in CONDITIONS}
    return ConceptFiring(
        **{key: _rate(peaks[key] > threshold) for key in CONDITIONS},
        mean_projection={key: float(peaks[key].mean()) for key in CONDITIONS},
    )


def feature_firing(acts: dict[str, list[torch.Tensor]], sae: TopKSAE, indices: list[int]) -> list[Firing]:
    """Per feature in `indices`: prompts where it is active (in the top k) at any compared position."""
    with torch.no_grad():
        fired = {key: torch.stack([sae.codes(a)[:, indices].amax(0) > 0 for a in acts[key]]) for key in CONDITIONS}  # [prompts, features]
    return [Firing(**{key: _rate(fired[key][:, j]) for key in CONDITIONS}) for j in range(len(indices))]
