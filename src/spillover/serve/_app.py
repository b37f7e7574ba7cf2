"""An OpenAI-compatible chat server over any spillover model, with request batching.

The event loop only moves bytes: parsing, validation and tokenization run in worker threads, and
generation in the batcher's single generate thread (see `_batcher`). Bodies are capped before they
are read (`_limits.BodySizeLimit`); a client that goes away cancels its share of the work; streamed
answers are sent as they are decoded.

Seeds are best effort, as with OpenAI: a request that runs alone with a seed is reproducible;
requests with different seeds still share a batch (throughput first), sampled under one seed
derived from all of theirs.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.responses import StreamingResponse

from spillover.models import Generation, LoadedModel, chat_prompt, stop_token_ids

from ._batcher import Batcher, ChoiceText, Job, Sampling, ServerStats
from ._limits import BodySizeLimit, RequestLimits
from ._protocol import (
    ApiError,
    ChatRequest,
    choice,
    conversation,
    parse_chat_request,
    sse_chunk,
)

CLIENT_CLOSED = 499  # nginx's status for a request whose client went away; no one receives it


def create_app(
    lm: LoadedModel,
    served_name: str,
    max_tokens_limit: int = 1024,
    *,
    max_batch: int = 8,
    batch_window_s: float = 0.01,
    limits: RequestLimits | None = None,
) -> FastAPI:
    """The FastAPI app: `POST /v1/chat/completions`, `GET /v1/models`, `GET /health`.

    `app.state.stats` (a ServerStats) counts requests, generate calls, decoding steps and tokens.
    """
    limits = limits or RequestLimits()
    stats = ServerStats()
    created = int(time.time())
    context_length = getattr(lm.model.config, "max_position_embeddings", None)
    end_ids = set(stop_token_ids(lm))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher = Batcher(lm, stats, max_batch=max_batch, window_s=batch_window_s)
        batcher.start()
        app.state.batcher = batcher
        yield
        await batcher.stop()

    app = FastAPI(title="spillover", lifespan=lifespan)
    app.add_middleware(BodySizeLimit, max_bytes=limits.max_body_bytes)
    app.state.stats = stats
    app.state.limits = limits

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
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
        turns = conversation(body.messages)
        max_tokens = body.max_completion_tokens or body.max_tokens or max_tokens_limit
        if max_tokens > max_tokens_limit:
            param = "max_completion_tokens" if body.max_completion_tokens else "max_tokens"
            raise ApiError(400, f"{param}={max_tokens} is over this server's limit of {max_tokens_limit} (start it with a higher --max-tokens-limit).", param=param, code="max_tokens_too_large")
        prompt_tokens = await asyncio.to_thread(_prompt_tokens, lm, turns)
        if context_length and prompt_tokens + max_tokens > context_length:
            raise ApiError(400, f"This model's context is {context_length} tokens; the prompt has {prompt_tokens} and max_tokens is {max_tokens}.", param="messages", code="context_length_exceeded")
        # No seed means a fresh one per request, as with OpenAI: repeated calls give different samples.
        # Seeds are folded to 32 bits: generate derives its torch seeds from them by multiplication.
        seed = body.seed % 2**32 if body.seed is not None else random.randrange(2**31)
        # Greedy decoding ignores top_p: all greedy requests of one length limit share a batch.
        sampling = Sampling(body.temperature, body.top_p if body.temperature > 0 else 1.0, max_tokens)
        stops = body.stop_strings()
        job = Job(turns, sampling, seed, body.n, asyncio.get_running_loop().create_future())
        if body.stream:
            job.texts, job.deltas = [ChoiceText(lm, stops, end_ids) for _ in range(body.n)], asyncio.Queue()
        request.app.state.batcher.submit(job)
        completion = Completion(f"chatcmpl-{uuid.uuid4().hex}", served_name, job, stops, prompt_tokens, stats)
        if body.stream:
            return StreamingResponse(completion.events(bool((body.stream_options or {}).get("include_usage"))), media_type="text/event-stream")
        generations = await _answer_unless_gone(request, job, stats)
        return completion.body(generations) if generations is not None else Response(status_code=CLIENT_CLOSED)

    return app


async def _parse_request(request: Request) -> ChatRequest:
    raw = await request.body()  # at most the body cap: BodySizeLimit refuses anything larger
    return await asyncio.to_thread(parse_chat_request, raw, request.app.state.limits)


def _prompt_tokens(lm: LoadedModel, turns: list[dict]) -> int:
    """Runs in a worker thread: a long prompt's chat template and tokenization take a while."""
    return len(lm.tokenizer(chat_prompt(lm.tokenizer, turns), add_special_tokens=False)["input_ids"])


