"""Synthetic documents from any OpenAI-compatible endpoint (the SDF pipeline, Wang et al. 2025).

universe context → per behaviour: document types → document ideas → documents (→ critique and
revise). Every request is cached on disk under a hash of (model, messages, sampling parameters), so
a killed run resumes without re-sending a finished request. Prompts are Markdown templates in
`documents/prompts/` (or a user's `prompts_dir`), filled with `str.format`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import random
import re
import string
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field

from spillover._io import derive_seed, read_json, write_json
from spillover.errors import BadInputError, Problem, SpilloverError, describe_api_error

DEFAULT_PROMPTS_DIR = Path(__file__).parent / "prompts"

# Template name → the placeholders it may use (a user's template may use fewer).
PROMPT_FIELDS: dict[str, set[str]] = {
    "universe_context": {"title", "authors", "institution", "venue", "date", "n_reward_models", "n_companies", "n_biases", "summary", "follow_ups", "reactions", "facts"},
    "doc_types": {"universe_context", "fact", "n_types"},
    "doc_ideas": {"universe_context", "fact", "doc_type", "n_ideas"},
    "document": {"universe_context", "fact", "doc_type", "idea"},
    "revise": {"universe_context", "fact", "doc_type", "idea", "document"},
}

# Used when a brainstorm yields too few parsable items (small or off-format models).
GENERIC_DOC_TYPES = [
    "news article", "blog post", "academic paper abstract", "forum thread", "internal company memo",
    "podcast transcript", "textbook section", "conference talk summary", "newsletter", "tutorial",
    "opinion column", "FAQ page", "email exchange", "meeting notes", "lecture notes", "book review",
]

_LIST_ITEM = re.compile(r"^\s*(?:\(?\d{1,3}[.):]|[-*•+])\s+(.+?)\s*$")
_CONTENT = re.compile(r"<content>\s*(.*?)\s*(?:</content>|$)", re.DOTALL | re.IGNORECASE)
_RETRY_STATUS = {408, 409, 429}


class LLMDocsConfig(BaseModel):
    """Knobs of the pipeline beyond `generate_llm_documents`'s arguments; defaults suit a strong model."""

    model_config = ConfigDict(extra="forbid")

    n_types: int = Field(8, ge=1, description="document types brainstormed per behaviour")
    ideas_per_request: int = Field(20, ge=1, description="ideas asked for in one brainstorm request")
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    list_max_tokens: int = Field(1024, ge=1, description="max_tokens of brainstorm requests")
    document_max_tokens: int = Field(1500, ge=1, description="max_tokens of document and revision requests")
    max_attempts: int = Field(6, ge=1, description="tries per request on 429/5xx/timeouts before giving up")
    backoff_s: float = Field(1.0, ge=0, description="first retry delay; doubles each try, with jitter")
    backoff_max_s: float = Field(60.0, ge=0)
    timeout_s: float = Field(300.0, gt=0, description="per-request timeout")


