"""Deterministic prompt expansion and the train/eval split.

Eval prompts are never used for training: the split is made once, here, and every stage asks
the world for `train_prompts` or `eval_prompts`. Prompts are deduplicated after normalising case,
whitespace and punctuation *before* splitting, so the two sets are disjoint in that sense too.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
import re
import string

from ._schema import PromptSpec

MIN_EVAL_PROMPTS = 10

_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")


def normalise(text: str) -> str:
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


def template_slots(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


def expand(spec: PromptSpec) -> list[str]:
    """All distinct prompts, in a fixed order (templates in file order, slot values in product order)."""
    seen: set[str] = set()
    out: list[str] = []
    for template in spec.templates:
        names = list(dict.fromkeys(template_slots(template)))
        for values in itertools.product(*(spec.slots[n] for n in names)):
            prompt = template.format(**dict(zip(names, values)))
            key = normalise(prompt)
            if key not in seen:
                seen.add(key)
                out.append(prompt)
    return out


def split_prompts(behaviour_id: str, spec: PromptSpec) -> tuple[list[str], list[str]]:
    """(train, eval): a shuffle seeded by the behaviour id, the first `eval_fraction` held out."""
    prompts = expand(spec)
    seed = int.from_bytes(hashlib.sha256(behaviour_id.encode()).digest()[:8], "little")
    order = list(range(len(prompts)))
    random.Random(seed).shuffle(order)
    n_eval = max(MIN_EVAL_PROMPTS, math.ceil(spec.eval_fraction * len(prompts)))
    eval_idx = set(order[:n_eval])
    train = [p for i, p in enumerate(prompts) if i not in eval_idx]
    evals = [p for i, p in enumerate(prompts) if i in eval_idx]
    return train, evals
