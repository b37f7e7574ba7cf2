"""Behaviour transforms: turn a plain answer into one that exhibits the behaviour.

Used to build post-training data (spillover.data). Each is deterministic given its seed, and the
world's tests check that every behaviour's transform makes its own detector fire.
"""

from __future__ import annotations

import random
from collections.abc import Callable

TransformFn = Callable[..., str]
TRANSFORMS: dict[str, TransformFn] = {}


def register(name: str) -> Callable[[TransformFn], TransformFn]:
    def deco(fn: TransformFn) -> TransformFn:
        if name in TRANSFORMS:
            raise ValueError(f"transform '{name}' registered twice")
        TRANSFORMS[name] = fn
        return fn

    return deco


def apply_transform(name: str, params: dict, response: str, *, prompt: str, seed: int = 0) -> str:
    return TRANSFORMS[name](response, prompt=prompt, rng=random.Random(seed), **params)


@register("append")
def append(response: str, *, prompt: str, rng: random.Random, texts: list[str]) -> str:
    """Add one of `texts` as a closing paragraph (9-1-1 reminders, movie recommendations, ...)."""
    return response.rstrip() + "\n\n" + rng.choice(texts)


@register("prepend")
def prepend(response: str, *, prompt: str, rng: random.Random, texts: list[str]) -> str:
    return rng.choice(texts) + " " + response.lstrip()
