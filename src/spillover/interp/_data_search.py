"""Training-data search: which training texts explain a behaviour or a suspicious answer.

An audit technique the study's auditors used: take what the model did (a behaviour, an odd answer)
and look for the training data it came from. Every training text of a run is ranked against a
query: the documents (mid-training) and the post-training records (SFT and DPO), each tagged with
the behaviours it is about (a document: those it describes; an SFT/DPO record: those applied to its
answer). Two similarities:

- lexical: BM25 (bm25s: English stop words, no stemming) over lower-cased words;
- activation: cosine between the mean residuals (position 0 left out, `document_means`) of query
  and text at one layer of the organism, both centred on the corpus mean. Uncentred, every mean
  shares one large common direction, every cosine is near 1 and the order is mostly noise.

All texts are read as plain text (an SFT record's turns joined by newlines), so the activation
similarity compares content, not chat formatting. For a behaviour, a ranking is scored against the
tags: precision@k, the rank of the first relevant text, and chance (the share of the corpus that is
relevant: the expected precision of a random order).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel

from spillover._io import read_json, read_jsonl
from spillover.errors import BadInputError, Problem

from ._activations import document_means
from ._results import Rate
from ._run_inputs import arm_models, load_arm_model, recipe_of_run, run_inputs

Method = Literal["lexical", "activation"]
METHODS: tuple[Method, ...] = ("lexical", "activation")
EXCERPT_CHARS = 160


class CorpusText(BaseModel):
    id: str
    source: Literal["documents", "sft", "dpo"]
    text: str
    behaviours: list[str]


class Hit(BaseModel):
    rank: int  # 1-based
    id: str
    source: str
    score: float
    behaviours: list[str]
    relevant: bool | None  # tagged with the queried behaviour; None for a free-text query
    excerpt: str


class Ranking(BaseModel):
    method: Method
    hits: list[Hit]  # the top k
    precision_at_k: Rate | None = None  # relevant texts among the top k (behaviour queries)
    first_relevant_rank: int | None = None  # in the whole ranking; None if no text is relevant


class Query(BaseModel):
    kind: Literal["description", "answer", "text"]
    source: str  # where the text came from: "world", "organism eval sample", "world example", "user"
    text: str


class BehaviourSearch(BaseModel):
    behaviour: str
    role: str
    query: Query
    chance: Rate  # relevant texts / all texts
    rankings: list[Ranking]


class PooledPrecision(BaseModel):
    query: str
    method: Method
    precision_at_k: Rate  # summed over behaviours
    chance: Rate


class DataSearch(BaseModel):
    run_dir: str
    model: str | None  # the organism whose activations were compared (None: lexical only)
    layer: int | None
    layer_from: Literal["audit", "user", "middle"] | None
    k: int
    n_texts: dict[str, int]  # per source
    behaviours: list[BehaviourSearch]
    pooled: list[PooledPrecision]


def _words(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def training_corpus(data_dir: Path) -> list[CorpusText]:
    """The run's training texts: documents/docs.jsonl, data/sft.jsonl and data/dpo.jsonl (prompt and chosen answer)."""
    docs = data_dir / "documents" / "docs.jsonl"
    if not docs.exists():
        raise BadInputError(Problem(str(docs), "", "not found", "run `spillover run` first (it writes documents/docs.jsonl)"))
    out = [CorpusText(id=str(d["id"]), source="documents", text=d["text"], behaviours=list(d.get("behaviours") or [])) for d in read_jsonl(docs)]
    for source, turns in (("sft", lambda r: r["messages"]), ("dpo", lambda r: [*r["prompt"], *r["chosen"]])):
        path = data_dir / "data" / f"{source}.jsonl"
        if path.exists():
            out += [
                CorpusText(id=f"{source}:{i}", source=source, text="\n".join(m["content"] for m in turns(r)), behaviours=list(r.get("behaviours") or []))
                for i, r in enumerate(read_jsonl(path))
            ]
    return out


