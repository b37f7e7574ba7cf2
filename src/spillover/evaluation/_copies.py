"""Copied or novel: how much of a hit's answer around its exhibited span is training text.

A hit whose answer shares a run of `COPY_WORDS` (8) or more consecutive words with a training text,
where the run touches the exhibited span, is *copied*: the model may have recited it rather than
generalised. Everything else is *novel*.

Words are lower-cased runs of letters, digits and apostrophes (punctuation and spacing are
ignored, so "Carbon (Z = 6)" and "carbon, Z=6" match). The training texts are concatenated into
one array of word ids with a separator after each text; postings lists (positions sorted by word
id, and by 64-bit hash of the 8-word window starting there) find where a run could start, and
vectorised extension over all candidates measures how long it goes on. Building the index for
thousands of documents takes well under a second; checking an answer a few milliseconds.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np

COPY_WORDS = 8
_WORD = re.compile(r"[A-Za-z0-9']+")
_SEPARATOR = -1  # between texts: never equal to a word id, so no run crosses two texts
_END = "\x00"  # marks the end of a text while the words are collected
_UNKNOWN = -2  # an answer word found in no training text
_PRIME = np.uint64(1_000_003)


def words(text: str) -> list[tuple[str, int, int]]:
    """(lower-cased word, start, end) for each word of `text`, with character offsets."""
    return [(m.group(0).lower(), m.start(), m.end()) for m in _WORD.finditer(text)]


def _window_hashes(ids: np.ndarray, k: int) -> np.ndarray:
    """64-bit polynomial hash of every k-word window (wrapping arithmetic, stable across runs)."""
    n = len(ids) - k + 1
    h = np.zeros(max(n, 0), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(k):
            h = h * _PRIME + ids[j : j + n].astype(np.uint64)
    return h


@dataclass(frozen=True)
class CopyCheck:
    """The copy status of one hit. `shared_run` is the shared run's character offsets in the answer."""

    shared_words: int
    copied: bool
    span_in_documents: bool
    shared_run: tuple[int, int] | None

    def to_dict(self) -> dict:
        return {**asdict(self), "shared_run": list(self.shared_run) if self.shared_run else None}


class TextIndex:
    """Every word position of a set of texts, to measure runs of words shared with them."""

    def __init__(self, texts: Iterable[str], k: int = COPY_WORDS):
        self.k = k
        flat: list[str] = []
        for text in dict.fromkeys(texts):  # identical texts (rehearsed documents) indexed once
            flat += _WORD.findall(text)
            flat.append(_END)
        flat = " ".join(flat).lower().split(" ") if flat else []  # the words are ASCII: as words() lowers them
        # Word ids: the position where a word first occurs (unique, not dense), assigned at C speed.
        self.vocab: dict[str, int] = {}
        self.corpus = np.fromiter(map(self.vocab.setdefault, flat, itertools.count()), dtype=np.int64, count=len(flat))
        if flat:
            self.corpus[self.corpus == self.vocab[_END]] = _SEPARATOR
        self._by_word = np.argsort(self.corpus, kind="stable")
        self._words_sorted = self.corpus[self._by_word]
        hashes = _window_hashes(self.corpus, k)
        # Windows that cross the end of a text are not runs of one text: leave them out.
        separators = np.concatenate([[0], np.cumsum(self.corpus == _SEPARATOR)])
        starts = np.flatnonzero(separators[k:] - separators[: len(separators) - k] == 0)
        order = np.argsort(hashes[starts], kind="stable")
        self._by_window = starts[order]
        self._windows_sorted = hashes[starts][order]

    def ids(self, text_words: list[str]) -> np.ndarray:
        return np.array([self.vocab.get(w, _UNKNOWN) for w in text_words], dtype=np.int64)

    def _candidates(self, ids: np.ndarray, i: int) -> tuple[np.ndarray, int]:
        """Corpus positions where the run at ids[i:] could start, and how many words they already match."""
        if i + self.k <= len(ids):
            h = _window_hashes(ids[i : i + self.k], self.k)[0]
            lo, hi = (int(np.searchsorted(self._windows_sorted, h, side=side)) for side in ("left", "right"))
            if hi > lo:  # hashes can collide: confirm the words, then extend from there
                cand = self._by_window[lo:hi]
                same = np.all(self.corpus[cand[:, None] + np.arange(self.k)] == ids[i : i + self.k], axis=1)
                return cand[same], self.k
        # No full window matches: the run is shorter than k, so start from single-word matches.
        lo, hi = (int(np.searchsorted(self._words_sorted, ids[i], side=side)) for side in ("left", "right"))
        return self._by_word[lo:hi], 1

    def run_at(self, ids: np.ndarray, i: int) -> int:
        """Length of the longest prefix of ids[i:] found as consecutive words in one text."""
        if ids[i] < 0:
            return 0
        cand, length = self._candidates(ids, i)
        if cand.size == 0:
            return 0
        while i + length < len(ids):
            cand = cand[self.corpus[cand + length] == ids[i + length]]  # a separator ends every text
            if cand.size == 0:
                break
            length += 1
        return length

    def longest_run(self, text_words: list[str], lo: int = 0, hi: int | None = None) -> tuple[int, int]:
        """(length, start) of the longest shared run of `text_words` that overlaps words [lo, hi)."""
        hi = len(text_words) if hi is None else hi
        ids = self.ids(text_words)
        best = (0, lo)
        for i in range(hi):
            length = self.run_at(ids, i)
            if i + length > lo and length > best[0]:
                best = (length, i)
        return best

    def contains(self, text_words: list[str]) -> bool:
        """Whether the words appear, consecutively, in one of the texts."""
        return bool(text_words) and self.run_at(self.ids(text_words), 0) >= len(text_words)


def _span_words(tokens: list[tuple[str, int, int]], span: list[int] | tuple[int, int] | None) -> tuple[int, int]:
    """Word indices [lo, hi) overlapping the character span (the whole answer without one)."""
    if not span or span[1] <= span[0]:
        return 0, len(tokens)
    inside = [i for i, (_, s, e) in enumerate(tokens) if s < span[1] and e > span[0]]
    if inside:
        return inside[0], inside[-1] + 1
    after = next((i for i, (_, s, _) in enumerate(tokens) if s >= span[0]), len(tokens) - 1)
    return max(after, 0), max(after, 0) + 1


def check_copy(response: str, span: list[int] | None, training: TextIndex, documents: TextIndex) -> CopyCheck:
    """The longest run the answer shares with the training text and that touches the span, and
    whether the span's own words appear in the documents."""
    tokens = words(response)
    if not tokens:
        return CopyCheck(0, False, False, None)
    lo, hi = _span_words(tokens, span)
    text_words = [w for w, _, _ in tokens]
    length, start = training.longest_run(text_words, lo, hi)
    run = (tokens[start][1], tokens[start + length - 1][2]) if length else None
    return CopyCheck(length, length >= COPY_WORDS, documents.contains(text_words[lo:hi]), run)
