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
    from spillover.serve import _batcher

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

    monkeypatch.setattr(_batcher, "generate", echo)
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
    for option in ("--model", "--host", "--port", "--max-batch", "--max-tokens-limit", "--served-name", "--max-body-bytes", "--max-n", "--max-messages"):
        assert option in help_text


# --- bounded resources: body cap, request bounds, a free event loop, cancellation, streaming ----

LONG_MAX_TOKENS = 2000  # far more decoding steps than any test below lets run
BODY_CAP = 64 * 1024
SMALL_LIMITS = {"max_body_bytes": BODY_CAP, "max_n": 8, "max_messages": 16}


@pytest.fixture(scope="module")
def long_server(tiny_lm):
    """A server that allows long answers, to abandon them part-way."""
    from spillover.serve import RequestLimits

    app = create_app(tiny_lm, "tiny", LONG_MAX_TOKENS, max_batch=8, batch_window_s=0.01, limits=RequestLimits(**SMALL_LIMITS))
    with serve_in_thread(app) as base_url:
        yield app, base_url


def wait_until(condition, what: str, limit_s: float = 60.0) -> None:
    """Poll `condition` until it holds; a bound against hanging, not a performance assertion."""
    import time

    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {limit_s:.0f} s waiting for {what}")
        time.sleep(0.005)


def port_of(base_url: str) -> int:
    return int(base_url.rsplit(":", 1)[1].split("/")[0])


def raw_post(base_url: str, body: bytes, extra_headers: str = ""):
    """A POST to /v1/chat/completions over a plain socket, so a test decides when to hang up."""
    import socket

    sock = socket.create_connection(("127.0.0.1", port_of(base_url)), timeout=60)
    head = f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{extra_headers}"
    if "Transfer-Encoding" not in extra_headers and "Content-Length" not in extra_headers:
        head += f"Content-Length: {len(body)}\r\n"
    sock.sendall(head.encode() + b"\r\n" + body)
    return sock