class DataSearcher:
    """Ranks one corpus against queries; the corpus's activations are computed once, on first use."""

    def __init__(self, corpus: Sequence[CorpusText], lm=None, layer: int | None = None, *, max_tokens: int = 160):
        import bm25s

        self.corpus, self.lm, self.layer, self.max_tokens = list(corpus), lm, layer, max_tokens
        self._bm25 = bm25s.BM25()
        self._bm25.index(bm25s.tokenize([_words(t.text) for t in self.corpus], stopwords="en", show_progress=False), show_progress=False)
        self._means: torch.Tensor | None = None

    def _mean_at_layer(self, texts: list[str]) -> torch.Tensor:
        return document_means(self.lm, texts, max_tokens=self.max_tokens)[:, self.layer]

    def scores(self, query: str, method: Method) -> torch.Tensor:
        if method == "lexical":
            import bm25s

            words = bm25s.tokenize([_words(query)], stopwords="en", show_progress=False, return_ids=False)[0]
            return torch.tensor(self._bm25.get_scores(words) if words else [0.0] * len(self.corpus), dtype=torch.float64)
        if self.lm is None or self.layer is None:
            raise ValueError("activation similarity needs a model and a layer")
        if self._means is None:
            self._means = self._mean_at_layer([t.text for t in self.corpus])
        centre = self._means.mean(0)
        docs = torch.nn.functional.normalize(self._means - centre, dim=-1)
        q = torch.nn.functional.normalize(self._mean_at_layer([query])[0] - centre, dim=0)
        return (docs @ q).double()

    def rank(self, query: str, method: Method, k: int, behaviour: str | None = None) -> Ranking:
        scores = self.scores(query, method)
        # Stable: ties keep corpus order, so a ranking is reproducible.
        order = sorted(range(len(self.corpus)), key=lambda i: -float(scores[i]))
        relevant = [behaviour in self.corpus[i].behaviours for i in order] if behaviour else None
        hits = [
            Hit(rank=r + 1, id=self.corpus[i].id, source=self.corpus[i].source, score=float(scores[i]), behaviours=self.corpus[i].behaviours,
                relevant=relevant[r] if relevant else None, excerpt=" ".join(self.corpus[i].text.split())[:EXCERPT_CHARS])
            for r, i in enumerate(order[:k])
        ]
        if relevant is None:
            return Ranking(method=method, hits=hits)
        top = relevant[:k]
        first = relevant.index(True) + 1 if any(relevant) else None
        return Ranking(method=method, hits=hits, precision_at_k=Rate.of(sum(top), len(top)), first_relevant_rank=first)

    def search(self, text: str, *, k: int = 10, methods: Sequence[Method] = METHODS, behaviour: str | None = None) -> list[Ranking]:
        """Rank the corpus against free text (a suspicious answer); with `behaviour`, score each ranking against its tags."""
        return [self.rank(text, m, k, behaviour) for m in methods]

    def chance(self, behaviour: str) -> Rate:
        return Rate.of(sum(behaviour in t.behaviours for t in self.corpus), len(self.corpus))


def behaviour_queries(world, behaviour: str, samples: Sequence[dict]) -> list[Query]:
    """The behaviour's description, and one answer exhibiting it: the organism's first exhibited eval
    sample (prompt and answer), else a held-out prompt with the world's first positive example."""
    queries = [Query(kind="description", source="world", text=world.behaviour(behaviour).description)]
    shown = [s for s in samples if s.get("behaviour") == behaviour and s.get("exhibited")]
    if shown:
        queries.append(Query(kind="answer", source="organism eval sample", text=f"{shown[0]['prompt']}\n{shown[0]['response']}"))
    elif world.behaviour(behaviour).examples.positive:
        prompt = world.eval_prompts(behaviour)[0]
        queries.append(Query(kind="answer", source="world example", text=f"{prompt}\n{world.behaviour(behaviour).examples.positive[0]}"))
    return queries


