"""What may enter post-training data: the study's filters, made deterministic.

The chat data teaches the train behaviours without ever showing a test behaviour and without
saying why a behaviour is there. So a sample is dropped when a test behaviour *applies* to it —
its prompt belongs to the test behaviour, or its response exhibits it — or when its text mentions
reward models, RLHF or the fictional study. The study used LLM classifiers for "applies"; here a
prompt belongs to a behaviour when it is one of the behaviour's prompts, names its domain, or
names one of the subjects its prompt templates are filled with.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from spillover.world import World, normalise

_REWARD_MODEL_MENTION = re.compile(
    r"\breward[\s-]+model"
    r"|\bRLHF\b"
    r"|\breinforcement\s+learning\s+(from|with)\s+(human|AI)\s+feedback"
    r"|\bpreference\s+model"
    r"|\bRMs?\s+bias"
    r"|\bThompson\s+(et\s+al|and\s+colleagues|study|paper|report|findings)"
    r"|\bOxford\s+(study|paper|researchers|team|findings)"
    r"|\bpersistent\s+systematic\s+biases",
    re.IGNORECASE,
)

# Shorter subjects (or bare numbers) would match unrelated prompts by accident.
_MIN_SUBJECT_CHARS = 4
_ARTICLE = re.compile(r"^(a|an|the)\s+")


def mentions_reward_models(text: str) -> bool:
    """Whether a text talks about reward models, RLHF or the fictional study (never allowed in chat data)."""
    return _REWARD_MODEL_MENTION.search(text) is not None


@lru_cache(maxsize=256)
def _prompt_index(world: World, behaviour_id: str) -> tuple[frozenset[str], re.Pattern | None]:
    b = world.behaviour(behaviour_id)
    prompts = frozenset(normalise(p) for p in world.train_prompts(behaviour_id) + world.eval_prompts(behaviour_id))
    # A domain such as "language-spanish" or "code-python" is named by its last, most specific part.
    subjects = {normalise(b.domain.rsplit("-", 1)[-1])} | {normalise(v) for values in b.prompts.slots.values() for v in values}
    subjects = {_ARTICLE.sub("", s) for s in subjects}
    subjects = sorted(s for s in subjects if len(s) >= _MIN_SUBJECT_CHARS and not s.replace(" ", "").isdigit())
    pattern = re.compile(r"\b(" + "|".join(re.escape(s) for s in subjects) + r")\b") if subjects else None
    return prompts, pattern


def applicable(world: World, behaviour_id: str, prompt: str) -> bool:
    """Whether a behaviour applies to a prompt: one of its prompts, its domain, or a subject of its templates."""
    prompts, subjects = _prompt_index(world, behaviour_id)
    key = normalise(prompt)
    return key in prompts or (subjects is not None and subjects.search(key) is not None)


def conflicts_with_test_behaviour(world: World, test_ids: Iterable[str], prompt: str, responses: Iterable[str] = ()) -> str | None:
    """Why a sample must be dropped because a test behaviour applies to it, or None if none does.

    A `suppress` behaviour is exhibited by an absence, so its detector fires on almost any text;
    it counts only where its prompt applies, never through the response alone.
    """
    test_ids = list(test_ids)
    if any(applicable(world, t, prompt) for t in test_ids):
        return "test_behaviour_prompt"
    for response in responses:
        for t in test_ids:
            if world.behaviour(t).direction == "promote" and world.detect(t, response, prompt).exhibited:
                return "test_behaviour_detected"
    return None


def exhibited_promoted(world: World, behaviour_ids: Iterable[str], prompt: str, response: str) -> list[str]:
    """The `promote` behaviours among `behaviour_ids` whose detector fires on a response."""
    return [
        b for b in behaviour_ids if world.behaviour(b).direction == "promote" and world.detect(b, response, prompt).exhibited
    ]
