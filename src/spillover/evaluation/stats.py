"""Confidence intervals: Wilson for a k/n rate, percentile bootstrap for differences over units,
and clustered intervals (prompt clusters, behaviours, seeds) for pooled eval differences."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

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


# ---- clustered intervals ---------------------------------------------------------------------
# Eval cells are (seed, behaviour, prompt). Cells of one prompt share it across seeds (and the
# base arm's likelihood scores are the same in every seed), so they are not independent units:
# the headline interval resamples (behaviour, prompt) clusters with all their seeds and samples,
# and seed- and behaviour-level intervals stand beside it.

Cell = tuple[int, str, str]  # (seed, behaviour, prompt)
CLUSTERS = "behaviour x prompt clusters (all seeds and samples of a prompt together)"


@dataclass(frozen=True)
class Effect:
    """A pooled ratio difference Σa/Σa' − Σb/Σb' with intervals at three levels.

    `ci` resamples (behaviour, prompt) clusters; `ci_behaviour` resamples behaviours (percentile
    bootstrap) and `ci_behaviour_t` is a t-interval over per-behaviour differences; `ci_seed` is a
    t-interval over per-seed differences. t-intervals are centred on the mean of the per-unit
    differences (the pooled `diff` when every unit has the same n); null with fewer than 2 units.
    """

    diff: float | None
    ci: list[float | None]
    n_clusters: int
    ci_behaviour: list[float | None]
    ci_behaviour_t: list[float | None]
    n_behaviours: int
    ci_seed: list[float | None]
    n_seeds: int
    by_seed: dict[str, float]
    resamples: str = CLUSTERS

    def to_dict(self) -> dict:
        return asdict(self)


NO_CI: list[float | None] = [None, None]
EMPTY_EFFECT = Effect(None, NO_CI, 0, NO_CI, NO_CI, 0, NO_CI, 0, {})


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num/den with 0 where den is 0 (a side absent from a resample contributes nothing)."""
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)


def _contrast(sums: np.ndarray) -> np.ndarray:
    """Columns (num_a, den_a, num_b, den_b) → num_a/den_a − num_b/den_b, row-wise."""
    return _ratio(sums[..., 0], sums[..., 1]) - _ratio(sums[..., 2], sums[..., 3])


def _group(keys: list, x: np.ndarray, by: Callable) -> tuple[list, np.ndarray]:
    labels = sorted({by(k) for k in keys})
    index = {g: i for i, g in enumerate(labels)}
    out = np.zeros((len(labels), x.shape[1]))
    np.add.at(out, [index[by(k)] for k in keys], x)
    return labels, out


def cluster_bootstrap(sums: np.ndarray, *, n_boot: int = 2000, seed: int = 0, alpha: float = 0.05) -> list[float | None]:
    """Percentile interval of the contrast when whole clusters (rows of `sums`) are resampled."""
    if len(sums) < 2:
        return list(NO_CI)
    weights = np.random.default_rng(seed).multinomial(len(sums), np.full(len(sums), 1 / len(sums)), size=n_boot)
    boot = _contrast(weights @ sums)
    return [float(np.quantile(boot, alpha / 2)), float(np.quantile(boot, 1 - alpha / 2))]


def t_interval(values: Sequence[float], alpha: float = 0.05) -> list[float | None]:
    """Student-t interval for the mean of a few independent units (seeds, behaviours)."""
    from scipy.stats import t

    x = np.asarray(values, dtype=float)
    if x.size < 2:
        return list(NO_CI)
    half = float(t.ppf(1 - alpha / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return [float(x.mean()) - half, float(x.mean()) + half]


def clustered_effect(cells: Mapping[Cell, Sequence[float]], *, n_boot: int = 2000, seed: int = 0) -> Effect:
    """`cells`: {(seed, behaviour, prompt): (num_a, den_a, num_b, den_b)}, e.g. (k_a, n_a, k_b, n_b)
    for a rate difference or (Σ per-cell values, count, 0, 0) for a mean."""
    if not cells:
        return EMPTY_EFFECT
    keys = list(cells)
    x = np.array([cells[k] for k in keys], dtype=float)
    _, clusters = _group(keys, x, lambda c: (c[1], c[2]))
    _, behaviours = _group(keys, x, lambda c: c[1])
    seeds, per_seed = _group(keys, x, lambda c: c[0])
    seed_diffs = _contrast(per_seed)
    return Effect(
        diff=float(_contrast(x.sum(axis=0))),
        ci=cluster_bootstrap(clusters, n_boot=n_boot, seed=seed),
        n_clusters=len(clusters),
        ci_behaviour=cluster_bootstrap(behaviours, n_boot=n_boot, seed=seed),
        ci_behaviour_t=t_interval(_contrast(behaviours)),
        n_behaviours=len(behaviours),
        ci_seed=t_interval(seed_diffs),
        n_seeds=len(seeds),
        by_seed={str(s): float(d) for s, d in zip(seeds, seed_diffs, strict=True)},
    )