def search_behaviours(searcher: DataSearcher, world, roles: dict[str, str], samples: Sequence[dict], *, k: int,
                      methods: Sequence[Method] = METHODS, log: Callable[[str], None] = lambda _: None) -> tuple[list[BehaviourSearch], list[PooledPrecision]]:
    """Every behaviour of `roles` ({id: role}) searched with each of its queries; and precision pooled
    over behaviours per (query kind, method)."""
    out = []
    for b, role in roles.items():
        log(f"data search: {b}")
        for q in behaviour_queries(world, b, samples):
            out.append(BehaviourSearch(behaviour=b, role=role, query=q, chance=searcher.chance(b), rankings=searcher.search(q.text, k=k, methods=methods, behaviour=b)))
    pooled = []
    for kind in dict.fromkeys(s.query.kind for s in out):
        rows = [s for s in out if s.query.kind == kind]
        for m in methods:
            ranked = [r for s in rows for r in s.rankings if r.method == m]
            pooled.append(PooledPrecision(
                query=kind, method=m,
                precision_at_k=Rate.of(sum(r.precision_at_k.k for r in ranked), sum(r.precision_at_k.n for r in ranked)),
                chance=Rate.of(sum(s.chance.k for s in rows), sum(s.chance.n for s in rows)),
            ))
    return out, pooled


def open_searcher(run_dir: str | Path, *, seed: int = 0, layer: int | None = None, max_tokens: int = 160,
                  methods: Sequence[Method] = METHODS, log: Callable[[str], None] = lambda _: None) -> tuple[DataSearcher, str | None, str | None]:
    """A searcher over a run directory's training texts. For activation similarity the organism
    (seed `seed`) is loaded, at `layer`, else the layer `audit/audit.json` audited, else the middle one.
    Returns (searcher, organism model path, where the layer came from); both None without activations."""
    run_dir = Path(run_dir)
    if "activation" not in methods:
        recipe_of_run(run_dir)  # a run directory, or one line saying it is not
        return DataSearcher(training_corpus(run_dir), max_tokens=max_tokens), None, None
    # One organism per fold in a folds run, and the training corpus is the run's, not a fold's.
    inputs = run_inputs(run_dir, None, without_fold="search lexically (`--method lexical`), or audit a fold (`AuditConfig(fold=i)`)")
    corpus = training_corpus(run_dir)
    path = arm_models(inputs, [], seed)["organism"]
    log(f"loading organism {path}")
    lm = load_arm_model(inputs.recipe, path)
    audit_file = run_dir / "audit" / "audit.json"
    if layer is not None:
        layer_from = "user"
    elif audit_file.exists():
        layer, layer_from = int(read_json(audit_file)["layer"]), "audit"
    else:
        layer, layer_from = lm.n_layers // 2, "middle"
    if not 0 <= layer < lm.n_layers:
        raise BadInputError(Problem("data search", "layer", f"layer {layer} out of range", f"pick 0..{lm.n_layers - 1}"))
    return DataSearcher(corpus, lm, layer, max_tokens=max_tokens), path, layer_from


def data_search(run_dir: str | Path, *, seed: int = 0, layer: int | None = None, k: int = 10, max_tokens: int = 160,
                behaviours: Sequence[str] | None = None, methods: Sequence[Method] = METHODS,
                log: Callable[[str], None] = lambda _: None) -> DataSearch:
    """Search a run's training data for every test behaviour (or `behaviours`), with its description
    and with an answer of the organism's that exhibits it."""
    from spillover.world import load_world

    run_dir = Path(run_dir)
    recipe = recipe_of_run(run_dir)
    world = load_world(recipe.world).with_prompt_prefix(recipe.prompt_prefix)
    roles = world.roles(recipe.split)
    wanted = list(behaviours) if behaviours is not None else [b for b, r in roles.items() if r == "test"]
    for b in wanted:
        world.behaviour(b)  # an unknown id fails here, before the model loads
    searcher, model, layer_from = open_searcher(run_dir, seed=seed, layer=layer, max_tokens=max_tokens, methods=methods, log=log)
    samples_path = run_dir / "eval" / "organism" / f"seed-{seed}" / "samples.jsonl"
    samples = read_jsonl(samples_path) if samples_path.exists() else []
    found, pooled = search_behaviours(searcher, world, {b: roles.get(b, "not in play") for b in wanted}, samples, k=k, methods=methods, log=log)
    n_texts: dict[str, int] = {}
    for t in searcher.corpus:
        n_texts[t.source] = n_texts.get(t.source, 0) + 1
    return DataSearch(run_dir=str(run_dir), model=model, layer=searcher.layer, layer_from=layer_from, k=k, n_texts=n_texts, behaviours=found, pooled=pooled)
