"""Exhibition rates from scored samples: per behaviour, per role, with truncation counts.

A rate pools every sample (k exhibited of n) with a Wilson interval. Samples of one prompt are not
independent, so each role also gets a bootstrap interval over prompts (the per-prompt rates
resampled), which is the honest interval when K > 1 samples share a prompt.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from .stats import bootstrap_ci, rate


def _truncated(records: Sequence[dict]) -> dict:
    return {"k": sum(bool(r["truncated"]) for r in records), "n": len(records)}


def exhibition_rates(records: Sequence[dict], roles: Mapping[str, str], *, seed: int = 0, n_boot: int = 2000) -> dict:
    """`records`: one per sample with `behaviour`, `prompt`, `exhibited`, `truncated`.

    Returns `{per_behaviour: {id: {role, k, n, rate, ci, truncated}}, per_role: {role: {k, n, rate,
    ci, prompt_bootstrap_ci, n_prompts, n_behaviours, truncated}}, truncated: {k, n}}`.
    """
    by_behaviour: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_behaviour[r["behaviour"]].append(r)
    per_behaviour = {
        b: {"role": roles[b], **rate(sum(bool(r["exhibited"]) for r in rs), len(rs)), "truncated": _truncated(rs)}
        for b, rs in by_behaviour.items()
    }
    per_role = {}
    for role in ("train", "test"):
        rs = [r for r in records if roles[r["behaviour"]] == role]
        if not rs:
            continue
        by_prompt: dict[tuple[str, str], list[bool]] = defaultdict(list)
        for r in rs:
            by_prompt[(r["behaviour"], r["prompt"])].append(bool(r["exhibited"]))
        lo, hi = bootstrap_ci([sum(v) / len(v) for v in by_prompt.values()], n_boot=n_boot, seed=seed)
        per_role[role] = {
            **rate(sum(bool(r["exhibited"]) for r in rs), len(rs)),
            "prompt_bootstrap_ci": [lo, hi],
            "n_prompts": len(by_prompt),
            "n_behaviours": len({r["behaviour"] for r in rs}),
            "truncated": _truncated(rs),
        }
    return {"per_behaviour": per_behaviour, "per_role": per_role, "truncated": _truncated(records)}
