"""`spillover serve`: an OpenAI-compatible server over the tiny model, checked with the real client."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import typer
from typer.testing import CliRunner

from spillover.serve import create_app, serve_in_thread

MAX_TOKENS_LIMIT = 64


@pytest.fixture(scope="module")
def server(tiny_lm):
    app = create_app(tiny_lm, "tiny", MAX_TOKENS_LIMIT, max_batch=8, batch_window_s=0.05)
    with serve_in_thread(app) as base_url:
        yield app, base_url


@pytest.fixture(scope="module")
def client(server):
    from openai import OpenAI

    return OpenAI(base_url=server[1], api_key="x", max_retries=0)


def test_chat_completion_answers_the_official_client(client):
    r = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Hello there"}], max_tokens=12, temperature=1.0, seed=0)
    assert r.object == "chat.completion" and r.model == "tiny"
    assert len(r.choices) == 1
    choice = r.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert 1 <= r.usage.completion_tokens <= 12
    assert r.usage.prompt_tokens > 3  # the chat template's system prompt plus the message
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    # A random tiny model never emits its end-of-turn token in 12 steps: the answer is cut.
    assert choice.finish_reason == "length" and r.usage.completion_tokens == 12


def test_seeded_requests_repeat_and_n_gives_n_choices(client):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}]
    a = client.chat.completions.create(model="tiny", messages=messages, max_tokens=8, temperature=1.0, seed=7)
    again = client.chat.completions.create(model="tiny", messages=messages, max_tokens=8, temperature=1.0, seed=7)
    assert a.choices[0].message.content and again.choices[0].message.content == a.choices[0].message.content
    b = client.chat.completions.create(model="tiny", messages=messages, max_tokens=8, temperature=0, n=2)
    assert [c.index for c in b.choices] == [0, 1]
    assert b.choices[0].message.content == b.choices[1].message.content  # greedy: n identical answers
    assert b.usage.completion_tokens == 16

    sampled = client.chat.completions.create(model="tiny", messages=messages, max_completion_tokens=16, temperature=1.0, seed=3, n=3)
    assert len(sampled.choices) == 3
    assert len({c.message.content for c in sampled.choices}) > 1  # samples of one batch differ


def test_streaming_sends_openai_chunks_that_join_to_the_answer(client):
    messages = [{"role": "user", "content": "Tell me a story."}]
    full = client.chat.completions.create(model="tiny", messages=messages, max_tokens=20, temperature=1.0, seed=1)
    stream = client.chat.completions.create(
        model="tiny", messages=messages, max_tokens=20, temperature=1.0, seed=1, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [full.choices[0].finish_reason]
    assert chunks[-1].usage.completion_tokens == full.usage.completion_tokens


def test_raw_stream_ends_with_done(server):
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "temperature": 0, "stream": True}
    with httpx.stream("POST", f"{server[1]}/chat/completions", json=body, timeout=120) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = [line for line in r.iter_lines() if line]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    assert json.loads(events[0][6:])["choices"][0]["delta"]["role"] == "assistant"


def test_models_lists_the_served_name(client, server):
    models = client.models.list()
    assert [m.id for m in models.data] == ["tiny"]
    assert httpx.get(f"{server[1]}/models/tiny").json()["id"] == "tiny"
    assert httpx.get(f"{server[1]}/models/other").status_code == 404


@pytest.mark.parametrize(
    "body, status, code, param",
    [
        ({"model": "tiny"}, 400, "missing_messages", "messages"),
        ({"model": "tiny", "messages": []}, 400, "missing_messages", "messages"),
        ({"model": "tiny", "messages": [{"role": "robot", "content": "hi"}]}, 400, "invalid_role", "messages.0.role"),
        ({"model": "tiny", "messages": [{"role": "user", "content": 3}]}, 400, "invalid_content", "messages.0.content"),
        ({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}, 404, "model_not_found", "model"),
        ({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": MAX_TOKENS_LIMIT + 1}, 400, "max_tokens_too_large", "max_tokens"),
        ({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 10_000}, 400, "max_tokens_too_large", "max_completion_tokens"),
        ({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "temperature": -1}, 400, "invalid_value", "temperature"),
    ],
)
def test_bad_requests_get_openai_shaped_errors(server, body, status, code, param):
    r = httpx.post(f"{server[1]}/chat/completions", json=body, timeout=30)
    assert r.status_code == status
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == code and error["param"] == param
    assert error["message"]


def test_invalid_json_body_is_a_400(server):
    r = httpx.post(f"{server[1]}/chat/completions", content=b'{"model": "tiny", messages', headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_json"


def test_official_client_raises_on_unknown_model(client):
    import openai

    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}], max_tokens=4)


def test_concurrent_requests_share_generate_batches(server):
    app, base_url = server
    stats = app.state.stats
    before_calls, before_requests = stats.generate_calls, stats.requests

    async def ask_all() -> list[dict]:
        async with httpx.AsyncClient(timeout=120) as http:
            bodies = [
                {"model": "tiny", "messages": [{"role": "user", "content": f"Question number {i}?"}], "max_tokens": 6, "temperature": 1.0, "seed": i}
                for i in range(6)
            ]
            responses = await asyncio.gather(*(http.post(f"{base_url}/chat/completions", json=b) for b in bodies))
            return [r.json() for r in responses]

    answers = asyncio.run(ask_all())
    assert all(a["choices"][0]["message"]["content"] for a in answers)
    assert stats.requests - before_requests == 6
    calls = stats.generate_calls - before_calls
    assert 1 <= calls < 6
    assert max(stats.batch_sizes[-calls:]) > 1


def test_each_request_gets_its_own_answers_back(tiny_lm, monkeypatch):
    """Routing through a shared batch: a fake generate echoes each conversation, tagged by its copy."""
    from spillover.models import Generation
    from spillover.serve import _app

    calls = []

    def echo(lm, conversations, **kwargs):
        calls.append(len(conversations))
        seen: dict[str, int] = {}
        out = []
        for c in conversations:
            text = c[-1]["content"]
            seen[text] = seen.get(text, 0) + 1
            out.append(Generation(f"{text}#{seen[text]}", 3, False))
        return out

    monkeypatch.setattr(_app, "generate", echo)
    app = create_app(tiny_lm, "tiny", MAX_TOKENS_LIMIT, max_batch=32, batch_window_s=0.1)
    with serve_in_thread(app) as base_url:

        async def ask_all() -> list[dict]:
            async with httpx.AsyncClient(timeout=60) as http:
                rs = await asyncio.gather(*(
                    http.post(f"{base_url}/chat/completions", json={"model": "tiny", "messages": [{"role": "user", "content": f"q{i}"}], "max_tokens": 4, "temperature": 0.5, "seed": i, "n": 1 + i % 3})
                    for i in range(6)
                ))
                return [r.json() for r in rs]

        answers = asyncio.run(ask_all())
    for i, a in enumerate(answers):
        assert [c["message"]["content"] for c in a["choices"]] == [f"q{i}#{k + 1}" for k in range(1 + i % 3)]
        assert [c["finish_reason"] for c in a["choices"]] == ["stop"] * (1 + i % 3)
        assert a["usage"]["completion_tokens"] == 3 * (1 + i % 3)
    assert sum(calls) == sum(1 + i % 3 for i in range(6))
    assert len(calls) < 6


def test_serve_command_validates_options():
    from spillover.cli._serve import register

    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)  # a second command keeps `serve` a named subcommand
    result = CliRunner().invoke(app, ["serve", "--model", "tiny", "--max-batch", "0"])
    assert result.exit_code != 0
    assert "--max-batch" in str(result.exception) or "--max-batch" in result.output
    help_text = CliRunner().invoke(app, ["serve", "--help"]).output
    for option in ("--model", "--host", "--port", "--max-batch", "--max-tokens-limit", "--served-name"):
        assert option in help_text


def test_the_openai_eval_backend_samples_from_spillover_serve(server, tmp_path):
    # The GPU path is `vllm serve` + `spillover eval --backend openai`; `spillover serve` stands in for
    # vLLM here: the same backend and official client against a real server over the tiny model.
    from spillover._io import read_json, read_jsonl
    from spillover.cli import _eval as cli_eval
    from spillover.evaluation import OpenAIBackend
    from spillover.world import load_world, write_world_template

    _, base_url = server
    backend = OpenAIBackend(base_url, "tiny", concurrency=4)
    out = backend.sample(["Hello there", "Tell me a story."], n=2, temperature=1.0, max_new_tokens=6, seed=3)
    assert [len(gs) for gs in out] == [2, 2]
    for g in (g for gs in out for g in gs):
        assert 1 <= g.n_tokens <= 6 and g.truncated == (g.n_tokens == 6)

    world = write_world_template(tmp_path / "w.yaml")
    app = typer.Typer()
    cli_eval.register(app)
    result = CliRunner().invoke(app, ["--backend", "openai", "--base-url", base_url, "--model", "tiny", "--world", str(world),
                                      "--out", str(tmp_path / "eval"), "--max-new-tokens", "4", "--temperature", "1.0"])
    assert result.exit_code == 0, result.output
    samples = read_jsonl(tmp_path / "eval" / "samples.jsonl")
    assert len(samples) == len(load_world(world).all_eval_prompts())
    metrics = read_json(tmp_path / "eval" / "metrics.json")
    assert metrics["per_role"]["test"]["n"] + metrics["per_role"]["train"]["n"] == len(samples)
    assert all(s["truncated"] for s in samples)  # a random model never stops within 4 tokens
