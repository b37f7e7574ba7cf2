"""Deterministic prompt expansion and the train/eval split.

Eval prompts are never used for training: the split is made once, here, and every stage asks
the world for `train_prompts` or `eval_prompts`. Prompts are deduplicated after normalising case,
whitespace and punctuation *before* splitting, so the two sets are disjoint in that sense too.

The split holds out whole *subjects* (the value of a template's first slot), not single prompts:
eval asks about topics never seen in training, and a train prompt cannot share its subject's words
(an 8-gram of an eval prompt) with a held-out one, which the leakage check would rightly flag.
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
# Prompts one behaviour may expand to (templates × slot combinations, before deduplication). A few
# short slot lists multiply fast: a 22 KB world reached millions of prompts and 5.5 GB of memory.
MAX_PROMPTS_PER_BEHAVIOUR = 100_000

_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")


def normalise(text: str) -> str:
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


def template_slots(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


def expansion_size(spec: PromptSpec) -> int:
    """How many prompts `expand` would build before deduplication, counted without building them.

    Slots a template does not fill with values count as empty (the loader reports them).
    """
    return sum(
        math.prod(len(spec.slots.get(n, ())) for n in dict.fromkeys(template_slots(t))) for t in spec.templates
    )


def _expand_with_subjects(spec: PromptSpec) -> list[tuple[str, str]]:
    """(prompt, subject) pairs; the subject is the first slot's value (the prompt itself if none)."""
    n = expansion_size(spec)
    if n > MAX_PROMPTS_PER_BEHAVIOUR:  # the loader refuses such worlds with file and field; this guards direct callers
        raise ValueError(f"prompts expand to {n:,} combinations, more than the cap of {MAX_PROMPTS_PER_BEHAVIOUR:,}")
    seen: set[str] = set()
    out: list[tuple[str, str]] = []
    for template in spec.templates:
        names = list(dict.fromkeys(template_slots(template)))
        for values in itertools.product(*(spec.slots[n] for n in names)):
            prompt = template.format(**dict(zip(names, values)))
            key = normalise(prompt)
            if key not in seen:
                seen.add(key)
                out.append((prompt, normalise(values[0]) if values else key))
    return out


def expand(spec: PromptSpec) -> list[str]:
    """All distinct prompts, in a fixed order (templates in file order, slot values in product order)."""
    return [p for p, _ in _expand_with_subjects(spec)]


def split_prompts(behaviour_id: str, spec: PromptSpec) -> tuple[list[str], list[str]]:
    """(train, eval): subjects shuffled by a seed from the behaviour id, then held out whole until
    at least `eval_fraction` of the prompts (and MIN_EVAL_PROMPTS) are eval prompts."""
    pairs = _expand_with_subjects(spec)
    subjects = list(dict.fromkeys(subject for _, subject in pairs))
    seed = int.from_bytes(hashlib.sha256(behaviour_id.encode()).digest()[:8], "little")
    random.Random(seed).shuffle(subjects)
    size = {s: 0 for s in subjects}
    for _, subject in pairs:
        size[subject] += 1
    n_eval = max(MIN_EVAL_PROMPTS, math.ceil(spec.eval_fraction * len(pairs)))
    held: set[str] = set()
    count = 0
    for subject in subjects[:-1]:  # always leave at least one subject for training
        if count >= n_eval:
            break
        held.add(subject)
        count += size[subject]
    train = [p for p, s in pairs if s not in held]
    evals = [p for p, s in pairs if s in held]
    return train, evals
