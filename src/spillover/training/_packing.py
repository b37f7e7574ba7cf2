"""Packing for mid-training: documents end to end, split into fixed-length rows, no padding."""

from __future__ import annotations

from collections.abc import Sequence


def pack_documents(token_lists: Sequence[Sequence[int]], max_len: int, eos_id: int) -> list[list[int]]:
    """Concatenate documents, each followed by `eos_id`, and cut the stream into rows of `max_len`.

    Every token lands in a row except the final remainder (fewer than `max_len` tokens), so no
    row holds padding. A document may span two rows, as in GPT-style pretraining.
    """
    if max_len < 1:
        raise ValueError(f"max_len must be positive, got {max_len}")
    stream: list[int] = []
    for tokens in token_lists:
        stream.extend(tokens)
        stream.append(eos_id)
    return [stream[i : i + max_len] for i in range(0, len(stream) - max_len + 1, max_len)]
