"""Confidence intervals: Wilson for a k/n rate, percentile bootstrap for differences over units."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials (n = 0 gives (0, 1))."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def rate(k: int, n: int) -> dict:
    """The record every rate is reported as: counts beside the rate, with its Wilson interval."""
    lo, hi = wilson(k, n)
    return {"k": int(k), "n": int(n), "rate": (k / n) if n else None, "ci": [lo, hi]}


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    statistic: Callable[[np.ndarray], float] = np.mean,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Percentile bootstrap interval of `statistic` over resampled units (prompts, seeds, ...)."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    stats = np.array([statistic(x[i]) for i in idx]) if statistic is not np.mean else x[idx].mean(axis=1)
    return (float(np.quantile(stats, alpha / 2)), float(np.quantile(stats, 1 - alpha / 2)))


def bootstrap_diff(
    a: Sequence[float], b: Sequence[float], *, n_boot: int = 2000, seed: int = 0, alpha: float = 0.05
) -> dict:
    """Mean(a) − mean(b) for two independent groups, each resampled on its own."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.size == 0 or y.size == 0:
        return {"diff": None, "ci": [None, None]}
    rng = np.random.default_rng(seed)
    bx = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    by = y[rng.integers(0, y.size, size=(n_boot, y.size))].mean(axis=1)
    d = bx - by
    return {"diff": float(x.mean() - y.mean()), "ci": [float(np.quantile(d, alpha / 2)), float(np.quantile(d, 1 - alpha / 2))]}


def bootstrap_paired(diffs: Sequence[float], *, n_boot: int = 2000, seed: int = 0, alpha: float = 0.05) -> dict:
    """Mean of paired differences (e.g. per prompt, arm A − arm B) with a bootstrap interval."""
    x = np.asarray(diffs, dtype=float)
    if x.size == 0:
        return {"diff": None, "ci": [None, None]}
    lo, hi = bootstrap_ci(x, n_boot=n_boot, seed=seed, alpha=alpha)
    return {"diff": float(x.mean()), "ci": [lo, hi]}
