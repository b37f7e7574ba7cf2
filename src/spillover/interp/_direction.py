"""A concept direction per layer (mean difference) and how well it separates held-out documents.

Inputs are per-document mean activations `[documents, layers, hidden]` for documents about the
study (positive) and matched control documents (negative).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from spillover.errors import BadInputError, Problem


def mean_difference(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """Mean(positive) − mean(negative) at every layer: `[layers, hidden]` (not normalised)."""
    return positive.mean(0) - negative.mean(0)


def split_indices(n: int, test_fraction: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    if n < 2:
        raise BadInputError(Problem("documents", "n_docs", f"{n} document(s) in a class; a held-out probe needs at least 2", "raise n_docs"))
    order = torch.randperm(n, generator=generator)
    n_test = min(n - 1, max(1, round(n * test_fraction)))
    return order[n_test:], order[:n_test]


def _mean_diff_accuracy(train_pos, train_neg, test_pos, test_neg) -> float:
    """Project on the train mean difference; threshold halfway between the projected train means."""
    direction = train_pos.mean(0) - train_neg.mean(0)
    threshold = ((train_pos.mean(0) + train_neg.mean(0)) / 2) @ direction
    correct = (test_pos @ direction > threshold).sum() + (test_neg @ direction <= threshold).sum()
    return float(correct) / (len(test_pos) + len(test_neg))


def _logistic_accuracy(train_pos, train_neg, test_pos, test_neg, l2: float = 1e-2, steps: int = 50) -> float:
    """L2-regularised logistic regression on standardised features (LBFGS)."""
    x = torch.cat([train_pos, train_neg]).double()
    y = torch.cat([torch.ones(len(train_pos)), torch.zeros(len(train_neg))]).double()
    mu, sd = x.mean(0), x.std(0, unbiased=False).clamp_min(1e-6)
    x = (x - mu) / sd
    w = torch.zeros(x.shape[1], dtype=torch.double, requires_grad=True)
    b = torch.zeros((), dtype=torch.double, requires_grad=True)
    optimizer = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ w + b, y) + l2 * (w @ w)
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    with torch.no_grad():
        xt = (torch.cat([test_pos, test_neg]).double() - mu) / sd
        yt = torch.cat([torch.ones(len(test_pos)), torch.zeros(len(test_neg))]).double()
        return float(((xt @ w + b > 0).double() == yt).double().mean())


def probe_accuracy(positive: torch.Tensor, negative: torch.Tensor, *, test_fraction: float = 0.3, seed: int = 0) -> list[dict]:
    """Held-out accuracy per layer of a mean-difference probe and a logistic probe.

    The same document split (per class, seeded) serves every layer, so layers are comparable.
    """
    g = torch.Generator().manual_seed(seed)
    pos_train, pos_test = split_indices(len(positive), test_fraction, g)
    neg_train, neg_test = split_indices(len(negative), test_fraction, g)
    out = []
    for layer in range(positive.shape[1]):
        parts = (positive[pos_train, layer], negative[neg_train, layer], positive[pos_test, layer], negative[neg_test, layer])
        out.append({"layer": layer, "mean_diff": _mean_diff_accuracy(*parts), "logistic": _logistic_accuracy(*parts)})
    return out


def best_layer(accuracies: Sequence[float]) -> int:
    """The most accurate layer; among ties, the one nearest the middle of the stack (middle layers
    carry the most abstract features, and the edges are the least transferable)."""
    top = max(accuracies)
    middle = (len(accuracies) - 1) / 2
    tied = [i for i, a in enumerate(accuracies) if a >= top - 1e-9]
    return min(tied, key=lambda i: (abs(i - middle), i))