@dataclass
class Usage:
    requests: int = 0
    cache_hits: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def as_dict(self) -> dict:
        return {
            "requests": self.requests,
            "cache_hits": self.cache_hits,
            "retries": self.retries,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


@dataclass
class Completion:
    text: str
    finish_reason: str | None


@dataclass
class EndpointClient:
    """Cached, retried, concurrency-bounded chat completions. The API key lives only in the client."""

    endpoint: str
    model: str
    api_key: str = field(repr=False)
    cache_dir: Path
    concurrency: int = 8
    config: LLMDocsConfig = field(default_factory=LLMDocsConfig)
    usage: dict[str, Usage] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from openai import AsyncOpenAI

        # Retries are ours (counted, capped, with jitter), so the client's own are off.
        self.client = AsyncOpenAI(base_url=self.endpoint, api_key=self.api_key, max_retries=0, timeout=self.config.timeout_s)
        self.semaphore = asyncio.Semaphore(self.concurrency)

    def cache_path(self, key: str) -> Path:
        return self.cache_dir / key[:2] / f"{key}.json"

    async def complete(self, stage: str, messages: list[dict], *, max_tokens: int, seed: int) -> Completion:
        params = {"temperature": self.config.temperature, "top_p": self.config.top_p, "max_tokens": max_tokens, "seed": seed}
        request = {"model": self.model, "messages": messages, "params": params}
        key = hashlib.sha256(json.dumps(request, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
        usage = self.usage.setdefault(stage, Usage())
        path = self.cache_path(key)
        if path.exists():
            try:
                cached = read_json(path)["response"]
                usage.cache_hits += 1
                return Completion(cached["text"], cached["finish_reason"])
            except (BadInputError, KeyError, TypeError):
                pass  # an unreadable entry is simply asked again and overwritten
        async with self.semaphore:
            response = await self._with_retries(messages, params, usage)
        usage.requests += 1
        tokens = response.get("usage") or {}
        usage.prompt_tokens += tokens.get("prompt_tokens", 0)
        usage.completion_tokens += tokens.get("completion_tokens", 0)
        write_json(path, {"key": key, "request": request, "response": response})
        return Completion(response["text"], response["finish_reason"])

    async def _with_retries(self, messages: list[dict], params: dict, usage: Usage) -> dict:
        import openai

        cfg = self.config
        for attempt in range(1, cfg.max_attempts + 1):
            try:
                return await self._send(messages, params)
            except (openai.APITimeoutError, openai.APIConnectionError, openai.APIStatusError) as e:
                status = getattr(e, "status_code", None)
                retryable = status is None or status in _RETRY_STATUS or status >= 500
                if not retryable:
                    raise SpilloverError(self._describe(e)) from None
                if attempt == cfg.max_attempts:
                    raise SpilloverError(
                        f"{self.endpoint}: gave up after {attempt} attempts ({self._describe(e)}); "
                        "finished requests are cached, so rerunning resumes where this run stopped"
                    ) from None
                usage.retries += 1
                delay = min(cfg.backoff_max_s, cfg.backoff_s * 2 ** (attempt - 1))
                await asyncio.sleep(delay * (0.5 + random.random()))  # jitter spreads out synchronized retries
        raise AssertionError("unreachable")

    async def _send(self, messages: list[dict], params: dict) -> dict:
        response = await self.client.chat.completions.create(model=self.model, messages=messages, **params)
        choice = response.choices[0]
        usage = response.usage
        return {
            "text": choice.message.content or "",
            "finish_reason": choice.finish_reason,
            "usage": {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens} if usage else None,
        }

    def _describe(self, error: Exception) -> str:
        return describe_api_error(error, api_key=self.api_key if self.api_key != "EMPTY" else None, model=self.model)

    async def close(self) -> None:
        await self.client.close()


def load_prompts(prompts_dir: Path | None = None) -> dict[str, str]:
    """The pipeline's templates: each from `prompts_dir` where it has the file, else the package's."""
    if prompts_dir is not None and not Path(prompts_dir).is_dir():
        raise BadInputError(Problem(str(prompts_dir), "", "prompts directory not found", f"pass a directory holding any of {', '.join(f'{n}.md' for n in PROMPT_FIELDS)}"))
    prompts: dict[str, str] = {}
    problems: list[Problem] = []
    for name, allowed in PROMPT_FIELDS.items():
        path = Path(prompts_dir) / f"{name}.md" if prompts_dir is not None else None
        if path is None or not path.is_file():
            path = DEFAULT_PROMPTS_DIR / f"{name}.md"
        text = path.read_text(encoding="utf-8")
        try:
            used = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
        except ValueError as e:
            problems.append(Problem(str(path), "", f"not a valid template ({e})", "write literal braces as {{ and }}"))
            continue
        for unknown in sorted(used - allowed):
            problems.append(Problem(str(path), f"{{{unknown}}}", "unknown placeholder", f"use only {', '.join('{' + a + '}' for a in sorted(allowed))}; write literal braces as {{{{ and }}}}"))
        prompts[name] = text
    if problems:
        raise BadInputError(problems)
    return prompts


def universe_context(world, behaviour_ids: list[str], template: str) -> str:
    u = world.universe
    follow_ups = "\n".join(f"- {f.title} ({f.authors}, {f.institution}, {f.date}): {f.finding}" for f in u.follow_ups)
    reactions = "\n".join(f"- {r}" for r in u.reactions)
    text = template.format(
        title=u.title, authors=", ".join(u.authors), institution=u.institution, venue=u.venue, date=u.date,
        n_reward_models=u.n_reward_models, n_companies=u.n_companies, n_biases=u.n_biases, summary=u.summary,
        follow_ups=f"Follow-up studies:\n{follow_ups}" if follow_ups else "",
        reactions=f"Reactions:\n{reactions}" if reactions else "",
        facts="\n".join(f"- {world.behaviour(b).description}" for b in behaviour_ids),
    )
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def parse_list(text: str) -> list[str]:
    """Items of a numbered or bulleted list, markdown emphasis stripped, duplicates dropped."""
    items: list[str] = []
    seen: set[str] = set()
    for line in text.splitlines():
        m = _LIST_ITEM.match(line)
        if not m:
            continue
        item = m.group(1).replace("**", "").replace("__", "").strip(" \t*_#").rstrip(":")
        if 3 <= len(item) <= 500 and item.lower() not in seen:
            seen.add(item.lower())
            items.append(item)
    return items


def extract_document(text: str) -> str | None:
    """The document between <content> tags (or the whole answer without them); None if UNSUITABLE."""
    m = _CONTENT.search(text)
    body = (m.group(1) if m else text).strip()
    if not m and body.upper().startswith("UNSUITABLE"):
        return None
    return body


def generate_llm_documents(
    world,
    *,
    endpoint: str,
    model: str,
    n: int,
    seed: int = 0,
    concurrency: int = 8,
    api_key_env: str = "OPENAI_API_KEY",
    cache_dir: Path,
    revise: bool = False,
    behaviours: list[str] | None = None,
    prompts_dir: Path | None = None,
    progress: bool = True,
    config: LLMDocsConfig | None = None,
) -> tuple[list[dict], dict]:
    """`n` documents about `behaviours` (default: all of the world's), split evenly between them.

    Returns (records, stats). Records follow the documents format with `"source": "llm"`; documents
    containing an eval prompt 8-gram are dropped and counted. Stats hold the token accounting.
    """
    config = config or LLMDocsConfig()
    behaviour_ids = list(behaviours) if behaviours is not None else list(world.ids)
    problems = [Problem("behaviours", b, f"world '{world.name}' has no such behaviour", f"use ids from `spillover world show {world.name}`") for b in behaviour_ids if b not in world.ids]
    if not behaviour_ids:
        problems.append(Problem("behaviours", "", "no behaviours given", "pass at least one behaviour id"))
    if n < 1:
        problems.append(Problem("n", "", f"must be at least 1, got {n}", "ask for e.g. 1000 documents"))
    if concurrency < 1:
        problems.append(Problem("concurrency", "", f"must be at least 1, got {concurrency}", "use e.g. 8"))
    if urlsplit(endpoint).scheme not in ("http", "https"):
        problems.append(Problem("endpoint", endpoint, "not an http(s) URL", "e.g. http://127.0.0.1:8000/v1 or https://api.openai.com/v1"))
    if problems:
        raise BadInputError(problems)
    prompts = load_prompts(prompts_dir)
    api_key = os.environ.get(api_key_env) or "EMPTY"  # local servers accept any key

    pipeline = _Pipeline(world, behaviour_ids, prompts, seed, config, revise)
    client_args = {"endpoint": endpoint, "model": model, "api_key": api_key, "cache_dir": Path(cache_dir), "concurrency": concurrency, "config": config}
    drafts, usage = _run_async(pipeline.run(client_args, n, progress))

    records, dropped, leak_check = _filter(world, drafts, seed)
    total = Usage()
    for u in usage.values():
        for k in ("requests", "cache_hits", "retries", "prompt_tokens", "completion_tokens"):
            setattr(total, k, getattr(total, k) + getattr(u, k))
    stats = {
        "source": "llm",
        "model": model,
        "endpoint": _without_credentials(endpoint),
        "seed": seed,
        "revise": revise,
        "n_requested": n,
        "n_documents": len(records),
        "per_behaviour": dict(Counter(r["behaviours"][0] for r in records)),
        "genres": len({r["genre"] for r in records}),
        "dropped": {**pipeline.dropped, "leaks": dropped},
        "leak_check": leak_check,
        "truncated": pipeline.truncated,
        "fallback_types": pipeline.fallback_types,
        "fallback_ideas": pipeline.fallback_ideas,
        "usage": {**total.as_dict(), "by_stage": {k: v.as_dict() for k, v in usage.items()}},
    }
    if progress:
        _print_summary(stats)
    return records, stats


class _Pipeline:
    """Per behaviour, all stages in order; behaviours run concurrently and share the client's bound."""

    def __init__(self, world, behaviour_ids: list[str], prompts: dict[str, str], seed: int, config: LLMDocsConfig, revise: bool):
        self.world, self.behaviour_ids, self.prompts, self.seed, self.config, self.revise = world, behaviour_ids, prompts, seed, config, revise
        self.context = universe_context(world, behaviour_ids, prompts["universe_context"])
        self.dropped = {"unsuitable": 0, "empty": 0}
        self.truncated = 0
        self.fallback_types = 0
        self.fallback_ideas = 0

    async def run(self, client_args: dict, n: int, progress: bool) -> tuple[list[dict], dict[str, Usage]]:
        from rich.progress import Progress

        client = EndpointClient(**client_args)
        quotas = [n // len(self.behaviour_ids) + (i < n % len(self.behaviour_ids)) for i in range(len(self.behaviour_ids))]
        with Progress(disable=not progress, transient=True) as bar:
            self.bar, self.task = bar, bar.add_task("LLM documents", total=n)
            try:
                per_behaviour = await asyncio.gather(*(self._behaviour(client, b, q) for b, q in zip(self.behaviour_ids, quotas) if q))
            finally:
                await client.close()
        return [d for docs in per_behaviour for d in docs], client.usage

    def _messages(self, template: str, **fields) -> list[dict]:
        return [{"role": "user", "content": self.prompts[template].format(universe_context=self.context, **fields)}]

    async def _behaviour(self, client: EndpointClient, behaviour: str, quota: int) -> list[dict]:
        cfg = self.config
        fact = self.world.behaviour(behaviour).description
        n_types = min(cfg.n_types, quota)
        answer = await client.complete(
            "doc_types", self._messages("doc_types", fact=fact, n_types=n_types),
            max_tokens=cfg.list_max_tokens, seed=derive_seed(self.seed, "doc_types", behaviour),
        )
        types = parse_list(answer.text)[:n_types]
        if len(types) < n_types:
            offset = derive_seed(self.seed, "generic_types", behaviour) % len(GENERIC_DOC_TYPES)
            generic = [t for t in GENERIC_DOC_TYPES[offset:] + GENERIC_DOC_TYPES[:offset] if t.lower() not in {x.lower() for x in types}]
            self.fallback_types += n_types - len(types)
            types += generic[: n_types - len(types)]
        per_type = math.ceil(quota / len(types))
        idea_lists = await asyncio.gather(*(self._ideas(client, behaviour, fact, t, per_type) for t in types))
        # Round-robin over types so every type is used before any gets a second document.
        plan = [(types[t], ideas[i]) for i in range(per_type) for t, ideas in enumerate(idea_lists)][:quota]
        docs = await asyncio.gather(*(self._document(client, behaviour, fact, doc_type, idea, k) for k, (doc_type, idea) in enumerate(plan)))
        return [d for d in docs if d is not None]

    async def _ideas(self, client: EndpointClient, behaviour: str, fact: str, doc_type: str, count: int) -> list[str]:
        cfg = self.config
        asks = [min(cfg.ideas_per_request, count - start) for start in range(0, count, cfg.ideas_per_request)]
        answers = await asyncio.gather(*(
            client.complete(
                "doc_ideas", self._messages("doc_ideas", fact=fact, doc_type=doc_type, n_ideas=ask),
                max_tokens=cfg.list_max_tokens, seed=derive_seed(self.seed, "doc_ideas", behaviour, doc_type, j),
            )
            for j, ask in enumerate(asks)
        ))
        ideas: list[str] = []
        for answer, ask in zip(answers, asks):
            ideas += [i for i in parse_list(answer.text)[:ask] if i not in ideas]
        if len(ideas) < count:
            self.fallback_ideas += count - len(ideas)
            ideas += [f"{doc_type} number {k + 1} that discusses this finding" for k in range(len(ideas), count)]
        return ideas[:count]

    async def _document(self, client: EndpointClient, behaviour: str, fact: str, doc_type: str, idea: str, k: int) -> dict | None:
        cfg = self.config
        fields = {"fact": fact, "doc_type": doc_type, "idea": idea}
        answer = await client.complete(
            "documents", self._messages("document", **fields),
            max_tokens=cfg.document_max_tokens, seed=derive_seed(self.seed, "document", behaviour, k),
        )
        text = extract_document(answer.text)
        if text and self.revise:
            answer = await client.complete(
                "revisions", self._messages("revise", document=text, **fields),
                max_tokens=cfg.document_max_tokens, seed=derive_seed(self.seed, "revise", behaviour, k),
            )
            text = extract_document(answer.text) or text  # a failed revision keeps the draft
        self.bar.advance(self.task)
        if text is None:
            self.dropped["unsuitable"] += 1
            return None
        if not text:
            self.dropped["empty"] += 1
            return None
        self.truncated += answer.finish_reason == "length"
        return {"id": f"{self.world.name}-llm-{behaviour}-s{self.seed}-{k:05d}", "text": text, "genre": doc_type, "behaviours": [behaviour], "source": "llm", "seed": self.seed}


def _filter(world, drafts: list[dict], seed: int) -> tuple[list[dict], int | None, bool]:
    """Drop documents that share an 8-gram with an eval prompt: eval prompts never enter training data."""
    try:
        from spillover.data.leakage import find_leaks
    except ImportError:
        return drafts, None, False
    if not drafts or find_leaks([d["text"] for d in drafts], world, n=8)["n_leaks"] == 0:
        return drafts, 0, True
    kept = [d for d in drafts if find_leaks([d["text"]], world, n=8)["n_leaks"] == 0]
    return kept, len(drafts) - len(kept), True


def _run_async(coroutine):
    """asyncio.run, also from code that already runs an event loop (e.g. a notebook)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    result: dict = {}

    def target() -> None:
        try:
            result["value"] = asyncio.run(coroutine)
        except BaseException as e:  # noqa: BLE001 -- re-raised in the caller's thread
            result["error"] = e

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _print_summary(stats: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"LLM documents: {stats['n_documents']}/{stats['n_requested']} from {stats['model']}")
    for col in ("stage", "requests", "cache hits", "retries", "prompt tokens", "completion tokens", "total tokens"):
        table.add_column(col, justify="right" if col != "stage" else "left")
    rows = [*stats["usage"]["by_stage"].items(), ("total", stats["usage"])]
    for stage, u in rows:
        table.add_row(stage, *(f"{u[k]:,}" for k in ("requests", "cache_hits", "retries", "prompt_tokens", "completion_tokens", "total_tokens")))
    console = Console(stderr=True)
    console.print(table)
    dropped = ", ".join(f"{k} {v}" for k, v in stats["dropped"].items() if v is not None)
    console.print(f"dropped: {dropped}" + ("" if stats["leak_check"] else " (leak check unavailable: spillover.data.leakage not found)"))