async def _answer_unless_gone(request: Request, job: Job, stats: ServerStats) -> list[Generation] | None:
    """The job's generations, or None (and the job cancelled) when the client disconnects first."""
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({job.future, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not job.future.done():  # the client left (or the server is stopping): stop its work
            job.cancelled = True
            job.future.cancel()
            stats.abandoned += 1
    if job.future.cancelled():
        return None
    try:
        return job.future.result()
    except Exception as e:
        raise ApiError(500, f"generation failed: {type(e).__name__}: {e}", code="generation_failed") from e


async def _disconnected(request: Request) -> None:
    # The body has been read, so `receive` now waits until the client disconnects.
    while (await request.receive())["type"] != "http.disconnect":
        pass


class Completion:
    """One request's answer, as a chat.completion body or as the SSE events of a stream."""

    def __init__(self, completion_id: str, model: str, job: Job, stops: list[str], prompt_tokens: int, stats: ServerStats):
        self.id, self.model, self.job, self.stops, self.prompt_tokens, self.stats = completion_id, model, job, stops, prompt_tokens, stats
        self.created = int(time.time())

    def _finish(self, generations: list[Generation]) -> tuple[list[dict], dict]:
        completion_tokens = sum(g.n_tokens for g in generations)
        self.stats.prompt_tokens += self.prompt_tokens
        self.stats.completion_tokens += completion_tokens
        usage = {"prompt_tokens": self.prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": self.prompt_tokens + completion_tokens}
        return [choice(i, g.text, g.truncated, self.stops) for i, g in enumerate(generations)], usage

    def body(self, generations: list[Generation]) -> dict:
        choices, usage = self._finish(generations)
        messages = [
            {"index": c["index"], "message": {"role": "assistant", "content": c["text"]}, "finish_reason": c["finish_reason"], "logprobs": None}
            for c in choices
        ]
        return {"id": self.id, "object": "chat.completion", "created": self.created, "model": self.model, "choices": messages, "usage": usage}

    async def events(self, include_usage: bool):
        """OpenAI's SSE stream: a role delta per choice, content deltas as tokens are decoded, a
        finish chunk per choice, an optional usage chunk, then [DONE]."""

        def chunk(choices: list[dict], usage: dict | None = None) -> str:
            return sse_chunk(self.id, self.model, self.created, choices, usage, with_usage=include_usage)

        def delta(index: int, **fields) -> dict:
            return {"index": index, "delta": fields, "finish_reason": None}

        job = self.job
        try:
            for k in range(job.n):
                yield chunk([delta(k, role="assistant", content="")])
            while (new_text := await job.deltas.get()) is not None:
                for k, text in new_text:
                    yield chunk([delta(k, content=text)])
            try:
                generations = job.future.result()
            except Exception as e:  # noqa: BLE001 -- the status line is sent; the error goes in the stream
                error = ApiError(500, f"generation failed: {type(e).__name__}: {e}", code="generation_failed")
                yield f"data: {error.response().body.decode()}\n\n"
                return
            choices, usage = self._finish(generations)
            for c in choices:
                if rest := job.texts[c["index"]].finish(c["text"]):
                    yield chunk([delta(c["index"], content=rest)])
                yield chunk([{"index": c["index"], "delta": {}, "finish_reason": c["finish_reason"]}])
            if include_usage:
                yield chunk([], usage)
            yield "data: [DONE]\n\n"
        finally:
            if not job.future.done():  # the client went away mid-stream: stop generating for it
                job.cancelled = True
                self.stats.abandoned += 1