def read_response(sock) -> tuple[int, dict]:
    """Status and JSON body of one (non-chunked) HTTP response."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, rest = data.split(b"\r\n\r\n", 1)
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(rest) < length:
        rest += sock.recv(65536)
    return int(head.split()[1]), json.loads(rest[:length])


def chat(max_tokens: int, **extra) -> dict:
    return {"model": "tiny", "messages": [{"role": "user", "content": "Tell me everything."}], "max_tokens": max_tokens, "temperature": 1.0, "seed": 0, **extra}


def test_body_over_the_cap_is_refused_by_its_content_length_before_it_is_sent(long_server):
    sock = raw_post(long_server[1], b"", f"Content-Length: {BODY_CAP + 1}\r\n")  # headers only: no body byte sent
    with sock:
        status, body = read_response(sock)
    assert status == 413
    assert body["error"]["code"] == "request_too_large" and str(BODY_CAP) in body["error"]["message"]


def test_chunked_body_is_refused_once_it_passes_the_cap(long_server):
    chunk = b"x" * 16 * 1024
    sock = raw_post(long_server[1], b"", "Transfer-Encoding: chunked\r\n")
    with sock:
        for _ in range(BODY_CAP // len(chunk) + 1):  # just past the cap, and the body never ends
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        status, body = read_response(sock)
    assert status == 413 and body["error"]["code"] == "request_too_large"
    # The official path: a client that sends a whole oversized body gets the same JSON error.
    r = httpx.post(f"{long_server[1]}/chat/completions", content=b" " * (BODY_CAP + 1), headers={"content-type": "application/json"}, timeout=60)
    assert r.status_code == 413 and r.json()["error"]["type"] == "invalid_request_error"
    assert httpx.get(f"{long_server[1][:-3]}/health", timeout=60).status_code == 200


HI = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    "raw_body, code, param",
    [
        ('{"model": "tiny", "messages": %s, "temperature": Infinity}', "invalid_value", "temperature"),
        ('{"model": "tiny", "messages": %s, "temperature": NaN}', "invalid_value", "temperature"),
        ('{"model": "tiny", "messages": %s, "top_p": 0}', "invalid_value", "top_p"),
        ('{"model": "tiny", "messages": %s, "top_p": -Infinity}', "invalid_value", "top_p"),
        ('{"model": "tiny", "messages": %s, "max_tokens": -5}', "invalid_value", "max_tokens"),
        ('{"model": "tiny", "messages": %s, "max_tokens": 0}', "invalid_value", "max_tokens"),
        ('{"model": "tiny", "messages": %s, "max_tokens": 1e400}', "invalid_value", "max_tokens"),
        ('{"model": "tiny", "messages": %s, "n": 0}', "invalid_value", "n"),
        ('{"model": "tiny", "messages": %s, "n": 9}', "n_too_large", "n"),
        ('{"model": "tiny", "messages": %s, "n": 100000000000000000000}', "n_too_large", "n"),
        ('{"model": "tiny", "messages": %s, "seed": 100000000000000000000}', "invalid_value", "seed"),
        ('{"model": "tiny", "messages": %s, "stop": ["a", "b", "c", "d", "e"]}', "invalid_value", "stop"),
        ('{"model": "tiny", "messages": "hi"}', "invalid_value", "messages"),
        ('{"model": "tiny", "messages": %s}'.replace("%s", json.dumps(HI * 17)), "too_many_messages", "messages"),
        ("[" * 60_000, "invalid_json", None),  # nested past Python's recursion limit, under the body cap
    ],
)
def test_nonsense_numbers_and_oversized_requests_are_refused(long_server, raw_body, code, param):
    content = raw_body % json.dumps(HI) if "%s" in raw_body else raw_body
    r = httpx.post(f"{long_server[1]}/chat/completions", content=content.encode(), headers={"content-type": "application/json"}, timeout=60)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == code and (param is None or error["param"].startswith(param))
    assert error["message"]


def test_a_64_bit_seed_is_served(long_server):
    r = httpx.post(f"{long_server[1]}/chat/completions", json=chat(3, seed=2**63 - 1), timeout=120)
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 3


@pytest.mark.parametrize("blocked", ["parse_chat_request", "_prompt_tokens"])
def test_parsing_and_tokenization_leave_the_event_loop_free(server, monkeypatch, blocked):
    """`blocked` is held until /health has answered: done on the event loop, /health could not answer."""
    import threading

    from spillover.serve import _app

    real = getattr(_app, blocked)
    entered, release = threading.Event(), threading.Event()

    def held(*args):
        entered.set()
        release.wait(timeout=60)
        return real(*args)

    monkeypatch.setattr(_app, blocked, held)
    answer: dict = {}
    ask = threading.Thread(target=lambda: answer.update(r=httpx.post(f"{server[1]}/chat/completions", json=chat(2), timeout=120)))
    ask.start()
    try:
        wait_until(entered.is_set, f"the request to reach {blocked}")
        health = httpx.get(f"{server[1][:-3]}/health", timeout=30)
        assert health.status_code == 200
        assert not release.is_set() and ask.is_alive()  # /health answered while the request was held
    finally:
        release.set()
        ask.join(timeout=120)
    assert answer["r"].status_code == 200


def test_health_answers_while_a_long_generation_runs(long_server):
    app, base_url = long_server
    stats = app.state.stats
    steps_before = stats.decode_steps
    with raw_post(base_url, json.dumps(chat(LONG_MAX_TOKENS)).encode()):
        wait_until(lambda: stats.decode_steps > steps_before, "generation to start")
        assert httpx.get(f"{base_url[:-3]}/health", timeout=30).status_code == 200
        assert stats.decode_steps - steps_before < LONG_MAX_TOKENS  # still generating when /health answered
    # Hanging up ends it (the next test checks how far it ran).
    wait_until(lambda: not app.state.batcher.running, "the abandoned generation to stop")


def test_an_abandoned_request_stops_generating(long_server):
    app, base_url = long_server
    stats = app.state.stats
    wait_until(lambda: not app.state.batcher.running, "an idle server")
    steps_before, abandoned_before = stats.decode_steps, stats.abandoned
    with raw_post(base_url, json.dumps(chat(LONG_MAX_TOKENS, n=8)).encode()):
        wait_until(lambda: stats.decode_steps > steps_before, "generation to start")
    # Queued behind the abandoned one: it only runs once the big one stopped (or finished).
    small = httpx.post(f"{base_url}/chat/completions", json=chat(5), timeout=600).json()
    assert small["usage"]["completion_tokens"] == 5
    assert stats.abandoned == abandoned_before + 1
    steps = stats.decode_steps - steps_before
    assert 5 < steps < LONG_MAX_TOKENS // 2, f"{steps} decoding steps: the abandoned request kept generating"


def test_stream_sends_text_as_it_is_decoded_and_stops_when_the_client_leaves(long_server):
    app, base_url = long_server
    stats = app.state.stats
    wait_until(lambda: not app.state.batcher.running, "an idle server")
    steps_before, abandoned_before = stats.decode_steps, stats.abandoned
    with httpx.stream("POST", f"{base_url}/chat/completions", json=chat(LONG_MAX_TOKENS, stream=True), timeout=120) as r:
        for line in r.iter_lines():
            if line.startswith("data: ") and json.loads(line[6:])["choices"][0]["delta"].get("content"):
                steps_at_first_text = stats.decode_steps - steps_before
                break
    assert 0 < steps_at_first_text < LONG_MAX_TOKENS  # the first text came while generation went on
    wait_until(lambda: stats.abandoned == abandoned_before + 1, "the server to notice the client left")
    wait_until(lambda: not app.state.batcher.running, "the generation to stop")
    assert stats.decode_steps - steps_before < LONG_MAX_TOKENS // 2


def streamed(base_url: str, body: dict) -> tuple[dict[int, str], dict[int, str]]:
    """Joined content and finish reason per choice index of a streamed request."""
    texts: dict[int, str] = {}
    finishes: dict[int, str] = {}
    with httpx.stream("POST", f"{base_url}/chat/completions", json={**body, "stream": True}, timeout=120) as r:
        for line in r.iter_lines():
            if line.startswith("data: {"):
                for c in json.loads(line[6:])["choices"]:
                    texts[c["index"]] = texts.get(c["index"], "") + (c["delta"].get("content") or "")
                    if c["finish_reason"]:
                        finishes[c["index"]] = c["finish_reason"]
    return texts, finishes


def test_streamed_choices_and_stop_strings_match_the_full_answer(server):
    base_url = server[1]
    body = chat(20, n=2, seed=5)
    full = httpx.post(f"{base_url}/chat/completions", json=body, timeout=120).json()
    answers = [c["message"]["content"] for c in full["choices"]]
    assert streamed(base_url, body) == ({0: answers[0], 1: answers[1]}, {0: "length", 1: "length"})

    one = chat(20, seed=5)  # a batch of one samples differently from a batch of two: ask n=1 again
    text = httpx.post(f"{base_url}/chat/completions", json=one, timeout=120).json()["choices"][0]["message"]["content"]
    stop = text[len(text) // 2 : len(text) // 2 + 3]
    cut = text[: text.find(stop)]
    stopped = httpx.post(f"{base_url}/chat/completions", json={**one, "stop": stop}, timeout=120).json()
    assert stopped["choices"][0]["message"]["content"] == cut and stopped["choices"][0]["finish_reason"] == "stop"
    assert streamed(base_url, {**one, "stop": stop}) == ({0: cut}, {0: "stop"})


def test_generate_reports_each_step_and_stops_when_asked(tiny_lm):
    """The `on_step` contract serve relies on (spillover.models.generate)."""
    from spillover.models import generate

    prompts = ["one", "two", "three"]
    seen: dict[int, list[int]] = {i: [] for i in range(len(prompts))}

    def record(rows, tokens):
        for i, t in zip(rows, tokens):
            seen[i].append(t)
        return False

    full = generate(tiny_lm, prompts, max_new_tokens=6, temperature=1.0, seed=0, batch_size=2, on_step=record)
    for i, g in enumerate(full):
        assert tiny_lm.tokenizer.decode(seen[i], skip_special_tokens=True).strip() == g.text and len(seen[i]) == 6

    steps = []
    stopped = generate(tiny_lm, prompts, max_new_tokens=6, temperature=1.0, seed=0, batch_size=2, on_step=lambda r, t: steps.append(r) or len(steps) == 3)
    assert len(steps) == 3  # the second batch never started
    assert sorted(g.n_tokens for g in stopped) == [0, 3, 3] and all(g.truncated for g in stopped)
    assert [g.text for g in stopped if g.n_tokens] == [tiny_lm.tokenizer.decode(seen[i][:3], skip_special_tokens=True).strip() for i, g in enumerate(stopped) if g.n_tokens]


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
