"""Sampling backends: one interface over local HF generation, vLLM and OpenAI-compatible endpoints.

`backend.sample(conversations, n=K, ...)` returns, for each conversation, K `Generation`s
(text, n_tokens, truncated). `truncated` means the answer hit `max_new_tokens` before its
end-of-turn, whichever backend produced it, so every stage can count cut answers the same way.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from spillover.errors import BadInputError, Problem, describe_api_error
from spillover.models import (
    TURN_END_TEXT,
    Generation,
    LoadedModel,
    generate,
    read_chat_template,
)

Conversation = list[dict] | str


class Backend(Protocol):
    name: str

    def sample(
        self,
        conversations: Sequence[Conversation],
        *,
        n: int = 1,
        temperature: float = 0.0,
        max_new_tokens: int = 256,
        seed: int = 0,
    ) -> list[list[Generation]]: ...

    def describe(self) -> dict: ...


def _messages(conversation: Conversation) -> list[dict]:
    return [{"role": "user", "content": conversation}] if isinstance(conversation, str) else list(conversation)


def _check_n(n: int) -> None:
    if n < 1:
        raise BadInputError(Problem("", "samples", f"need at least 1 sample per prompt, got {n}", "pass --samples 1 or more"))


class HFBackend:
    """Local generation through `spillover.models.generate` (batched, left padded, length sorted, KV cache)."""

    name = "hf"

    def __init__(self, lm: LoadedModel, *, batch_size: int = 16):
        self.lm = lm
        self.batch_size = batch_size

    def sample(self, conversations, *, n=1, temperature=0.0, max_new_tokens=256, seed=0):
        _check_n(n)
        conversations = list(conversations)
        if temperature <= 0:
            # Greedy decoding gives the same answer K times: generate once, repeat.
            once = generate(self.lm, conversations, max_new_tokens=max_new_tokens, seed=seed, batch_size=self.batch_size)
            return [[g] * n for g in once]
        # Copies of one prompt have the same length, so length sorting puts them in one batch.
        flat = [c for c in conversations for _ in range(n)]
        gens = generate(
            self.lm, flat, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed, batch_size=self.batch_size
        )
        return [gens[i * n : (i + 1) * n] for i in range(len(conversations))]

    def describe(self) -> dict:
        return {"backend": self.name, "model": self.lm.spec, "path": str(self.lm.path), "batch_size": self.batch_size}


class VLLMBackend:
    """vLLM offline engine (GPU). The engine starts on first use; `vllm` is imported only then."""

    name = "vllm"

    def __init__(self, model_path: str, *, dtype: str = "auto", gpu_memory_utilization: float = 0.85, chat_template: str | None = None, **engine_kwargs):
        self.model_path = str(model_path)
        self.chat_template = read_chat_template(chat_template) if chat_template else None  # None: the model's own
        self.engine_kwargs = {"dtype": dtype, "gpu_memory_utilization": gpu_memory_utilization, **engine_kwargs}
        self._llm = None
        self._vllm = None

    def _module(self):
        if self._vllm is None:
            try:
                import vllm
            except ImportError:
                raise BadInputError(
                    Problem("", "--backend", "vllm is not installed", "pip install 'spillover[vllm]' on a GPU machine, or use --backend hf")
                ) from None
            self._vllm = vllm
        return self._vllm

    def engine_args(self, seed: int) -> dict:
        return {"model": self.model_path, "seed": seed, **self.engine_kwargs}

    def sampling_params(self, *, n: int, temperature: float, max_new_tokens: int, seed: int):
        _check_n(n)
        end_text = TURN_END_TEXT.get(self.chat_template or "", ())  # a base model's next user turn ends its answer
        return self._module().SamplingParams(
            n=n, temperature=max(temperature, 0.0), top_p=1.0, max_tokens=max_new_tokens, seed=seed, **({"stop": list(end_text)} if end_text else {})
        )

    def sample(self, conversations, *, n=1, temperature=0.0, max_new_tokens=256, seed=0):
        params = self.sampling_params(n=n, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)
        if self._llm is None:
            self._llm = self._module().LLM(**self.engine_args(seed))
        outputs = self._llm.chat([_messages(c) for c in conversations], sampling_params=params, use_tqdm=False, chat_template=self.chat_template)
        return [
            [Generation(o.text.strip(), len(o.token_ids), o.finish_reason == "length") for o in request.outputs]
            for request in outputs
        ]

    def describe(self) -> dict:
        return {"backend": self.name, "model": self.model_path, **self.engine_kwargs}


class OpenAIBackend:
    """Any OpenAI-compatible chat endpoint (`spillover serve`, vLLM's server, a hosted API).

    One request per (conversation, sample) with `n=1` and seed `seed + sample`, so the answer is
    the same on servers that ignore `n`, and each sample's token count is exact.
    """

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        *,
        concurrency: int = 8,
        timeout: float = 120.0,
        http_client=None,
    ):
        from openai import OpenAI

        self.base_url = base_url
        self.model = model
        self.api_key_env = api_key_env
        self.concurrency = concurrency
        # Local servers accept any key; a hosted API without its key fails on the first request.
        self._api_key = os.environ.get(api_key_env) or None  # kept only to mask it in error messages
        self.client = OpenAI(base_url=base_url, api_key=self._api_key or "not-needed", timeout=timeout, http_client=http_client, max_retries=2)

    def request(self, conversation: Conversation, *, temperature: float, max_new_tokens: int, seed: int) -> dict:
        return {
            "model": self.model,
            "messages": _messages(conversation),
            "n": 1,
            "temperature": max(temperature, 0.0),
            "max_tokens": max_new_tokens,
            "seed": seed,
        }

    def _one(self, kwargs: dict) -> Generation:
        import openai

        try:
            reply = self.client.chat.completions.create(**kwargs)
        except (openai.APIConnectionError, openai.APIStatusError) as e:  # timeouts are connection errors
            message = describe_api_error(e, api_key=self._api_key, model=self.model)
            raise BadInputError(Problem(self.base_url, "", message, f"check that the server is up and --api-key-env names its key ({self.api_key_env})")) from None
        choice = reply.choices[0]
        text = (choice.message.content or "").strip()
        n_tokens = reply.usage.completion_tokens if reply.usage else 0
        return Generation(text, n_tokens, choice.finish_reason == "length")

    def sample(self, conversations, *, n=1, temperature=0.0, max_new_tokens=256, seed=0):
        _check_n(n)
        conversations = list(conversations)
        requests = [
            self.request(c, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed + j)
            for c in conversations
            for j in range(n)
        ]
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            futures = [pool.submit(self._one, r) for r in requests]
            try:
                gens = [f.result() for f in futures]
            except BaseException:  # the first failure (or Ctrl-C) stops the requests not yet sent
                pool.shutdown(cancel_futures=True)
                raise
        return [gens[i * n : (i + 1) * n] for i in range(len(conversations))]

    def describe(self) -> dict:
        return {"backend": self.name, "model": self.model, "base_url": self.base_url}
