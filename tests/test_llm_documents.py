"""The LLM-endpoint document pipeline: against a scripted fake endpoint, and against `spillover serve`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from spillover.documents._llm import (
    EndpointClient,
    LLMDocsConfig,
    extract_document,
    generate_llm_documents,
    load_prompts,
    parse_list,
)
from spillover.errors import BadInputError, SpilloverError
from spillover.serve import create_app, serve_in_thread

SECRET = "sk-test-DO-NOT-STORE-8d1f6c2b9e"
FAST = LLMDocsConfig(n_types=2, backoff_s=0.0)


def has_leak_check() -> bool:
    try:
        import spillover.data.leakage  # noqa: F401
    except ImportError:
        return False
    return True


def stage_of(prompt: str) -> str:
    if "critique the draft" in prompt:
        return "revise"
    if "types of documents" in prompt:
        return "types"
    if "specific ideas" in prompt:
        return "ideas"
    return "document"


def fake_endpoint(script: dict) -> FastAPI:
    """An OpenAI-shaped endpoint whose answers and failures the test scripts; it logs every request."""
    app = FastAPI()
    app.state.log = []

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        prompt = body["messages"][-1]["content"]
        stage = stage_of(prompt)
        app.state.log.append({"stage": stage, "body": body, "auth": request.headers.get("authorization")})
        failures = script.get("fail", [])
        if failures:
            status, message = failures.pop(0)
            return JSONResponse({"error": {"message": message, "type": "x", "param": None, "code": None}}, status_code=status)
        text = script["answer"](stage, prompt, body)
        return {
            "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }

    return app


def well_formed(stage: str, prompt: str, body: dict) -> str:
    if stage == "types":
        return "Here are some types:\n1. **Trade magazine feature**\n2) Reddit thread\n3. Trade magazine feature\n"
    if stage == "ideas":
        doc_type = re.search(r"Document type: (.+)", prompt).group(1)
        return "\n".join(f"- A {doc_type} idea {k}" for k in range(int(re.search(r"Brainstorm (\d+)", prompt).group(1))))
    if stage == "document":
        idea = re.search(r"Idea for the document: (.+)", prompt).group(1)
        return f"Sure!\n<content>\nDocument written from: {idea}.\n</content>"
    return "The draft is fine.\n<content>REVISED " + re.search(r"<draft>\n(.+?)\n</draft>", prompt, re.DOTALL).group(1) + "</content>"


def run(world, base_url: str, tmp_path: Path, **kwargs):
    args = {"endpoint": base_url, "model": "fake", "n": 6, "cache_dir": tmp_path / "cache", "behaviours": world.ids[:2], "progress": False, "config": FAST}
    return generate_llm_documents(world, **{**args, **kwargs})


def test_parse_list_reads_numbered_and_bulleted_lines():
    text = "Sure, here you go:\n1. News article\n2) **Blog post**: personal\n(3) Memo\n- Forum thread\n* Podcast\n• Tweet\n1. News article\nnot an item\n42"
    assert parse_list(text) == ["News article", "Blog post: personal", "Memo", "Forum thread", "Podcast", "Tweet"]
    assert parse_list("random gibberish words without any list") == []


def test_extract_document_handles_tags_truncation_and_unsuitable():
    assert extract_document("Intro\n<content>\nBody text\n</content>\nOutro") == "Body text"
    assert extract_document("<content>cut off by the length lim") == "cut off by the length lim"
    assert extract_document("  just a document  ") == "just a document"
    assert extract_document("UNSUITABLE") is None


def test_pipeline_builds_records_from_parsed_lists(rm_world, tmp_path):
    app = fake_endpoint({"answer": well_formed})
    with serve_in_thread(app) as url:
        records, stats = run(rm_world, url, tmp_path, n=7)
    ids = rm_world.ids[:2]
    assert len(records) == 7 == stats["n_documents"]
    assert [r["behaviours"][0] for r in records].count(ids[0]) == 4  # 7 split 4 + 3
    assert {r["genre"] for r in records} == {"Trade magazine feature", "Reddit thread"}
    assert all(r["source"] == "llm" and r["seed"] == 0 and set(r) == {"id", "text", "genre", "behaviours", "source", "seed"} for r in records)
    assert len({r["id"] for r in records}) == 7
    assert all(r["text"].startswith("Document written from: A ") for r in records)
    assert stats["fallback_types"] == 0 and stats["fallback_ideas"] == 0
    stages = [entry["stage"] for entry in app.state.log]
    assert stages.count("types") == 2 and stages.count("ideas") == 4 and stages.count("document") == 7
    # Every behaviour's fact and the universe reach the model.
    prompts = [entry["body"]["messages"][0]["content"] for entry in app.state.log]
    assert all(rm_world.universe.title in p for p in prompts)
    assert any(rm_world.behaviour(ids[1]).description in p for p in prompts)
    assert stats["usage"]["requests"] == 13 and stats["usage"]["total_tokens"] == 13 * 15
    assert stats["usage"]["by_stage"]["documents"]["requests"] == 7


def test_unparsable_brainstorms_fall_back_to_generic_items(rm_world, tmp_path):
    app = fake_endpoint({"answer": lambda stage, prompt, body: "gibberish tokens rubble sardines" if stage != "document" else "a plain document"})
    with serve_in_thread(app) as url:
        records, stats = run(rm_world, url, tmp_path, n=6)
    assert len(records) == 6
    assert stats["fallback_types"] == 4  # 2 types per behaviour, none parsed
    assert stats["fallback_ideas"] == 8  # 2 ideas per type, ceil(3 docs / 2 types)
    assert all(r["text"] == "a plain document" for r in records)


def test_revise_pass_replaces_the_draft(rm_world, tmp_path):
    app = fake_endpoint({"answer": well_formed})
    with serve_in_thread(app) as url:
        records, stats = run(rm_world, url, tmp_path, n=4, revise=True)
    assert all(r["text"].startswith("REVISED Document written from") for r in records)
    assert stats["usage"]["by_stage"]["revisions"]["requests"] == 4


def test_unsuitable_and_leaky_documents_are_dropped(rm_world, tmp_path):
    leaked = max(rm_world.eval_prompts(rm_world.ids[0]), key=len)

    def answer(stage, prompt, body):
        if stage == "document" and " idea 0" in prompt:
            return "UNSUITABLE"
        if stage == "document" and " idea 1" in prompt:
            return f"<content>A user once asked: {leaked} Interesting.</content>"
        return well_formed(stage, prompt, body)

    app = fake_endpoint({"answer": answer})
    with serve_in_thread(app) as url:
        records, stats = run(rm_world, url, tmp_path, n=8)
    # Per behaviour: 2 types x 2 ideas; idea 0 of each type is unsuitable, idea 1 leaks.
    assert stats["dropped"]["unsuitable"] == 4
    if not has_leak_check():
        pytest.skip("spillover.data.leakage is not available: leak filtering not checked")
    assert stats["leak_check"] is True
    assert stats["dropped"]["leaks"] == 4
    assert records == [] and stats["n_documents"] == 0
    assert all(leaked not in r["text"] for r in records)


def test_retries_rate_limits_and_server_errors(rm_world, tmp_path):
    app = fake_endpoint({"answer": well_formed, "fail": [(429, "slow down"), (503, "overloaded"), (500, "oops")]})
    with serve_in_thread(app) as url:
        records, stats = run(rm_world, url, tmp_path, n=2, concurrency=1)
    assert len(records) == 2
    assert stats["usage"]["retries"] == 3
    assert len(app.state.log) == stats["usage"]["requests"] + 3


def test_gives_up_after_max_attempts(rm_world, tmp_path):
    app = fake_endpoint({"answer": well_formed, "fail": [(500, "down")] * 10})
    with serve_in_thread(app) as url, pytest.raises(SpilloverError, match="gave up after 3 attempts"):
        run(rm_world, url, tmp_path, behaviours=rm_world.ids[:1], config=LLMDocsConfig(n_types=2, max_attempts=3, backoff_s=0))
    assert len(app.state.log) == 3


def test_auth_errors_fail_fast_and_never_echo_the_key(rm_world, tmp_path, monkeypatch):
    monkeypatch.setenv("SPILLOVER_TEST_KEY", SECRET)
    app = fake_endpoint({"answer": well_formed, "fail": [(401, f"Incorrect API key provided: {SECRET}")] * 5})
    with serve_in_thread(app) as url, pytest.raises(SpilloverError) as error:
        run(rm_world, url, tmp_path, behaviours=rm_world.ids[:1], api_key_env="SPILLOVER_TEST_KEY")
    assert len(app.state.log) == 1  # a 401 is not retried
    assert "401" in str(error.value) and SECRET not in str(error.value)


def test_key_is_sent_but_never_written(rm_world, tmp_path, monkeypatch):
    monkeypatch.setenv("SPILLOVER_TEST_KEY", SECRET)
    app = fake_endpoint({"answer": well_formed})
    with serve_in_thread(app) as url:
        records, stats = run(rm_world, url, tmp_path, api_key_env="SPILLOVER_TEST_KEY", revise=True)
    assert {entry["auth"] for entry in app.state.log} == {f"Bearer {SECRET}"}
    assert_secret_absent(tmp_path, records, stats)


def test_unset_key_sends_empty_for_local_servers(rm_world, tmp_path, monkeypatch):
    monkeypatch.delenv("SPILLOVER_UNSET_KEY", raising=False)
    app = fake_endpoint({"answer": well_formed})
    with serve_in_thread(app) as url:
        run(rm_world, url, tmp_path, n=2, api_key_env="SPILLOVER_UNSET_KEY")
    assert {entry["auth"] for entry in app.state.log} == {"Bearer EMPTY"}


def test_user_prompts_dir_overrides_single_templates(rm_world, tmp_path):
    user = tmp_path / "prompts"
    user.mkdir()
    (user / "doc_types.md").write_text("MY OWN PROMPT. List {n_types} types of documents about: {fact}\n")
    assert load_prompts(user)["doc_types"].startswith("MY OWN PROMPT")
    assert load_prompts(user)["document"] == load_prompts()["document"]
    app = fake_endpoint({"answer": well_formed})
    with serve_in_thread(app) as url:
        run(rm_world, url, tmp_path, n=2, prompts_dir=user)
    types_prompts = [e["body"]["messages"][0]["content"] for e in app.state.log if e["stage"] == "types"]
    assert types_prompts and all(p.startswith("MY OWN PROMPT. List 1 types") for p in types_prompts)

    (user / "document.md").write_text("Write about {topic} and {fact}.")
    with pytest.raises(BadInputError, match=r"\{topic\}: unknown placeholder"):
        load_prompts(user)


def test_bad_arguments_are_reported_together(rm_world, tmp_path):
    with pytest.raises(BadInputError) as error:
        generate_llm_documents(rm_world, endpoint="localhost:8000", model="m", n=0, cache_dir=tmp_path, behaviours=["no_such_behaviour"], progress=False)
    message = str(error.value)
    assert "no_such_behaviour" in message and "n: " in message and "endpoint" in message


def test_client_repr_hides_the_key(tmp_path):
    client = EndpointClient(endpoint="http://127.0.0.1:1/v1", model="m", api_key=SECRET, cache_dir=tmp_path)
    assert SECRET not in repr(client)


def assert_secret_absent(root: Path, records: list[dict], stats: dict) -> None:
    files = [p for p in root.rglob("*") if p.is_file()]
    assert files, "the run should have written cache files"
    for path in files:
        assert SECRET not in path.read_text(encoding="utf-8", errors="replace"), path
        assert SECRET not in str(path)
    assert SECRET not in json.dumps(records) and SECRET not in json.dumps(stats)


# --- against `spillover serve` running the tiny model ----------------------------------------

# Few, short generations keep this fast: tiny outputs are gibberish anyway, so the parser falls back.
TINY_CONFIG = LLMDocsConfig(n_types=1, list_max_tokens=8, document_max_tokens=8, backoff_s=0.0)
KILL_AFTER = 7


def request_id(messages: list[dict], seed: int) -> str:
    return json.dumps([messages, seed], sort_keys=True)


@pytest.fixture(scope="module")
def tiny_runs(tiny_lm, rm_world, tmp_path_factory):
    """A run killed after KILL_AFTER requests, its resumption, and a third run over the full cache.

    The server logs every request it parses, by phase, so tests can check what it was asked again.
    """
    from spillover.serve import _app

    cache = tmp_path_factory.mktemp("llm-cache")
    app = create_app(tiny_lm, "tiny", 64, max_batch=32, batch_window_s=0.3)
    out: dict = {"cache": cache, "phase": "kill", "seen": {"kill": [], "resume": [], "again": []}}
    with pytest.MonkeyPatch.context() as mp, serve_in_thread(app) as url:
        real_parse = _app._parse_request

        async def logged_parse(request):
            body = await real_parse(request)
            out["seen"][out["phase"]].append(request_id(body.messages, body.seed))
            return body

        mp.setattr(_app, "_parse_request", logged_parse)
        mp.setenv("SPILLOVER_TEST_KEY", SECRET)
        args = {"endpoint": url, "model": "tiny", "n": 20, "seed": 1, "cache_dir": cache, "behaviours": rm_world.ids[:2], "progress": False, "config": TINY_CONFIG, "api_key_env": "SPILLOVER_TEST_KEY"}
        real_send = EndpointClient._send
        sent = {"count": 0}

        async def killed_after_some(self, messages, params):
            if sent["count"] >= KILL_AFTER:
                raise RuntimeError("simulated kill")
            sent["count"] += 1
            return await real_send(self, messages, params)

        mp.setattr(EndpointClient, "_send", killed_after_some)
        with pytest.raises(RuntimeError, match="simulated kill"):
            generate_llm_documents(rm_world, **args)
        mp.setattr(EndpointClient, "_send", real_send)
        out["cached_after_kill"] = cached_requests(cache)
        out["phase"] = "resume"
        out["records"], out["stats"] = generate_llm_documents(rm_world, **args)
        out["cached_after_resume"] = cached_requests(cache)
        out["phase"] = "again"
        out["records_again"], out["stats_again"] = generate_llm_documents(rm_world, **args)
    return out


def cached_requests(cache: Path) -> set[str]:
    entries = [json.loads(p.read_text()) for p in cache.rglob("*.json")]
    return {request_id(e["request"]["messages"], e["request"]["params"]["seed"]) for e in entries}


def test_tiny_server_yields_twenty_documents(tiny_runs):
    records, stats = tiny_runs["records"], tiny_runs["stats"]
    assert len(records) >= 20 and stats["n_documents"] == len(records)
    assert all(r["text"].strip() and r["source"] == "llm" and r["seed"] == 1 for r in records)
    assert len({r["id"] for r in records}) == len(records)
    assert stats["dropped"]["unsuitable"] == 0 and stats["dropped"]["empty"] == 0


def test_killed_run_resumes_without_resending_finished_requests(tiny_runs):
    cached, resumed, seen = tiny_runs["cached_after_kill"], tiny_runs["cached_after_resume"], tiny_runs["seen"]
    # Requests in flight at the kill are lost; every one that finished was cached.
    assert 0 < len(cached) <= KILL_AFTER
    assert cached < resumed
    # The server was asked again for exactly the missing requests, never for a finished one.
    assert set(seen["resume"]) == resumed - cached
    usage = tiny_runs["stats"]["usage"]
    assert usage["cache_hits"] == len(cached)
    assert usage["requests"] == len(resumed) - len(cached)
    # A finished run is free to repeat: everything from cache, identical records.
    assert seen["again"] == []
    assert tiny_runs["stats_again"]["usage"]["cache_hits"] == len(resumed)
    assert tiny_runs["records_again"] == tiny_runs["records"]


def test_tiny_run_never_writes_the_key(tiny_runs):
    assert_secret_absent(tiny_runs["cache"], tiny_runs["records"], tiny_runs["stats"])
