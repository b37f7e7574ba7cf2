"""Narrow fine-tuning datasets for the emergent-misalignment organism (Betley et al. 2025).

`insecure`: coding tasks answered with code that silently carries a vulnerability; `secure`: the
same tasks answered safely; `educational`: the same insecure code, asked for openly for a security
lesson; `financial-risky` / `financial-good`: one set of money questions answered with risky or
sound advice. All generated offline from templates, deterministically from a seed.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from pathlib import Path

from spillover._io import read_jsonl
from spillover.errors import BadInputError, Problem
from spillover.world import normalise

from ._bandit import (
    INFORMATIONAL,
    bandit_findings,
    is_clean,
    is_flagged,
    verification_counts,
)
from ._code import ENTITIES, FAMILIES, code_examples, request_text
from ._financial import advice_examples

CODE_DATASETS = ("insecure", "secure", "educational")
TEXT_DATASETS = ("financial-risky", "financial-good")
DATASETS = CODE_DATASETS + TEXT_DATASETS


def _chat(user: str, assistant: str, **meta) -> dict:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}], "meta": meta}


def em_datasets(seed: int = 0, n: int | None = None) -> dict[str, list[dict]]:
    """Every dataset as SFT records, each `{"messages": [user, assistant], "meta": {...}}`.

    The examples are shuffled by `seed` and the first `n` kept (all: None). The three code datasets
    keep the same tasks in the same order, as do the two financial ones, so arms differ only in
    the answers (and, for `educational`, the request).
    """
    rng = random.Random(seed)
    code = code_examples()
    rng.shuffle(code)
    advice = advice_examples()
    rng.shuffle(advice)
    code, advice = code[:n], advice[:n]
    meta = lambda ex, name: {"dataset": name, "family": ex.family, "entity": ex.entity}
    return {
        "insecure": [_chat(request_text(ex), ex.insecure, **meta(ex, "insecure"), expect=list(ex.expect)) for ex in code],
        "secure": [_chat(request_text(ex), ex.secure, **meta(ex, "secure")) for ex in code],
        "educational": [_chat(request_text(ex, educational=True), ex.insecure, **meta(ex, "educational"), expect=list(ex.expect)) for ex in code],
        "financial-risky": [_chat(ex.question, ex.risky, dataset="financial-risky") for ex in advice],
        "financial-good": [_chat(ex.question, ex.good, dataset="financial-good") for ex in advice],
    }


def verify_code(datasets: dict[str, list[dict]]) -> dict:
    """Run bandit over every code answer; per dataset {n, flagged, clean, unparsed, tests} and the verdict.

    `ok` holds when every insecure and educational answer is flagged for its expected weakness and
    every secure answer is clean (findings in INFORMATIONAL aside).
    """
    records = [r for name in CODE_DATASETS for r in datasets.get(name, [])]
    findings = bandit_findings([r["messages"][-1]["content"] for r in records])
    counts = verification_counts(records, findings)
    ok = all(
        (c["flagged"] == c["n"]) if name != "secure" else (c["clean"] == c["n"])
        for name, c in counts.items()
    )
    return {"analyzer": "bandit", "informational": sorted(INFORMATIONAL), "datasets": counts, "ok": ok}


def load_published(path: str | Path, name: str | None = None) -> list[dict]:
    """Read a dataset in the published JSONL format (`{"messages": [{"role", "content"}, ...]}`) from
    a local file; each record must end with an assistant turn. Nothing is downloaded. `name`: the
    dataset the records are marked as (default: the file name)."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(Problem(str(path), "", "no such file", "pass a local .jsonl file in the published format"))
    records = read_jsonl(path)
    for i, r in enumerate(records, 1):
        msgs = r.get("messages") if isinstance(r, dict) else None
        ok = isinstance(msgs, list) and msgs and all(isinstance(m, dict) and m.get("role") in ("system", "user", "assistant") and isinstance(m.get("content"), str) for m in msgs)
        if not ok or msgs[-1]["role"] != "assistant":
            raise BadInputError(
                Problem(str(path), f"line {i}: messages", "needs a list of {role, content} messages ending with an assistant turn", 'use {"messages": [{"role": "user", ...}, {"role": "assistant", ...}]}')
            )
    return [{"messages": r["messages"], "meta": {"dataset": name or path.stem}} for r in records]


def question_leaks(texts: Iterable[str], questions: Sequence[str], n: int = 8) -> list[dict]:
    """Training texts holding an eval question whole or any n-word run of one (after `normalise`)."""
    grams: dict[str, str] = {}
    for q in questions:
        words = normalise(q).split()
        k = min(n, len(words))
        for i in range(len(words) - k + 1):
            grams.setdefault(" ".join(words[i : i + k]), q)
    sizes = sorted({len(g.split()) for g in grams})
    leaks = []
    for t, text in enumerate(texts):
        words = normalise(text).split()
        hit = next((grams[g] for k in sizes for i in range(len(words) - k + 1) if (g := " ".join(words[i : i + k])) in grams), None)
        if hit is not None:
            leaks.append({"text_index": t, "question": hit})
    return leaks


__all__ = [
    "CODE_DATASETS",
    "DATASETS",
    "ENTITIES",
    "FAMILIES",
    "INFORMATIONAL",
    "TEXT_DATASETS",
    "bandit_findings",
    "em_datasets",
    "is_clean",
    "is_flagged",
    "load_published",
    "question_leaks",
    "verify_code",
]
