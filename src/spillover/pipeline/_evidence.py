"""The evidence beside results.json: every arm's eval samples, the test hits copy-checked.

`samples.jsonl.gz` holds the eval sample records of every arm and seed (docs/architecture.md
"Record formats"); each test-behaviour hit also carries `copy` (evaluation `CopyCheck`): the
longest run of words around its span shared with any training text of its split (the run's
documents, the split's post-training data and rehearsal mixes), and whether the span's words appear
in the documents. The same training text is used for every arm of a split, so "novel" means the
same thing in each. A `folds:K` run writes each fold's samples into its directory and, beside the
pooled results.json, all of them (`pooled_samples`).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from spillover._io import is_done, read_json, read_jsonl, read_jsonl_gz, write_jsonl_gz
from spillover.errors import BadInputError, Problem
from spillover.evaluation import TextIndex, check_copy

from ._arms import SHARED_ARMS
from ._recipe import ARMS
from ._stagekit import texts_of

SAMPLES_FILE = "samples.jsonl.gz"


def _texts(path: Path) -> list[str]:
    """Every piece of text of a JSONL file of documents, SFT/DPO records or a rehearsal mix."""
    records = read_jsonl(path)
    return [r["text"] for r in records if isinstance(r.get("text"), str)] + texts_of(records)


def training_texts(run_dir: Path, split_dir: Path | None = None) -> tuple[list[str], list[str]]:
    """(every training text of a split's arms, the documents alone): the run's documents, which every
    split shares, and the split's post-training data and rehearsal mixes, in `split_dir` (a fold's
    directory of a `folds:K` run; the run directory itself otherwise)."""
    split_dir = run_dir if split_dir is None else split_dir
    documents = run_dir / "documents" / "docs.jsonl"
    docs = _texts(documents) if documents.exists() else []
    files = sorted((split_dir / "data").glob("*.jsonl")) + sorted(split_dir.glob("arms/*/seed-*/*/rehearsal-mix.jsonl"))
    return docs + [t for p in files for t in _texts(p)], docs


def eval_samples(split_dir: Path, seeds: list[int], roles: dict[str, str]) -> list[dict]:
    """Every finished eval stage's samples, arm by arm, seed by seed, each with its behaviour's role
    under `roles` (the split read: a shared arm's samples serve every fold of a `folds:K` run)."""
    out: list[dict] = []
    for arm in ARMS:
        for s in seeds:
            d = split_dir / "eval" / arm / f"seed-{s}"
            if is_done(d):  # `seed` in a record is its sampling seed; `run_seed` the recipe's
                out += [{**r, "role": roles.get(r["behaviour"], r["role"]), "run_seed": s} for r in read_jsonl(d / "samples.jsonl")]
    return out


def annotated_samples(run_dir: str | Path, seeds: list[int], roles: dict[str, str], split_dir: Path | None = None) -> list[dict]:
    """A split's eval samples (`split_dir`, default the run's), each test-behaviour hit with its `copy`
    record against the split's training texts (`training_texts`)."""
    run_dir = Path(run_dir)
    samples = eval_samples(split_dir or run_dir, seeds, roles)
    hits = [r for r in samples if r["role"] == "test" and r["exhibited"]]
    if hits:
        training, docs = training_texts(run_dir, split_dir)
        training_index, docs_index = TextIndex(training), TextIndex(docs)
        for r in hits:
            r["copy"] = check_copy(r["response"], r.get("span"), training_index, docs_index).to_dict()
    return samples


def write_samples(out_dir: str | Path, samples: list[dict]) -> list[dict]:
    """Write out_dir/samples.jsonl.gz (the samples a results.json counts) and return them."""
    write_jsonl_gz(Path(out_dir) / SAMPLES_FILE, samples)
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


def pooled_samples(per_fold: list[list[dict]]) -> list[dict]:
    """The folds' samples together, each tagged with its `fold`, as the pooled results count them: a
    shared arm's sample (the same in every fold) once as test, in its behaviour's held-out fold, and
    once as train, in the first fold that trains it; a post-trained arm's in every fold."""
    seen: set[tuple] = set()
    out = []
    for i, samples in enumerate(per_fold):
        for r in samples:
            if r["arm"] in SHARED_ARMS and r["role"] == "train":
                key = (r["arm"], r["run_seed"], r["behaviour"], r["prompt"], r.get("sample", 0))
                if key in seen:
                    continue
                seen.add(key)
            out.append({**r, "fold": i})
    return out
