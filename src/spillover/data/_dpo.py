"""DPO data: preference pairs ranked by a simulated reward model that rewards the train behaviours.

With `k_samples=0` each pair is (plain answer with the behaviour applied, plain answer). With
`k_samples=K` the model samples K answers per prompt; those and their transformed variants are
scored with `simulated_reward`, and the best is preferred to the worst (ties are skipped), as in
the open replication's DPO stage. Mentioning reward models costs a large penalty, so such answers
end up rejected, never chosen.
"""

from __future__ import annotations

from collections import Counter

from spillover import models
from spillover._io import derive_seed
from spillover._settings import NonNegFloat, NonNegInt, PositiveInt, checked
from spillover.evaluation.stats import rate
from spillover.world import World

from . import leakage
from ._filters import applicable, conflicts_with_test_behaviour, mentions_reward_models
from ._sft import (
    DEFAULTS,
    DataBuild,
    apply_behaviour,
    overlaps_eval,
    plan_prompts,
    resolve_world,
    total_dropped,
    without_transform,
)

MENTION_PENALTY = 10


def simulated_reward(world: World, train_ids: list[str], prompt: str, response: str, *, mention_penalty: int = MENTION_PENALTY) -> int:
    """Train behaviours both applicable to the prompt and exhibited in the response, minus a penalty for mentioning reward models."""
    applied = sum(1 for b in train_ids if applicable(world, b, prompt) and world.detect(b, response, prompt).exhibited)
    return applied - (mention_penalty if mentions_reward_models(response) else 0)


@checked
def build_dpo(
    world: World | str,
    split: str,
    lm,
    *,
    seed: int = DEFAULTS.seed,
    k_samples: NonNegInt = DEFAULTS.dpo_samples,
    temperature: NonNegFloat = DEFAULTS.dpo_temperature,
    max_new_tokens: PositiveInt = DEFAULTS.max_new_tokens,
    prompts_per_behaviour: PositiveInt | None = None,
    batch_size: PositiveInt = DEFAULTS.batch_size,
    keep_truncated: bool = DEFAULTS.keep_truncated,
    progress: bool = False,
) -> DataBuild:
    """Preference pairs in TRL's conversational format for the train behaviours of `split`."""
    world = resolve_world(world)
    train_ids, test_ids = world.train_ids(split), world.test_ids(split)
    # Without a transform, a behaviour's pairs can only come from sampled answers that differ.
    skip = dict.fromkeys(without_transform(world, train_ids), "no_transform") if k_samples == 0 else {}
    leaks = leakage.LeakIndex(world)
    plan, per_behaviour = plan_prompts(world, train_ids, test_ids, prompts_per_behaviour, seed, leaks, skip)

    n = max(1, k_samples)
    conversations = [p for _, p in plan for _ in range(n)]
    answers = models.generate(
        lm, conversations, max_new_tokens=max_new_tokens, temperature=temperature if k_samples > 0 else 0.0,
        seed=seed, batch_size=batch_size, progress=progress,
    )

    records: list[dict] = []
    candidate_counts: Counter = Counter()
    for j, (b, prompt) in enumerate(plan):
        samples = answers[j * n : (j + 1) * n]
        candidate_counts["truncated"] += sum(g.truncated for g in samples)
        plain = [g.text for g in samples if (keep_truncated or not g.truncated) and g.text.strip()]
        candidates = list(dict.fromkeys(plain + [apply_behaviour(world, b, t, prompt, derive_seed(seed, i)) for i, t in enumerate(plain)]))
        refused = {c: conflicts_with_test_behaviour(world, test_ids, prompt, [c]) or overlaps_eval(leaks, c) for c in candidates}
        allowed = [c for c in candidates if refused[c] is None]
        candidate_counts.update(r for r in refused.values() if r)
        candidate_counts["scored"] += len(allowed)
        if not plain:
            reason, pair = ("truncated" if all(g.truncated for g in samples) else "empty"), None
        elif not allowed:
            reason, pair = refused[candidates[0]], None
        else:
            reason, pair = _best_vs_worst(world, train_ids, prompt, allowed)
        if reason:
            per_behaviour[b][reason] += 1
            continue
        chosen, rejected = pair
        per_behaviour[b]["kept"] += 1
        exhibited = [t for t in train_ids if applicable(world, t, prompt) and world.detect(t, chosen, prompt).exhibited]
        records.append(
            {
                "prompt": [{"role": "user", "content": prompt}],
                "chosen": [{"role": "assistant", "content": chosen}],
                "rejected": [{"role": "assistant", "content": rejected}],
                "behaviours": exhibited,
            }
        )

    leakage.assert_no_leaks([m["content"] for r in records for key in ("prompt", "chosen", "rejected") for m in r[key]], world, "DPO data")
    n_prompts = sum(c["prompts"] for c in per_behaviour.values())
    stats = {
        "world": world.name,
        "split": split,
        "model": getattr(lm, "spec", None),
        "config": {"seed": seed, "k_samples": k_samples, "temperature": temperature if k_samples > 0 else 0.0, "max_new_tokens": max_new_tokens, "prompts_per_behaviour": prompts_per_behaviour, "keep_truncated": keep_truncated},
        "train_ids": train_ids,
        "test_ids": test_ids,
        "without_transform": without_transform(world, train_ids),
        "records": len(records),
        "prompts": n_prompts,
        "pairs_per_prompt": rate(len(records), n_prompts),
        "dropped": total_dropped(per_behaviour),
        "candidates": dict(sorted(candidate_counts.items())),
        "per_behaviour": {b: dict(sorted(c.items())) for b, c in per_behaviour.items()},
    }
    return DataBuild(records, stats)


def _best_vs_worst(world: World, train_ids: list[str], prompt: str, candidates: list[str]) -> tuple[str | None, tuple[str, str] | None]:
    """(reason to drop, None) or (None, (chosen, rejected)): the first highest- vs the first lowest-scored candidate."""
    scores = [simulated_reward(world, train_ids, prompt, c) for c in candidates]
    best, worst = max(scores), min(scores)
    if best == worst:
        return "tie", None
    chosen = candidates[scores.index(best)]
    if mentions_reward_models(chosen):
        return "reward_model_mention", None
    return None, (chosen, candidates[scores.index(worst)])
