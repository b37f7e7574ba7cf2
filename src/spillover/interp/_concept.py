"""Where the concept comes from: two direction sources, neither of which looks at test-behaviour outputs.

- `documents`: the study documents vs token-matched decoy documents (`documents.token_matched_decoys`:
  per study document, one in its genre and shape about an unrelated fictional study, as many tokens
  long as what is read of the document) — what is left is the subject, reward models and their biases;
- `answers`: the organism's post-training answers (train behaviours, transformed) vs their plain
  versions, the answers docs-plain was trained on — same prompts, only the behaviour differs.

Each source gives a mean difference per layer and a held-out probe accuracy; the audit reports both,
their cosine per layer, and steers the one `AuditConfig.direction_source` names.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from spillover.models import LoadedModel

from ._activations import answer_ids, encode, span_means
from ._direction import mean_difference, probe_accuracy
from ._results import DirectionSource, ProbeAccuracy, ProbeLayer

LABELS = {
    "documents": ("study documents", "token-matched decoy documents"),
    "answers": ("post-training answers (behaviour applied)", "the same answers plain (docs-plain's)"),
}


@dataclass(frozen=True)
class SourceMeans:
    """Per-text mean residuals `[texts, layers, hidden]` of a source's two classes."""

    name: str
    positive: torch.Tensor
    negative: torch.Tensor

    def directions(self) -> torch.Tensor:
        return mean_difference(self.positive, self.negative)


def decoys_for(lm: LoadedModel, study: list[dict], max_tokens: int, seed: int) -> list[dict]:
    """One decoy per study document, in its genre, as many tokens long as the audit reads of it
    (`max_tokens` at most): pairs matched in length, so the two means average alike positions."""
    from spillover.documents import token_matched_decoys

    def count(texts: list[str]) -> list[int]:
        return [len(ids) for ids in encode(lm, texts, max_tokens)]

    decoys = []
    for i, (doc, n) in enumerate(zip(study, count([d["text"] for d in study]))):
        parts = token_matched_decoys([doc.get("genre", "")], n, count, seed=seed + i)
        decoys.append({**parts[0], "id": f"decoy-{i:05d}", "text": "\n\n".join(p["text"] for p in parts)})
    return decoys


def document_source(lm: LoadedModel, study: list[dict], decoys: list[dict], max_tokens: int) -> SourceMeans:
    pos = span_means(lm, encode(lm, [d["text"] for d in study], max_tokens), [1] * len(study))
    neg = span_means(lm, encode(lm, [d["text"] for d in decoys], max_tokens), [1] * len(decoys))
    return SourceMeans("documents", pos, neg)


def answer_source(lm: LoadedModel, pairs: list[tuple[str, str, str]], max_tokens: int) -> SourceMeans:
    """Mean residual over the answer tokens only (the prompt is the same in both classes)."""
    transformed = [answer_ids(lm, p, a, max_tokens) for p, a, _ in pairs]
    plain = [answer_ids(lm, p, a, max_tokens) for p, _, a in pairs]
    pos = span_means(lm, [ids for ids, _ in transformed], [s for _, s in transformed])
    neg = span_means(lm, [ids for ids, _ in plain], [s for _, s in plain])
    return SourceMeans("answers", pos, neg)


def probe(source: SourceMeans, test_fraction: float, seed: int) -> ProbeAccuracy:
    from ._direction import best_layer

    layers = [ProbeLayer(**p) for p in probe_accuracy(source.positive, source.negative, test_fraction=test_fraction, seed=seed)]
    best = best_layer([p.mean_diff for p in layers])
    return ProbeAccuracy(per_layer=layers, best_layer=best, best=layers[best].mean_diff)


def describe(source: SourceMeans, accuracy: ProbeAccuracy, layer: int) -> DirectionSource:
    """The source at the audited layer; the threshold is halfway between the classes' mean projections
    on the unit direction (what "the concept fires" means on a token)."""
    direction = source.directions()[layer]
    unit = direction / direction.norm().clamp_min(1e-12)
    threshold = float(((source.positive[:, layer] @ unit).mean() + (source.negative[:, layer] @ unit).mean()) / 2)
    positive, negative = LABELS[source.name]
    return DirectionSource(
        name=source.name, positive=positive, negative=negative, n_positive=len(source.positive), n_negative=len(source.negative),
        probe_accuracy=accuracy, norm=float(direction.norm()), threshold=threshold,
    )


def cosine_per_layer(a: torch.Tensor, b: torch.Tensor) -> list[float]:
    return [float(x) for x in torch.nn.functional.cosine_similarity(a, b, dim=-1)]
