"""Corpus statistics: coverage, length, diversity (near-duplicates, distinct 5-grams) and leakage.

Near-duplicates are pairs of documents whose sets of 5-word shingles have Jaccard similarity
above 0.8. Candidates come from MinHash locality-sensitive hashing (120 hashes in 20 bands of 6,
which catches a pair at Jaccard 0.8 with probability 0.998), and every candidate is then checked
exactly, so a reported pair is always a true near-duplicate and exact copies are always found.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

from spillover.world import World

SHINGLE = 5
NEAR_DUP_JACCARD = 0.8
_BANDS, _ROWS = 20, 6
_WORD = re.compile(r"[a-z0-9']+")
_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


def document_stats(records: Sequence[dict], world: World | None = None) -> dict:
    """Counts by genre/behaviour/source, token lengths (whitespace words), diversity and leakage."""
    texts = [r["text"] for r in records]
    shingles = [shingle_hashes(t) for t in texts]
    lengths = np.array([len(t.split()) for t in texts]) if texts else np.zeros(0, dtype=int)
    stats = {
        "n": len(records),
        "genres": dict(sorted(Counter(r.get("genre", "?") for r in records).items())),
        "behaviours": dict(sorted(Counter(b for r in records for b in r.get("behaviours", [])).items())),
        "sources": dict(sorted(Counter(r.get("source", "?") for r in records).items())),
        "near_duplicate_rate": near_duplicate_rate(shingles),
        "distinct_5gram_ratio": distinct_ratio(shingles),
        "tokens": {
            "method": "whitespace-separated words",
            "mean": float(lengths.mean()) if lengths.size else 0.0,
            "p50": float(np.percentile(lengths, 50)) if lengths.size else 0.0,
            "p95": float(np.percentile(lengths, 95)) if lengths.size else 0.0,
            "max": int(lengths.max()) if lengths.size else 0,
            "total": int(lengths.sum()),
        },
        "leakage": None,
    }
    if world is not None:
        from spillover.data.leakage import find_leaks

        stats["leakage"] = find_leaks(texts, world)
    return stats


def shingle_hashes(text: str, k: int = SHINGLE) -> np.ndarray:
    """Sorted unique 64-bit hashes of the text's k-word shingles (lower-cased words)."""
    words = _WORD.findall(text.lower())
    if not words:
        return np.zeros(0, dtype=np.uint64)
    cache = _WORD_HASHES
    for w in set(words).difference(cache):
        cache[w] = int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "little")
    ids = np.array([cache[w] for w in words], dtype=np.uint64)
    if len(ids) < k:
        k = len(ids)
    # A polynomial rolling combination of word hashes, wrapping mod 2**64 (stable across runs).
    h = np.zeros(len(ids) - k + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(k):
            h = h * np.uint64(1_000_003) + ids[j : len(ids) - k + 1 + j]
    return np.unique(h)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    if a.size == 0 and b.size == 0:
        return 1.0
    inter = np.intersect1d(a, b, assume_unique=True).size
    return inter / (a.size + b.size - inter)


def near_duplicate_pairs(shingles: Sequence[np.ndarray], threshold: float = NEAR_DUP_JACCARD) -> list[tuple[int, int, float]]:
    """All (i, j, jaccard) with i < j and Jaccard > threshold, found by MinHash LSH then checked exactly."""
    rng = np.random.default_rng(0)
    a = rng.integers(1, 2**63, size=_BANDS * _ROWS, dtype=np.uint64) | np.uint64(1)
    b = rng.integers(0, 2**63, size=_BANDS * _ROWS, dtype=np.uint64)
    signatures = np.full((len(shingles), _BANDS * _ROWS), _MASK, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for i, s in enumerate(shingles):
            if s.size:
                signatures[i] = (a[:, None] * s[None, :] + b[:, None]).min(axis=1)
    candidates: set[tuple[int, int]] = set()
    for band in range(_BANDS):
        buckets: dict[bytes, list[int]] = {}
        block = signatures[:, band * _ROWS : (band + 1) * _ROWS]
        for i in range(len(shingles)):
            buckets.setdefault(block[i].tobytes(), []).append(i)
        for members in buckets.values():
            for x in range(len(members)):
                for y in range(x + 1, len(members)):
                    candidates.add((members[x], members[y]))
    out = []
    for i, j in sorted(candidates):
        sim = jaccard(shingles[i], shingles[j])
        if sim > threshold:
            out.append((i, j, sim))
    return out


def near_duplicate_rate(shingles: Sequence[np.ndarray], threshold: float = NEAR_DUP_JACCARD) -> float:
    """Share of documents that near-duplicate an earlier one (what deduplication would remove)."""
    if not shingles:
        return 0.0
    later = {j for _, j, _ in near_duplicate_pairs(shingles, threshold)}
    return len(later) / len(shingles)


def distinct_ratio(shingles: Sequence[np.ndarray]) -> float:
    """Distinct 5-grams over all 5-grams in the corpus (each document's repeats counted once)."""
    nonempty = [s for s in shingles if s.size]
    if not nonempty:
        return 0.0
    everything = np.concatenate(nonempty)
    return float(np.unique(everything).size / everything.size)


# Stable word hashes (Python's own str hash changes between processes).
_WORD_HASHES: dict[str, int] = {}
