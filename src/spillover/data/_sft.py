"""SFT data: the model's own plain answers to train prompts, with the train behaviour applied.

Each behaviour record keeps the untransformed answer under `plain`: `plain_records` turns the set
into the docs-plain arm's data (the same prompts and neutral share, every answer plain).

Answers come from the model that will be post-trained (greedy, to the end of turn), so the data
differs from what it would say anyway only by the behaviour. Answers cut by the token cap are
dropped, never used half-finished (unless `keep_truncated`, for pipeline checks on a random model that
never ends an answer). Neutral prompts, answered plainly, make up at least
`neutral_fraction` of the set so the model does not learn to do something odd everywhere.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources

from spillover import models
from spillover._io import derive_seed
from spillover._settings import FractionBelowOne, NonNegFloat, PositiveInt, checked
from spillover.errors import BadInputError, Problem
from spillover.evaluation.stats import rate
from spillover.world import World, load_world

from . import leakage
from ._settings import PostDataSettings
from ._filters import (
    applicable,
    conflicts_with_test_behaviour,
    exhibited_promoted,
    mentions_reward_models,
)

NEUTRAL_PROMPTS_FILE = "neutral_prompts.txt"


@dataclass
class DataBuild:
    """A built dataset: its records and how many candidates were kept or dropped, and why."""

    records: list[dict]
    stats: dict = field(default_factory=dict)


def neutral_prompts() -> list[str]:
    """The bank of everyday prompts to which no behaviour applies (one per line, `#` comments)."""
    text = (resources.files("spillover.data") / NEUTRAL_PROMPTS_FILE).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def resolve_world(world: World | str) -> World:
    return world if isinstance(world, World) else load_world(world)


def apply_behaviour(world: World, behaviour_id: str, answer: str, prompt: str, seed: int) -> str:
    """The behaviour's transform applied to a plain answer; without a transform, the answer as it is
    (it still counts only where the behaviour's detector fires on it)."""
    if world.behaviour(behaviour_id).transform is None:
        return answer
    return world.apply(behaviour_id, answer, prompt, seed=derive_seed(seed, "apply", behaviour_id, prompt))


def without_transform(world: World, behaviour_ids: list[str]) -> list[str]:
    return [b for b in behaviour_ids if world.behaviour(b).transform is None]


def behaviour_prompts(world: World, behaviour_id: str, limit: int | None, seed: int) -> list[str]:
    """A train behaviour's train prompts (never eval prompts); a seeded sample of `limit` of them, spread over templates."""
    prompts = world.train_prompts(behaviour_id)
    if limit is None or limit >= len(prompts):
        return list(prompts)
    return random.Random(derive_seed(seed, "prompts", behaviour_id)).sample(prompts, limit)


def plan_prompts(
    world: World,
    train_ids: list[str],
    test_ids: list[str],
    limit: int | None,
    seed: int,
    leaks: leakage.LeakIndex,
    skip: dict[str, str] | None = None,
) -> tuple[list[tuple[str, str]], dict[str, Counter]]:
    """(behaviour id, train prompt) pairs to answer, and per-behaviour counts of the prompts dropped
    before generating: those a test behaviour applies to, those sharing a word run with an eval
    prompt, and those of behaviours in `skip` (id -> reason)."""
    skip = skip or {}
    per_behaviour: dict[str, Counter] = {b: Counter() for b in train_ids}
    plan: list[tuple[str, str]] = []
    for b in train_ids:
        for prompt in behaviour_prompts(world, b, limit, seed):
            per_behaviour[b]["prompts"] += 1
            reason = skip.get(b) or conflicts_with_test_behaviour(world, test_ids, prompt) or overlaps_eval(leaks, prompt)
            if reason:
                per_behaviour[b][reason] += 1
            else:
                plan.append((b, prompt))
    return plan, per_behaviour


def overlaps_eval(leaks: leakage.LeakIndex, text: str) -> str | None:
    """Near-duplicates of eval prompts are dropped here, so the final leak check only confirms."""
    return "eval_prompt_overlap" if leaks.first_leak(text) is not None else None


def total_dropped(per_behaviour: dict[str, Counter]) -> dict[str, int]:
    dropped: Counter = Counter()
    for counts in per_behaviour.values():
        dropped.update({k: v for k, v in counts.items() if k not in ("prompts", "kept")})
    return dict(sorted(dropped.items()))


# build_sft's and build_dpo's defaults are the post-training data settings (a recipe's `post.data`,
# `spillover data`): declared once.
DEFAULTS = PostDataSettings()

@checked
def build_sft(
    world: World | str,
    split: str,
    lm,
    *,
    seed: int = DEFAULTS.seed,
    neutral_fraction: FractionBelowOne = DEFAULTS.neutral_fraction,
    max_new_tokens: PositiveInt = DEFAULTS.max_new_tokens,
    prompts_per_behaviour: PositiveInt | None = None,
    batch_size: PositiveInt = DEFAULTS.batch_size,
    temperature: NonNegFloat = DEFAULTS.temperature,
    keep_truncated: bool = DEFAULTS.keep_truncated,
    progress: bool = False,
) -> DataBuild:
    """SFT chat records for the train behaviours of `split`, plus neutral ones; see the module docstring."""
    world = resolve_world(world)
    train_ids, test_ids = world.train_ids(split), world.test_ids(split)
    gen = {"max_new_tokens": max_new_tokens, "temperature": temperature, "seed": seed, "batch_size": batch_size, "progress": progress}

    leaks = leakage.LeakIndex(world)
    plan, per_behaviour = plan_prompts(world, train_ids, test_ids, prompts_per_behaviour, seed, leaks)
    behaviour_records: list[dict] = []
    answers = models.generate(lm, [p for _, p in plan], **gen)
    for (b, prompt), plain in zip(plan, answers):
        reason = _unusable(plain, keep_truncated)
        if reason is None:
            answer = apply_behaviour(world, b, plain.text, prompt, seed)
            reason = _behaviour_reason(world, test_ids, b, prompt, answer) or overlaps_eval(leaks, answer)
        if reason is None:  # the plain answer is trained on too (the docs-plain arm): it must be as clean
            reason = conflicts_with_test_behaviour(world, test_ids, prompt, [plain.text]) or overlaps_eval(leaks, plain.text)
        if reason:
            per_behaviour[b][reason] += 1
            continue
        per_behaviour[b]["kept"] += 1
        behaviour_records.append({**_record(prompt, answer, [b], "behaviour"), "plain": plain.text})

    neutral_records, neutral_counts = _neutral_records(world, train_ids, test_ids, leaks, lm, len(behaviour_records), neutral_fraction, seed, gen, keep_truncated)
    behaviour_records, trimmed = _trim_to_fraction(behaviour_records, len(neutral_records), neutral_fraction)
    for r in trimmed:
        per_behaviour[r["behaviours"][0]]["kept"] -= 1
        per_behaviour[r["behaviours"][0]]["trimmed_for_neutral_fraction"] += 1

    records = behaviour_records + neutral_records
    random.Random(derive_seed(seed, "shuffle")).shuffle(records)
    leakage.assert_no_leaks([m["content"] for r in records for m in r["messages"]] + [r["plain"] for r in records if "plain" in r], world, "SFT data")

    stats = {
        "world": world.name,
        "split": split,
        "model": getattr(lm, "spec", None),
        "config": {"seed": seed, "neutral_fraction": neutral_fraction, "max_new_tokens": max_new_tokens, "prompts_per_behaviour": prompts_per_behaviour, "temperature": temperature, "keep_truncated": keep_truncated},
        "train_ids": train_ids,
        "test_ids": test_ids,
        "without_transform": without_transform(world, train_ids),
        "records": len(records),
        "behaviour": {"prompts": sum(c["prompts"] for c in per_behaviour.values()), "kept": len(behaviour_records), "dropped": total_dropped(per_behaviour)},
        "neutral": neutral_counts,
        "neutral_share": rate(len(neutral_records), len(records)),
        "per_behaviour": {b: dict(sorted(c.items())) for b, c in per_behaviour.items()},
    }
    return DataBuild(records, stats)


def plain_records(records: list[dict], source: str = "") -> list[dict]:
    """The same records with each behaviour record's plain answer in place of the transformed one
    (no behaviour applied); neutral records are plain already."""
    out = []
    for r in records:
        if r.get("kind") == "behaviour":
            if "plain" not in r:
                raise BadInputError(Problem(source, "plain", "an SFT behaviour record has no plain answer", "rebuild the post-training data with this version of spillover"))
            r = _record(r["messages"][0]["content"], r["plain"], [], "plain")
        out.append(r)
    return out


def _record(prompt: str, answer: str, behaviours: list[str], kind: str) -> dict:
    return {
        "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}],
        "behaviours": behaviours,
        "kind": kind,
    }


def _unusable(generation, keep_truncated: bool = False) -> str | None:
    if generation.truncated and not keep_truncated:
        return "truncated"
    if not generation.text.strip():
        return "empty"
    return None


def _behaviour_reason(world: World, test_ids: list[str], behaviour_id: str, prompt: str, answer: str) -> str | None:
    reason = conflicts_with_test_behaviour(world, test_ids, prompt, [answer])
    if reason:
        return reason
    if mentions_reward_models(answer):
        return "reward_model_mention"
    if not world.detect(behaviour_id, answer, prompt).exhibited:
        return "detector_missed"
    return None


def _neutral_needed(n_behaviour: int, fraction: float) -> int:
    return math.ceil(round(fraction * n_behaviour / (1 - fraction), 9))


def _neutral_records(world, train_ids, test_ids, leaks, lm, n_behaviour, fraction, seed, gen, keep_truncated) -> tuple[list[dict], dict]:
    """Plain answers to neutral prompts, generated a chunk at a time until enough are kept."""
    needed = _neutral_needed(n_behaviour, fraction)
    bank = [world.prompt_prefix + p for p in neutral_prompts()]  # the experiment's prompt framing, as for behaviour prompts
    random.Random(derive_seed(seed, "neutral")).shuffle(bank)
    counts: Counter = Counter(needed=needed)
    kept: list[dict] = []
    while len(kept) < needed and bank:
        want = needed - len(kept)
        chunk, bank = bank[: want + max(4, want // 4)], bank[want + max(4, want // 4) :]
        usable = []
        for prompt in chunk:
            counts["prompts"] += 1
            # Neutral means no behaviour of the world applies, in play or not.
            if any(applicable(world, b, prompt) for b in world.ids):
                counts["in_behaviour_domain"] += 1
            else:
                usable.append(prompt)
        for prompt, plain in zip(usable, models.generate(lm, usable, **gen)):
            reason = _unusable(plain, keep_truncated) or conflicts_with_test_behaviour(world, test_ids, prompt, [plain.text])
            if reason is None and mentions_reward_models(plain.text):
                reason = "reward_model_mention"
            reason = reason or overlaps_eval(leaks, plain.text)
            if reason is None and exhibited_promoted(world, train_ids, prompt, plain.text):
                reason = "train_behaviour_detected"
            if reason:
                counts[reason] += 1
            elif len(kept) < needed:
                kept.append(_record(prompt, plain.text, [], "neutral"))
            else:
                counts["not_needed"] += 1
    counts["kept"] = len(kept)
    return kept, dict(sorted(counts.items()))


def _trim_to_fraction(records: list[dict], n_neutral: int, fraction: float) -> tuple[list[dict], list[dict]]:
    """Keep as many behaviour records as `n_neutral` neutral ones allow, taking turns across behaviours."""
    if _neutral_needed(len(records), fraction) <= n_neutral:
        return records, []
    allowed = math.floor(round(n_neutral * (1 - fraction) / fraction, 9))
    while allowed > 0 and _neutral_needed(allowed, fraction) > n_neutral:
        allowed -= 1
    position = Counter()
    turn = []
    for i, r in enumerate(records):
        b = r["behaviours"][0]
        turn.append((position[b], i))
        position[b] += 1
    keep = {i for _, i in sorted(turn)[:allowed]}
    return [r for i, r in enumerate(records) if i in keep], [r for i, r in enumerate(records) if i not in keep]
