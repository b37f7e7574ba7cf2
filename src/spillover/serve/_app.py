"""An OpenAI-compatible chat server over any spillover model, with request batching.

Requests arrive concurrently; one asyncio task collects them for a few milliseconds, groups them
by sampling parameters and runs each group as a single `spillover.models.generate` batch in one
worker thread, so exactly one torch job runs at a time.

Seeds are best effort, as with OpenAI: a request that runs alone with a seed is reproducible;
requests with different seeds still share a batch (throughput first), sampled under one seed
derived from all of theirs.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from spillover._io import derive_seed
from spillover.models import LoadedModel, chat_prompt, generate

ROLES = ("system", "developer", "user", "assistant")
STREAM_CHUNK_CHARS = 16


class ApiError(Exception):
    """An error answered in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def response(self) -> JSONResponse:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        body = {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status)


class ChatRequest(BaseModel):
    # Unknown OpenAI fields (user, logprobs=false, ...) are accepted and ignored, as vLLM does.
    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[dict[str, Any]]
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    seed: int | None = None
    n: int = Field(1, ge=1, le=64)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None


@dataclass(frozen=True)
class Sampling:
    """Requests with equal sampling parameters share one `generate` call."""

    temperature: float
    top_p: float
    max_tokens: int


@dataclass
class Job:
    conversation: list[dict]
    sampling: Sampling
    seed: int
    n: int
    future: asyncio.Future


@dataclass
class ServerStats:
    """Counters for monitoring (and for tests that check batching and resume)."""

    requests: int = 0
    generate_calls: int = 0
    sequences: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    batch_sizes: list[int] = field(default_factory=list)


class Batcher:
    """Collects jobs for `window_s`, then runs them grouped by sampling parameters, one group per call."""

    def __init__(self, lm: LoadedModel, stats: ServerStats, *, max_batch: int, window_s: float):
        self.lm, self.stats, self.max_batch, self.window_s = lm, stats, max_batch, window_s
        self.queue: asyncio.Queue[Job] = asyncio.Queue()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spillover-generate")
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
        self.executor.shutdown(wait=True)

    async def submit(self, conversation: list[dict], sampling: Sampling, seed: int, n: int) -> list:
        future = asyncio.get_running_loop().create_future()
        await self.queue.put(Job(conversation, sampling, seed, n, future))
        return await future

    async def _collect(self) -> list[Job]:
        # Wait for one job, give concurrent requests a short window to join it, then take what fits.
        jobs = [await self.queue.get()]
        await asyncio.sleep(self.window_s)
        while sum(j.n for j in jobs) < self.max_batch and not self.queue.empty():
            jobs.append(self.queue.get_nowait())
        return jobs

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = await self._collect()
            groups: dict[Sampling, list[Job]] = defaultdict(list)
            for job in jobs:
                groups[job.sampling].append(job)
            for sampling, group in groups.items():
                conversations = [job.conversation for job in group for _ in range(job.n)]
                try:
                    generations = await loop.run_in_executor(self.executor, self._generate, conversations, sampling, _batch_seed(group))
                except Exception as e:  # noqa: BLE001 -- a failed batch answers its requests with 500; the server lives on
                    for job in group:
                        if not job.future.done():
                            job.future.set_exception(e)
                    continue
                start = 0
                for job in group:
                    if not job.future.done():  # a client that went away cancelled its future
                        job.future.set_result(generations[start : start + job.n])
                    start += job.n

    def _generate(self, conversations: list[list[dict]], sampling: Sampling, seed: int) -> list:
        self.stats.generate_calls += 1
        self.stats.sequences += len(conversations)
        self.stats.batch_sizes.append(len(conversations))
        return generate(
            self.lm,
            conversations,
            max_new_tokens=sampling.max_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            seed=seed,
            batch_size=self.max_batch,
        )


def _batch_seed(group: list[Job]) -> int:
    """`generate` takes one seed per batch: a request's own seed when it runs alone (or all agree),
    else one derived from every member's, so the same batch always samples the same answers."""
    seeds = sorted({job.seed for job in group})
    return seeds[0] if len(seeds) == 1 else derive_seed(0, *seeds)


