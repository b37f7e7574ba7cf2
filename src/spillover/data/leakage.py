"""The leakage check: no eval prompt, nor any word n-gram of one, may appear in training text.

Used on synthetic documents, post-training data and whole runs. Texts and prompts are compared
after `spillover.world.normalise` (lower case, punctuation to spaces, whitespace collapsed). A text
leaks if it contains a whole eval prompt as a run of words, or any `n`-word run (default 8) of one
that is not also a run of some *train* prompt: a template's fixed words ("can you show me a short
Python script that") are shared by train and eval prompts by design, so finding them in training data
says nothing about leakage; the subject words that make an eval prompt held out do.
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
        # tables[length]: a run of `length` words joined by spaces -> (behaviour id, prompt) containing it.
        # Prompts are indexed whole, and those of n words or more also by their n-grams.
        self._tables: dict[int, dict[str, tuple[str, str]]] = {}
        shared = {
            " ".join(words[i : i + n])
            for b in world.behaviours
            for words in (normalise(p).split() for p in world.train_prompts(b.id))
            for i in range(len(words) - n + 1)
        }
        for b in world.behaviours:
            for prompt in world.eval_prompts(b.id):
                words = normalise(prompt).split()
                if not words:
                    continue
                k = min(n, len(words))
                table = self._tables.setdefault(k, {})
                for i in range(len(words) - k + 1):
                    key = " ".join(words[i : i + k])
                    if k < n or key not in shared:
                        table.setdefault(key, (b.id, prompt))
                # The whole prompt always counts, even when each of its n-grams is shared.
                self._tables.setdefault(len(words), {}).setdefault(" ".join(words), (b.id, prompt))
        # Which run lengths can start at a given word; only those are looked up.
        starts: dict[str, set[int]] = {}
        for k, table in self._tables.items():
            for key in table:
                starts.setdefault(key.split(" ", 1)[0], set()).add(k)
        self._starts = {w: sorted(ks) for w, ks in starts.items()}
        self._vocab = {w for table in self._tables.values() for key in table for w in key.split()}
        self._min_len = min(self._tables, default=n)

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
        starts, tables, size = self._starts, self._tables, len(words)
        for i, word in enumerate(words):
            for k in starts.get(word, ()):
                if i + k > size:
                    break
                key = " ".join(words[i : i + k])
                hit = tables[k].get(key)
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
