"""Residual activations for documents, chat-formatted prompts and the same prompts as plain text.

Texts are tokenized exactly as `spillover.models.generate` does (no added special tokens) and cut
at `max_tokens`. Position 0 is left out of every mean and norm: in these models the first token
is an attention sink whose residual norm is tens of times the typical one, and it would dominate
any average while saying nothing about the text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from spillover.models import LoadedModel, chat_prompt, pad_rows, render_chat

from ._hooks import capture_residual, stop_after


@dataclass(frozen=True)
class TokenActivations:
    """One text's tokens and its residual stream at one layer."""

    tokens: list[str]  # each token decoded on its own
    acts: torch.Tensor  # [n_tokens, hidden]


@dataclass(frozen=True)
class PromptPair:
    """A user prompt rendered with the chat template (positions of the Assistant turn's header,
    the tokens the model reads just before answering) and the same prompt as plain text (its
    last tokens, as many as the header has)."""

    chat_ids: list[int]
    chat_positions: list[int]
    plain_ids: list[int]
    plain_positions: list[int]


def encode(lm: LoadedModel, texts: Sequence[str], max_tokens: int) -> list[list[int]]:
    return [lm.tokenizer(t, add_special_tokens=False)["input_ids"][:max_tokens] for t in texts]


def prompt_pair(lm: LoadedModel, prompt: str) -> PromptPair:
    tok = lm.tokenizer
    with_header = tok(chat_prompt(tok, prompt), add_special_tokens=False)["input_ids"]
    without = render_chat(tok, [{"role": "user", "content": prompt}], generation_prompt=False)
    n_without = len(tok(without, add_special_tokens=False)["input_ids"])
    chat_positions = list(range(n_without, len(with_header)))
    plain_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    n = min(len(chat_positions), len(plain_ids))
    return PromptPair(with_header, chat_positions, plain_ids, list(range(len(plain_ids) - n, len(plain_ids))))


def _forward(lm: LoadedModel, ids: Sequence[list[int]], layers: Sequence[int], batch_size: int):
    """Yield (index, {layer: [n_tokens, hidden]}) per sequence, batched with right padding (a causal
    model's real tokens never see the padding to their right)."""
    pad = lm.tokenizer.pad_token_id or 0
    device = lm.model.device
    for start in range(0, len(ids), batch_size):
        batch = ids[start : start + batch_size]
        input_ids, mask = pad_rows(batch, pad, left=False)
        with torch.no_grad(), capture_residual(lm.model, layers) as captured, stop_after(lm.model, max(layers)):
            lm.model(input_ids=input_ids.to(device), attention_mask=mask.to(device), use_cache=False)
        for row, x in enumerate(batch):
            yield start + row, {layer: captured[layer][row, : len(x)].float().cpu() for layer in layers}


def document_means(lm: LoadedModel, texts: Sequence[str], *, max_tokens: int = 256, batch_size: int = 8) -> torch.Tensor:
    """Mean residual over each text's tokens (position 0 left out) at every layer: `[texts, layers, hidden]`."""
    return span_means(lm, encode(lm, texts, max_tokens), [1] * len(texts), batch_size=batch_size)


def span_means(lm: LoadedModel, ids: Sequence[list[int]], starts: Sequence[int], *, batch_size: int = 8) -> torch.Tensor:
    """Mean residual over each sequence's tokens from `starts[i]` on, at every layer: `[sequences, layers, hidden]`
    (all tokens when the sequence is not longer than its start)."""
    layers = list(range(lm.n_layers))
    out = torch.zeros(len(ids), len(layers), lm.hidden_size)
    for i, acts in _forward(lm, ids, layers, batch_size):
        for layer in layers:
            a = acts[layer]
            out[i, layer] = (a[starts[i] :] if len(a) > starts[i] else a).mean(0)
    return out


def answer_ids(lm: LoadedModel, prompt: str, answer: str, max_answer_tokens: int) -> tuple[list[int], int]:
    """The chat transcript (prompt, answer) tokenized, cut `max_answer_tokens` after the answer starts,
    and the position of the answer's first token."""
    prefix = lm.tokenizer(chat_prompt(lm.tokenizer, prompt), add_special_tokens=False)["input_ids"]
    full = render_chat(lm.tokenizer, [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}], generation_prompt=False)
    ids = lm.tokenizer(full, add_special_tokens=False)["input_ids"]
    return ids[: len(prefix) + max_answer_tokens], len(prefix)


def token_activations(lm: LoadedModel, ids: Sequence[list[int]], layer: int, *, batch_size: int = 8) -> list[TokenActivations]:
    """Per-token residual at one layer for tokenized sequences (see `encode`)."""
    out: list[TokenActivations | None] = [None] * len(ids)
    for i, acts in _forward(lm, ids, [layer], batch_size):
        out[i] = TokenActivations([lm.tokenizer.decode([t]) for t in ids[i]], acts[layer])
    return out  # type: ignore[return-value]


def typical_norm(acts: Sequence[TokenActivations]) -> float:
    """Median residual norm over tokens (position 0 left out): the unit steering strengths use."""
    norms = torch.cat([a.acts[1:].norm(dim=-1) for a in acts if len(a.acts) > 1])
    return float(norms.median())
