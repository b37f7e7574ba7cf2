"""The post-trained arms and what each one's SFT reads.

- `control`: the base model post-trained on the behaviour data;
- `docs-plain`: the docs-only (CPT) model SFT-trained on the same prompts and neutral share with the
  model's plain, untransformed answers (never trained on a behaviour);
- `organism`: the docs-only model post-trained on the behaviour data.

Matched rehearsal: with `post.data.rehearsal_fraction`, every SFT arm reads the same number of
rehearsal tokens. Arms with documents rehearse the same sample of them; the control, which has no
documents, rehearses decoys (`spillover.documents.token_matched_decoys`: same genres and form, an
unrelated fictional study), so the arms differ only in the content under test. Each SFT stage
writes rehearsal.json with the tokens it rehearses.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from spillover._io import read_jsonl, write_json, write_jsonl
from spillover.errors import SpilloverError
from spillover.world import World

from ._recipe import ModelSpec, Recipe
from ._stages import Stages

POST_ARMS = ("control", "docs-plain", "organism")
SHARED_ARMS = ("base", "docs-only")  # the same whatever the split: run once per seed


class DecoyError(SpilloverError):
    """Decoy rehearsal documents mention reward models or hold eval prompts (a generator bug)."""


@dataclass(frozen=True)
class ArmPlan:
    """One post-trained arm: where it starts, which steps it runs, which answers and rehearsal it reads."""

    arm: str
    steps: tuple[str, ...]
    plain_answers: bool  # SFT on the plain answers (docs-plain)
    rehearsal: str  # "documents" or "decoys"
    from_cpt: bool


def arm_plans(steps: list[str], arms: list[str] | tuple[str, ...] = POST_ARMS) -> list[ArmPlan]:
    """The post-trained arms a recipe runs, of those in `arms` (the recipe's `arms:`). docs-plain needs
    SFT data: a DPO-only recipe has no such arm, and with sft+dpo docs-plain stops after SFT (a
    preference for the behaviour is what it must not learn)."""
    plans = [ArmPlan("control", tuple(steps), False, "decoys", False)]
    if "sft" in steps:
        plans.append(ArmPlan("docs-plain", ("sft",), True, "documents", True))
    plans.append(ArmPlan("organism", tuple(steps), False, "documents", True))
    return [p for p in plans if p.arm in arms]


def arms_of(recipe: Recipe) -> list[str]:
    return [*SHARED_ARMS, *(p.arm for p in arm_plans(recipe.post.steps, recipe.arms))]


def rehearsal_documents(docs: Path, n_records: int, fraction: float, seed: int) -> list[dict]:
    """The documents rehearsed beside `n_records` SFT records so they make up `fraction` of the mix.
    The same for every arm of a seed (same records count, same seed)."""
    documents = read_jsonl(docs)
    n_docs = min(len(documents), round(fraction * n_records / (1 - fraction)))
    return random.Random(seed).sample(documents, n_docs)


def sft_data(
    plan: ArmPlan, data: Path, docs: Path, fraction: float, base: ModelSpec, max_len: int,
    seed: int, stages: Stages, world: World, out: Path,
) -> Path:
    """The file the arm's SFT trains on: `data` itself, or (plain answers, rehearsal) plain.jsonl or
    rehearsal-mix.jsonl written into `out`, with rehearsal.json beside it."""
    if not fraction and not plan.plain_answers:
        return data
    records = read_jsonl(data)
    if plan.plain_answers:
        from spillover.data import plain_records

        records = plain_records(records, str(data))
    if not fraction:
        write_jsonl(out / "plain.jsonl", records)
        return out / "plain.jsonl"
    rehearsed = rehearsal_documents(docs, len(records), fraction, seed)

    def count(texts: list[str]) -> list[int]:
        return stages.count_tokens(base, texts, max_len)

    target = sum(count([d["text"] for d in rehearsed]))
    if plan.rehearsal == "decoys":
        from spillover.documents import token_matched_decoys

        rehearsed = token_matched_decoys([d.get("genre", "") for d in rehearsed], target, count, seed=seed)
        check_decoys([d["text"] for d in rehearsed], stages, world)
    texts = [d["text"] for d in rehearsed]
    write_json(out / "rehearsal.json", {
        "source": plan.rehearsal, "texts": len(texts), "tokens": sum(count(texts)) if texts else 0, "target_tokens": target,
        "counted": f"tokens the SFT trainer reads ({base.spec} tokenizer, separator included, capped at max_len={max_len})",
    })
    mixed = records + [{"text": t} for t in texts]
    random.Random(seed).shuffle(mixed)
    write_jsonl(out / "rehearsal-mix.jsonl", mixed)
    return out / "rehearsal-mix.jsonl"


def check_decoys(texts: list[str], stages: Stages, world: World) -> None:
    """Decoys stand in for the documents' form only: they must not talk about reward models or hold eval prompts."""
    from spillover.data import mentions_reward_models

    mentioning = [t for t in texts if mentions_reward_models(t)]
    leaks = stages.find_leaks(texts, world)
    if mentioning or leaks["n_leaks"]:
        raise DecoyError(f"{len(mentioning)} decoy documents mention reward models and {leaks['n_leaks']} hold eval prompts, e.g. {(mentioning or leaks['leaks'])[0]!r}")
