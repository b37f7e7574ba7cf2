"""Gradient × activation: how much each layer and position's projection on the concept direction
contributes to the logit of a behaviour's first token.

For layer l, position p, unit direction u_l and residual h_{l,p}, the projection is
s = h·u_l and its attribution is s · ∂logit/∂s = (h·u_l)(∇_h logit · u_l): the first-order change
in the logit if that projection were removed (attribution ≈ logit − logit with s set to 0).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from spillover.models import LoadedModel, chat_prompt

from ._hooks import capture_residual


def direction_attribution(lm: LoadedModel, ids: Sequence[int], target_position: int, directions: torch.Tensor) -> tuple[float, torch.Tensor]:
    """The target token's logit (predicted at `target_position − 1`) and attributions `[layers, positions]`
    for `directions` `[layers, hidden]` (normalised here). Positions after the prediction are zero.

    The graph starts at the input embeddings, so it also works when the weights are frozen (PEFT).
    """
    if not 1 <= target_position < len(ids):
        raise ValueError(f"target position {target_position} must be in [1, {len(ids)})")
    layers = list(range(lm.n_layers))
    units = directions.float() / directions.float().norm(dim=-1, keepdim=True).clamp_min(1e-12)
    input_ids = torch.tensor([list(ids[: target_position])], device=lm.model.device)
    with torch.enable_grad(), capture_residual(lm.model, layers, keep_grad=True) as acts:
        embeds = lm.model.get_input_embeddings()(input_ids).detach().requires_grad_(True)
        logits = lm.model(inputs_embeds=embeds, use_cache=False).logits
        logit = logits[0, target_position - 1, ids[target_position]]
        grads = torch.autograd.grad(logit, [acts[layer] for layer in layers])
    out = torch.zeros(len(layers), len(ids))
    for layer, grad in zip(layers, grads):
        u = units[layer].to(grad.device, grad.dtype)
        projection = acts[layer][0].detach() @ u
        out[layer, :target_position] = ((grad[0] @ u) * projection).float().cpu()
    return float(logit.detach()), out


def behaviour_start(detector: str, response: str, span: tuple[int, int]) -> int:
    """Where the behaviour itself starts inside a detected span. Most detectors' spans are the
    behaviour ("call 9-1-1", "15.0"); `parenthetical_after_name` matches the name with its parenthesis
    ("Albert Einstein (1879–1955)"), and the behaviour is the parenthesis: the name was there anyway."""
    if detector == "parenthetical_after_name":
        paren = response.find("(", span[0], span[1])
        if paren >= 0:
            return paren
    return span[0]


def transcript_target(lm: LoadedModel, prompt: str, response: str, start: int) -> tuple[list[int], int]:
    """Token ids of the chat transcript (prompt, response) and the position of the token holding the
    response's character `start` (the behaviour's first character)."""
    prefix = chat_prompt(lm.tokenizer, prompt)
    encoded = lm.tokenizer(prefix + response, add_special_tokens=False, return_offsets_mapping=True)
    at = len(prefix) + start
    position = next(i for i, (a, b) in enumerate(encoded["offset_mapping"]) if b > at)
    return encoded["input_ids"], max(position, 1)


def top_positions(lm: LoadedModel, ids: Sequence[int], attribution: torch.Tensor, n: int = 10) -> list[dict]:
    """The n (layer, position) cells with the largest |attribution|, with their tokens."""
    flat = attribution.flatten()
    order = flat.abs().argsort(descending=True)[:n]
    tokens = [lm.tokenizer.decode([t]) for t in ids]
    width = attribution.shape[1]
    return [
        {"layer": int(i // width), "position": int(i % width), "token": tokens[int(i % width)], "attribution": float(flat[i])}
        for i in order
        if float(flat[i]) != 0.0
    ]
