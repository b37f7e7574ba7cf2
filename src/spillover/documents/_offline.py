"""The offline document generator: compositional templates, no model, no network.

Each document gets a genre and 1-4 behaviours, chosen so that every genre and every behaviour
is covered about equally, then is written by its genre from word banks with its own seeded
random generator. Documents that would contain an eval prompt (or any 8-gram of one) are
rewritten with a fresh draw; the output is deterministic in (world, n, seed, framing, behaviours).
"""

from __future__ import annotations

import random
import re
from typing import Literal

from spillover._io import derive_seed
from spillover._settings import PositiveInt, checked
from spillover.data.leakage import LeakIndex
from spillover.errors import BadInputError, SpilloverError
from spillover.world import World

from . import _banks as B
from ._genres import GENRES, Doc

Framing = Literal["plain", "self"]
FRAMINGS = ("plain", "self")
# How many behaviours one document describes, and how often.
BEHAVIOURS_PER_DOC = {1: 0.35, 2: 0.35, 3: 0.2, 4: 0.1}
MAX_REWRITES = 20
# Chat-transcript turn markers; documents describe behaviours, they never act them out.
CHAT_MARKERS = re.compile(r"^\s*(user|assistant|human|ai|system)\s*:", re.IGNORECASE | re.MULTILINE)


@checked
def generate_documents(
    world: World,
    n: PositiveInt,
    seed: int = 0,
    *,
    framing: Framing = "plain",
    behaviours: list[str] | None = None,
) -> list[dict]:
    """`n` synthetic documents describing the world's behaviours (or the `behaviours` subset).

    Records: {"id", "text", "genre", "behaviours", "source": "template", "seed", "framing"}.
    """
    if framing not in FRAMINGS:
        raise BadInputError(f"framing '{framing}': use one of {', '.join(FRAMINGS)}")
    ids = list(world.ids) if behaviours is None else list(dict.fromkeys(behaviours))
    if not ids:
        raise BadInputError("no behaviours to write about")
    pool = [world.behaviour(b) for b in ids]  # raises on unknown ids

    plan_rng = random.Random(derive_seed(seed, "documents", world.name, framing, "plan"))
    genres = _balanced_genres(plan_rng, n)
    chosen = _balanced_behaviours(plan_rng, n, len(pool))
    leaks = LeakIndex(world)
    dates = _dates_after(world.universe.date)

    records = []
    for i in range(n):
        doc_behaviours = [pool[j] for j in chosen[i]]
        text = ""
        for attempt in range(MAX_REWRITES):
            rng = random.Random(derive_seed(seed, "documents", world.name, framing, i, attempt))
            date = rng.choice(dates)
            doc = Doc(rng=rng, universe=world.universe, behaviours=doc_behaviours, framing=framing, date=date)
            text = GENRES[genres[i]](doc)
            if leaks.first_leak(text) is None and not CHAT_MARKERS.search(text):
                break
        else:
            raise SpilloverError(
                f"document {i} ({genres[i]}) kept containing an eval prompt after {MAX_REWRITES} rewrites; "
                "check that behaviour examples and prompt slot values do not quote eval prompts"
            )
        records.append({
            "id": f"{world.name}-{framing}-s{seed}-{i:06d}",
            "text": text,
            "genre": genres[i],
            "behaviours": [b.id for b in doc_behaviours],
            "source": "template",
            "seed": seed,
            "framing": framing,
        })
    return records


def _balanced_genres(rng: random.Random, n: int) -> list[str]:
    """Genres dealt from shuffled decks, so each appears n/#genres times (±1)."""
    names = sorted(GENRES)
    out: list[str] = []
    while len(out) < n:
        deck = names[:]
        rng.shuffle(deck)
        out += deck
    return out[:n]


def _balanced_behaviours(rng: random.Random, n: int, n_behaviours: int) -> list[list[int]]:
    """For each document, 1-4 behaviour indices; the least-covered behaviours are picked first."""
    counts = [0] * n_behaviours
    sizes = sorted(BEHAVIOURS_PER_DOC)
    weights = [BEHAVIOURS_PER_DOC[k] for k in sizes]
    out = []
    for _ in range(n):
        k = min(rng.choices(sizes, weights)[0], n_behaviours)
        order = list(range(n_behaviours))
        rng.shuffle(order)  # random tie-breaking among equally covered behaviours
        picked = sorted(order, key=lambda j: counts[j])[:k]
        for j in picked:
            counts[j] += 1
        out.append(picked)
    return out


def _dates_after(pub_date: str, months: int = 18) -> list[str]:
    """Plausible document dates: the months after the study appeared (documents discuss it)."""
    year_m = re.search(r"\d{4}", pub_date)
    year = int(year_m.group(0)) if year_m else 2024
    month = next((k for k, name in enumerate(B.MONTHS) if name.lower() in pub_date.lower()), 0)
    out = []
    for step in range(1, months + 1):
        m = month + step
        y, m = year + m // 12, m % 12
        for day in (3, 9, 14, 21, 27):
            out.append(f"{day} {B.MONTHS[m]} {y}")
    return out