def create_app(
    lm: LoadedModel,
    served_name: str,
    max_tokens_limit: int = 1024,
    *,
    max_batch: int = 8,
    batch_window_s: float = 0.01,
) -> FastAPI:
    """The FastAPI app: `POST /v1/chat/completions`, `GET /v1/models`, `GET /health`.

    `app.state.stats` (a ServerStats) counts requests, generate calls and tokens.
    """
    stats = ServerStats()
    created = int(time.time())
    context_length = getattr(lm.model.config, "max_position_embeddings", None)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher = Batcher(lm, stats, max_batch=max_batch, window_s=batch_window_s)
        batcher.start()
        app.state.batcher = batcher
        yield
        await batcher.stop()

    app = FastAPI(title="spillover", lifespan=lifespan)
    app.state.stats = stats

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "model": served_name}

    def model_card() -> dict:
        return {"id": served_name, "object": "model", "created": created, "owned_by": "spillover", "max_model_len": context_length}

    @app.get("/v1/models")
    async def list_models() -> dict:
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{model_id:path}")
    async def get_model(model_id: str) -> dict:
        if model_id != served_name:
            raise ApiError(404, f"The model '{model_id}' does not exist; this server serves '{served_name}'.", param="model", code="model_not_found")
        return model_card()

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        stats.requests += 1
        body = await _parse_request(request)
        if body.model != served_name:
            raise ApiError(404, f"The model '{body.model}' does not exist; this server serves '{served_name}'.", param="model", code="model_not_found")
        conversation = _conversation(body.messages)
        max_tokens = body.max_completion_tokens or body.max_tokens or max_tokens_limit
        if max_tokens > max_tokens_limit:
            param = "max_completion_tokens" if body.max_completion_tokens else "max_tokens"
            raise ApiError(400, f"{param}={max_tokens} is over this server's limit of {max_tokens_limit} (start it with a higher --max-tokens-limit).", param=param, code="max_tokens_too_large")
        prompt_tokens = len(lm.tokenizer(chat_prompt(lm.tokenizer, conversation), add_special_tokens=False)["input_ids"])
        if context_length and prompt_tokens + max_tokens > context_length:
            raise ApiError(400, f"This model's context is {context_length} tokens; the prompt has {prompt_tokens} and max_tokens is {max_tokens}.", param="messages", code="context_length_exceeded")
        # No seed means a fresh one per request, as with OpenAI: repeated calls give different samples.
        seed = body.seed if body.seed is not None else random.randrange(2**31)
        # Greedy decoding ignores top_p: all greedy requests of one length limit share a batch.
        sampling = Sampling(body.temperature, body.top_p if body.temperature > 0 else 1.0, max_tokens)
        try:
            generations = await request.app.state.batcher.submit(conversation, sampling, seed, body.n)
        except Exception as e:
            raise ApiError(500, f"generation failed: {type(e).__name__}: {e}", code="generation_failed") from e
        stops = [body.stop] if isinstance(body.stop, str) else (body.stop or [])
        choices = [_choice(i, g.text, g.truncated, stops) for i, g in enumerate(generations)]
        completion_tokens = sum(g.n_tokens for g in generations)
        stats.prompt_tokens += prompt_tokens
        stats.completion_tokens += completion_tokens
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens}
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        if body.stream:
            include_usage = bool((body.stream_options or {}).get("include_usage"))
            events = _stream_events(completion_id, served_name, choices, usage if include_usage else None)
            return StreamingResponse(events, media_type="text/event-stream")
        return {
            "id": completion_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": served_name,
            "choices": [
                {"index": c["index"], "message": {"role": "assistant", "content": c["text"]}, "finish_reason": c["finish_reason"], "logprobs": None}
                for c in choices
            ],
            "usage": usage,
        }

    return app


async def _parse_request(request: Request) -> ChatRequest:
    raw = await request.body()
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ApiError(400, f"The request body is not valid JSON ({e}).", code="invalid_json") from None
    if not isinstance(data, dict):
        raise ApiError(400, "The request body must be a JSON object.", code="invalid_json")
    if not data.get("messages"):
        raise ApiError(400, "'messages' is required and must be a non-empty list of {role, content} objects.", param="messages", code="missing_messages")
    try:
        return ChatRequest.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        param = ".".join(str(p) for p in err["loc"])
        raise ApiError(400, f"Invalid value for '{param}': {err['msg']}.", param=param, code="invalid_value") from None


def _conversation(messages: list[dict[str, Any]]) -> list[dict]:
    """Plain {role, content} turns for the chat template; content parts of type text are joined."""
    out = []
    for i, m in enumerate(messages):
        role = m.get("role")
        if role not in ROLES:
            raise ApiError(400, f"messages[{i}].role is {role!r}; use one of {', '.join(ROLES)}.", param=f"messages.{i}.role", code="invalid_role")
        content = m.get("content")
        if isinstance(content, list):
            if not all(isinstance(p, dict) and p.get("type") == "text" for p in content):
                raise ApiError(400, f"messages[{i}].content: only text parts are supported.", param=f"messages.{i}.content", code="invalid_content")
            content = "".join(str(p.get("text", "")) for p in content)
        if not isinstance(content, str):
            raise ApiError(400, f"messages[{i}].content must be a string or a list of text parts.", param=f"messages.{i}.content", code="invalid_content")
        out.append({"role": "system" if role == "developer" else role, "content": content})
    if out[-1]["role"] == "assistant":
        raise ApiError(400, "The last message must not be from the assistant (continuing a reply is not supported).", param="messages", code="invalid_role")
    return out


def _choice(index: int, text: str, truncated: bool, stops: list[str]) -> dict:
    cut = min((text.find(s) for s in stops if s and s in text), default=-1)
    if cut >= 0:
        return {"index": index, "text": text[:cut], "finish_reason": "stop"}
    return {"index": index, "text": text, "finish_reason": "length" if truncated else "stop"}


async def _stream_events(completion_id: str, model: str, choices: list[dict], usage: dict | None):
    """OpenAI's SSE format: a role delta, content deltas, a finish chunk per choice, then [DONE]."""
    created = int(time.time())

    def chunk(choice_list: list[dict], usage_field: dict | None = None) -> str:
        data: dict[str, Any] = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": choice_list}
        if usage is not None:
            data["usage"] = usage_field
        return f"data: {json.dumps(data)}\n\n"

    for c in choices:
        yield chunk([{"index": c["index"], "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        text = c["text"]
        for start in range(0, len(text), STREAM_CHUNK_CHARS):
            yield chunk([{"index": c["index"], "delta": {"content": text[start : start + STREAM_CHUNK_CHARS]}, "finish_reason": None}])
        yield chunk([{"index": c["index"], "delta": {}, "finish_reason": c["finish_reason"]}])
    if usage is not None:
        yield chunk([], usage)
    yield "data: [DONE]\n\n"
