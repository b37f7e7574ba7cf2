"""The leakage check: no eval prompt, nor any word n-gram of one, may appear in training text.

Used on synthetic documents, post-training data and whole runs. Texts and prompts are compared
after `spillover.world.normalise` (lower case, punctuation to spaces, whitespace collapsed). A text
leaks if it contains a whole eval prompt as a run of words, or any `n`-word run (default 8) of one.
Lookups are set membership on word n-grams, so checking is linear in the size of the texts.
"""

from __future__ import annotations

from collections.abc import Iterable

from spillover.errors import SpilloverError
from spillover.world import World, normalise

MAX_REPORTED = 20


class LeakIndex:
    """Every eval prompt of a world, indexed by its word n-grams (and whole, if shorter than n)."""

    def __init__(self, world: World, n: int = 8):
        if n < 1:
            raise ValueError("n must be at least 1")
        self.n = n
        # key: a run of words joined by spaces -> (behaviour id, prompt) that contains it
        self._grams: dict[str, tuple[str, str]] = {}
        self._short: dict[int, dict[str, tuple[str, str]]] = {}
        for b in world.behaviours:
            for prompt in world.eval_prompts(b.id):
                words = normalise(prompt).split()
                if not words:
                    continue
                if len(words) < n:
                    self._short.setdefault(len(words), {}).setdefault(" ".join(words), (b.id, prompt))
                    continue
                for i in range(len(words) - n + 1):
                    self._grams.setdefault(" ".join(words[i : i + n]), (b.id, prompt))
        self._short = dict(sorted(self._short.items()))
        self._vocab = {w for key in [*self._grams, *(k for t in self._short.values() for k in t)] for w in key.split()}
        self._min_len = min([n, *self._short])

    def first_leak(self, text: str) -> dict | None:
        """{"behaviour", "prompt", "ngram"} for the first eval-prompt run found in `text`, else None."""
        # Only runs of words that all occur in some eval prompt can match; checking those runs
        # alone skips most of a document.
        run: list[str] = []
        for word in normalise(text).split():
            if word in self._vocab:
                run.append(word)
                continue
            if len(run) >= self._min_len:
                hit = self._check_run(run)
                if hit is not None:
                    return hit
            run = []
        if len(run) >= self._min_len:
            return self._check_run(run)
        return None

    def _check_run(self, words: list[str]) -> dict | None:
        n = self.n
        for i in range(len(words) - n + 1):
            key = " ".join(words[i : i + n])
            hit = self._grams.get(key)
            if hit is not None:
                return {"behaviour": hit[0], "prompt": hit[1], "ngram": key}
        for length, table in self._short.items():
            for i in range(len(words) - length + 1):
                key = " ".join(words[i : i + length])
                hit = table.get(key)
                if hit is not None:
                    return {"behaviour": hit[0], "prompt": hit[1], "ngram": key}
        return None


def find_leaks(texts: Iterable[str], world: World, *, n: int = 8) -> dict:
    """{"n_texts", "n_leaks", "leaks": [{"text_index", "behaviour", "prompt", "ngram"}] (first 20)}.

    `n_leaks` counts leaking texts (one per text, its first hit).
    """
    index = LeakIndex(world, n)
    n_texts = 0
    n_leaks = 0
    leaks: list[dict] = []
    for i, text in enumerate(texts):
        n_texts += 1
        hit = index.first_leak(text)
        if hit is not None:
            n_leaks += 1
            if len(leaks) < MAX_REPORTED:
                leaks.append({"text_index": i, **hit})
    return {"n_texts": n_texts, "n_leaks": n_leaks, "leaks": leaks}


def assert_no_leaks(texts: Iterable[str], world: World, what: str, *, n: int = 8) -> None:
    """Raise SpilloverError naming `what` and its first leak if any text contains an eval prompt."""
    report = find_leaks(texts, world, n=n)
    if report["n_leaks"]:
        first = report["leaks"][0]
        raise SpilloverError(
            f"{what}: {report['n_leaks']} of {report['n_texts']} texts contain held-out eval prompts "
            f"(first: text {first['text_index']} contains \"{first['ngram']}\" from behaviour "
            f"'{first['behaviour']}' eval prompt \"{first['prompt']}\"); eval prompts must never enter training data"
        )
