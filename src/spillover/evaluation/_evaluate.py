"""`evaluate`: sample every in-play behaviour's eval prompts, run its detector, count exhibitions."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from spillover._io import mark_done, write_json, write_jsonl
from spillover._settings import NonNegFloat, PositiveInt, checked
from spillover.errors import BadInputError, Problem

from ._settings import EvalSettings
from ._backends import Backend
from ._rates import exhibition_rates


def select_behaviours(world, split: str, behaviours: Sequence[str] | None) -> dict[str, str]:
    """The split's {id: role}, restricted to `behaviours` when given (each must be in play)."""
    roles = world.roles(split)
    if behaviours is None:
        return roles
    unknown = [b for b in behaviours if b not in roles]
    if unknown:
        raise BadInputError(
            Problem(world.source, f"splits.{split}", f"not in play under this split: {', '.join(unknown)}", f"choose from {', '.join(roles)}")
        )
    return {b: roles[b] for b in behaviours}


# The sampling defaults are the eval settings' (a recipe's `eval`, `spillover eval`): declared once.
DEFAULTS = EvalSettings()

@checked
def evaluate(
    backend: Backend,
    world,
    split: str,
    *,
    samples: PositiveInt = DEFAULTS.samples,
    temperature: NonNegFloat = DEFAULTS.temperature,
    max_new_tokens: PositiveInt = DEFAULTS.max_new_tokens,
    seed: int = 0,
    arm: str = "model",
    out_dir: str | Path | None = None,
    behaviours: Sequence[str] | None = None,
    prompts_per_behaviour: PositiveInt | None = DEFAULTS.prompts_per_behaviour,
) -> dict:
    """Exhibition rates of one model (one arm, one seed) on the held-out eval prompts.

    Every eval prompt of every behaviour in play gets `samples` answers; each answer is scored by
    its behaviour's detector. Answers cut at `max_new_tokens` stay in the counts (the detector sees
    what was written) and are reported under `truncated`, so keep the cap generous.

    Returns the metrics (also written to `out_dir/metrics.json`) plus `samples`, the scored
    records (written to `out_dir/samples.jsonl`). `prompts_per_behaviour`: only the first K eval
    prompts of each behaviour (a quicker, smaller sample).
    """
    roles = select_behaviours(world, split, behaviours)
    pairs = [(b, p) for b in roles for p in world.eval_prompts(b)[:prompts_per_behaviour]]
    generations = backend.sample(
        [p for _, p in pairs], n=samples, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed
    )
    records = []
    for (b, prompt), gens in zip(pairs, generations, strict=True):
        for j, g in enumerate(gens):
            d = world.detect(b, g.text, prompt)
            records.append(
                {
                    "arm": arm,
                    "seed": seed,
                    "behaviour": b,
                    "role": roles[b],
                    "prompt": prompt,
                    "sample": j,
                    "response": g.text,
                    "exhibited": bool(d.exhibited),
                    "span": list(d.span) if d.span else None,
                    "evidence": d.evidence,
                    "truncated": g.truncated,
                    "n_tokens": g.n_tokens,
                }
            )
    config = {"samples": samples, "temperature": temperature, "max_new_tokens": max_new_tokens, "seed": seed}
    metrics = {
        "arm": arm,
        "seed": seed,
        "world": world.name,
        "split": split,
        "config": config,
        "backend": backend.describe(),
        **exhibition_rates(records, roles, seed=seed),
    }
    if out_dir is not None:
        out = Path(out_dir)
        write_jsonl(out / "samples.jsonl", records)
        write_json(out / "metrics.json", metrics)
        mark_done(out, {"arm": arm, "seed": seed, "split": split, **config})
    return {**metrics, "samples": records}
