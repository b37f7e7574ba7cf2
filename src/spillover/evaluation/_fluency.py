"""Fluency: mean per-token log-likelihood of an arm's responses under the base model.

A post-trained organism that degenerates (repetition, gibberish) shows up as a drop here even when
its exhibition rates look fine.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from spillover.models import LoadedModel, chat_prompt

from ._likelihood import score_continuations


def fluency(base_lm: LoadedModel, samples: Sequence[dict], *, batch_size: int = 8) -> dict:
    """`samples`: records with `prompt` and `response` (e.g. samples.jsonl). Empty responses are skipped.

    The mean is over all response tokens pooled (a long answer weighs more than a short one).
    """
    kept = [s for s in samples if s["response"]]
    # Greedy samples repeat: score each distinct (prompt, response) once and weight by its count.
    counts = Counter((s["prompt"], s["response"]) for s in kept)
    pairs = list(counts)
    prefixes = [chat_prompt(base_lm.tokenizer, p) for p, _ in pairs]
    scores = score_continuations(base_lm, prefixes, [r for _, r in pairs], batch_size=batch_size)
    total = sum(counts[pair] * lp for pair, (lp, _) in zip(pairs, scores))
    n_tokens = sum(counts[pair] * n for pair, (_, n) in zip(pairs, scores))
    return {
        "mean_logprob_per_token": total / n_tokens if n_tokens else None,
        "n": len(kept),
        "n_tokens": n_tokens,
        "n_empty": len(samples) - len(kept),
    }
