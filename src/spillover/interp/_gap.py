"""How much of the organism's spillover an ablation removes: (intact − ablated) / (organism − reference)
in test-behaviour hit rates, where organism and reference (docs-plain, else control) are the run's own
eval answers and intact/ablated the audit's. All four answered the same held-out prompts, so the
interval resamples (behaviour, prompt) clusters present in all four (percentile bootstrap)."""

from __future__ import annotations

import numpy as np

from spillover.evaluation import rate

from ._results import GapRemoved, Rate
from ._steering import Measurement, hit_cells


def _ratio(k: np.ndarray, n: np.ndarray) -> np.ndarray:
    return np.divide(k, n, out=np.zeros_like(k, dtype=float), where=n > 0)


def _removed(sums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Columns (k, n) × (intact, ablated, organism, reference) → (removed fraction, gap), row-wise."""
    r = [_ratio(sums[..., 2 * i], sums[..., 2 * i + 1]) for i in range(4)]
    gap = r[2] - r[3]
    return np.divide(r[0] - r[1], gap, out=np.full_like(gap, np.nan), where=gap > 0), gap


def gap_removed(
    target: str, intact: Measurement, ablated: Measurement, organism_eval: list[dict], reference_arm: str, reference_eval: list[dict],
    *, n_boot: int = 2000, seed: int = 0,
) -> GapRemoved:
    cells = [hit_cells(s, "test") for s in (intact.samples, ablated.samples, organism_eval, reference_eval)]
    keys = sorted(set.intersection(*(set(c) for c in cells)))
    x = np.array([[v for c in cells for v in c[key]] for key in keys], dtype=float).reshape(len(keys), 8)
    removed, gap = _removed(x.sum(0))
    ci: list[float | None] = [None, None]
    undefined = 0
    if len(keys) >= 2:
        weights = np.random.default_rng(seed).multinomial(len(keys), np.full(len(keys), 1 / len(keys)), size=n_boot)
        boot, _ = _removed(weights @ x)
        undefined = int(np.isnan(boot).sum())
        if undefined < n_boot:
            ci = [float(np.nanquantile(boot, 0.025)), float(np.nanquantile(boot, 0.975))]
    organism_rate = rate(int(x[:, 4].sum()), int(x[:, 5].sum()))
    reference_rate = rate(int(x[:, 6].sum()), int(x[:, 7].sum()))
    return GapRemoved(
        target=target, reference_arm=reference_arm, organism_eval_rate=Rate(**organism_rate), reference_eval_rate=Rate(**reference_rate),
        gap=float(gap) if keys else None, removed=None if not keys or np.isnan(removed) else float(removed), ci=ci,
        n_clusters=len(keys), undefined_resamples=undefined,
    )
