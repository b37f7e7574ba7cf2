"""The evidence beside results.json: every arm's eval samples, the test hits copy-checked.

`samples.jsonl.gz` holds the eval sample records of every arm and seed (docs/architecture.md
"Record formats"); each test-behaviour hit also carries `copy` (evaluation `CopyCheck`): the
longest run of words around its span shared with any training text of the run (documents, post-
training data, rehearsal mixes), and whether the span's words appear in the documents. The same
training text is used for every arm, so "novel" means the same thing in each.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from spillover._io import is_done, read_json, read_jsonl, read_jsonl_gz, write_jsonl_gz
from spillover.errors import BadInputError, Problem
from spillover.evaluation import TextIndex, check_copy

from ._recipe import ARMS

SAMPLES_FILE = "samples.jsonl.gz"


def _texts(path: Path) -> list[str]:
    """Every piece of text of a JSONL file of documents, SFT/DPO records or a rehearsal mix."""
    from ._run import _texts_of

    records = read_jsonl(path)
    return [r["text"] for r in records if isinstance(r.get("text"), str)] + _texts_of(records)


def training_texts(run_dir: Path) -> tuple[list[str], list[str]]:
    """(every training text of the run, the documents alone)."""
    documents = run_dir / "documents" / "docs.jsonl"
    docs = _texts(documents) if documents.exists() else []
    files = [p for p in run_dir.glob("**/docs.jsonl") if p.relative_to(run_dir).parts[0] not in ("eval", "probes", "audit")]
    files += sorted((run_dir / "data").glob("*.jsonl")) + sorted(run_dir.glob("arms/*/seed-*/*/rehearsal-mix.jsonl"))
    return [t for p in sorted(set(files)) for t in _texts(p)], docs


def eval_samples(run_dir: Path, seeds: list[int]) -> list[dict]:
    """Every finished eval stage's samples, arm by arm, seed by seed."""
    out: list[dict] = []
    for arm in ARMS:
        for s in seeds:
            d = run_dir / "eval" / arm / f"seed-{s}"
            if is_done(d):  # `seed` in a record is its sampling seed; `run_seed` the recipe's
                out += [{**r, "run_seed": s} for r in read_jsonl(d / "samples.jsonl")]
    return out


def annotated_samples(run_dir: str | Path, seeds: list[int]) -> list[dict]:
    """The run's eval samples, each test-behaviour hit with its `copy` record."""
    run_dir = Path(run_dir)
    samples = eval_samples(run_dir, seeds)
    hits = [r for r in samples if r["role"] == "test" and r["exhibited"]]
    if hits:
        training, docs = training_texts(run_dir)
        training_index, docs_index = TextIndex(training), TextIndex(docs)
        for r in hits:
            r["copy"] = check_copy(r["response"], r.get("span"), training_index, docs_index).to_dict()
    return samples


def write_samples(run_dir: str | Path, seeds: list[int]) -> list[dict]:
    """Write run_dir/samples.jsonl.gz (annotated samples of every arm) and return its records."""
    samples = annotated_samples(run_dir, seeds)
    write_jsonl_gz(Path(run_dir) / SAMPLES_FILE, samples)
    return samples


def read_samples(results_dir: str | Path) -> list[dict]:
    """The samples beside a results.json; a one-line error if there are none."""
    path = Path(results_dir) / SAMPLES_FILE
    if not path.exists():
        raise BadInputError(
            Problem(str(results_dir), SAMPLES_FILE, "no samples beside results.json", "pass a run or results directory written by `spillover run` (it writes samples.jsonl.gz)")
        )
    return read_jsonl_gz(path)


def copy_counts(samples: list[dict]) -> dict:
    """Per arm: test hits, copied (≥ 8 shared words), novel, and hits whose span is in the documents."""
    counts: dict[str, Counter] = {}
    for r in samples:
        if r["role"] == "test" and r["exhibited"] and "copy" in r:
            c = counts.setdefault(r["arm"], Counter())
            c["test_hits"] += 1
            c["copied"] += r["copy"]["copied"]
            c["novel"] += not r["copy"]["copied"]
            c["span_in_documents"] += r["copy"]["span_in_documents"]
    keys = ("test_hits", "copied", "novel", "span_in_documents")
    arms = dict.fromkeys(r["arm"] for r in samples)  # every arm sampled, hits or not
    return {arm: {k: int(counts.get(arm, Counter())[k]) for k in keys} for arm in arms}


def documents_distinct_5gram_ratio(run_dir: Path) -> float | None:
    """The documents' distinct 5-gram ratio (documents `document_stats`): low means repetitive."""
    stats, docs = run_dir / "documents" / "stats.json", run_dir / "documents" / "docs.jsonl"
    if stats.exists() and "distinct_5gram_ratio" in (recorded := read_json(stats)):
        return recorded["distinct_5gram_ratio"]
    if not docs.exists():
        return None
    from spillover.documents import document_stats

    return document_stats(read_jsonl(docs))["distinct_5gram_ratio"]
