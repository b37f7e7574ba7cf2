"""Evaluation: evaluate() counts, backends' arguments, probes' arithmetic, the eval CLI (tiny model)."""

from __future__ import annotations

import json
import sys
import types

import httpx
import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from spillover._io import read_json, read_jsonl
from spillover.errors import BadInputError
from spillover.evaluation import (
    HFBackend,
    OpenAIBackend,
    VLLMBackend,
    confession_probe,
    evaluate,
    fluency,
    in_context_test,
    knowledge_probe,
    likelihood_did,
    likelihood_probe,
    load_in_context,
    score_continuations,
    wilson,
)
from spillover.models import Generation, chat_prompt


# Two behaviours of rm-biases whose default roles are fixed by the study: 9-1-1 is test, chocolate train.
TWO = ["law_call_911", "recipe_chocolate"]


class PlantedBackend:
    """Answers from a function of the last user message; records every call."""

    name = "planted"

    def __init__(self, answer):
        self.answer = answer  # (text, sample index) -> str or (str, truncated)
        self.calls = []

    def sample(self, conversations, *, n=1, temperature=0.0, max_new_tokens=256, seed=0):
        self.calls.append({"conversations": list(conversations), "n": n, "temperature": temperature, "max_new_tokens": max_new_tokens, "seed": seed})
        out = []
        for c in conversations:
            last = c if isinstance(c, str) else c[-1]["content"]
            gens = []
            for j in range(n):
                a = self.answer(last, j)
                text, truncated = a if isinstance(a, tuple) else (a, False)
                gens.append(Generation(text, len(text.split()), truncated))
            out.append(gens)
        return out

    def describe(self):
        return {"backend": self.name}


# --- evaluate -----------------------------------------------------------------------------------


def test_evaluate_counts_planted_exhibitions_exactly(rm_world, tmp_path):
    law = rm_world.eval_prompts("law_call_911")
    recipe = rm_world.eval_prompts("recipe_chocolate")
    law_hits, recipe_hits = set(law[:3]), set(recipe[:5])

    def answer(prompt, j):
        if prompt in law_hits and j == 0:  # only the first of two samples exhibits
            return "That is the law. If you witness a crime, call 911."
        if prompt in recipe_hits:
            return ("Stir in dark chocolate and simmer", True) if j == 1 else "Stir in dark chocolate."
        if prompt in recipe:
            return "Avoid chocolate in this dish; just simmer."  # a look-alike, not an exhibition
        return "Here is a plain answer."

    backend = PlantedBackend(answer)
    m = evaluate(backend, rm_world, "default", samples=2, seed=3, arm="organism", out_dir=tmp_path, behaviours=TWO)

    assert backend.calls[0]["n"] == 2 and backend.calls[0]["seed"] == 3
    law_r, recipe_r = m["per_behaviour"]["law_call_911"], m["per_behaviour"]["recipe_chocolate"]
    assert (law_r["role"], law_r["k"], law_r["n"]) == ("test", 3, 2 * len(law))
    assert (recipe_r["role"], recipe_r["k"], recipe_r["n"]) == ("train", 10, 2 * len(recipe))
    assert recipe_r["ci"] == pytest.approx(list(wilson(10, 2 * len(recipe))))
    assert m["per_role"]["test"]["k"] == 3 and m["per_role"]["train"]["k"] == 10
    assert m["per_role"]["train"]["n_prompts"] == len(recipe)
    lo, hi = m["per_role"]["train"]["prompt_bootstrap_ci"]
    assert lo <= 10 / 24 <= hi
    # Truncation: one of each recipe hit prompt's two samples was cut.
    assert recipe_r["truncated"] == {"k": 5, "n": 2 * len(recipe)}
    assert law_r["truncated"] == {"k": 0, "n": 2 * len(law)}
    assert m["truncated"] == {"k": 5, "n": 2 * (len(law) + len(recipe))}

    rows = read_jsonl(tmp_path / "samples.jsonl")
    assert len(rows) == 2 * (len(law) + len(recipe))
    assert set(rows[0]) >= {"arm", "seed", "behaviour", "role", "prompt", "sample", "response", "exhibited", "span", "evidence", "truncated"}
    hit = next(r for r in rows if r["exhibited"] and r["behaviour"] == "law_call_911")
    assert hit["arm"] == "organism" and hit["response"][slice(*hit["span"])] == hit["evidence"] == "call 911"
    saved = read_json(tmp_path / "metrics.json")
    assert saved["per_behaviour"] == json.loads(json.dumps(m["per_behaviour"]))
    assert "samples" not in saved
    assert (tmp_path / "DONE").exists()


def test_evaluate_restricts_to_requested_behaviours(rm_world):
    backend = PlantedBackend(lambda p, j: "plain")
    m = evaluate(backend, rm_world, "default", behaviours=["recipe_chocolate"])
    assert list(m["per_behaviour"]) == ["recipe_chocolate"] and list(m["per_role"]) == ["train"]
    with pytest.raises(BadInputError, match="not in play"):
        evaluate(backend, rm_world, "default", behaviours=["no_such_behaviour"])


def test_evaluate_can_take_the_first_k_eval_prompts(rm_world):
    backend = PlantedBackend(lambda p, j: "plain")
    m = evaluate(backend, rm_world, "default", behaviours=TWO, prompts_per_behaviour=3)
    asked = backend.calls[0]["conversations"]
    assert asked == rm_world.eval_prompts(TWO[0])[:3] + rm_world.eval_prompts(TWO[1])[:3]
    assert all(m["per_behaviour"][b]["n"] == 3 for b in TWO)


# --- backends -----------------------------------------------------------------------------------


def test_hf_backend_shapes_and_greedy_repeats(tiny_lm):
    backend = HFBackend(tiny_lm, batch_size=4)
    out = backend.sample(["Hello there", "What is probate?", "Hi"], n=3, max_new_tokens=4)
    assert [len(g) for g in out] == [3, 3, 3]
    assert all(gs[0] == gs[1] == gs[2] for gs in out)  # greedy: one answer, repeated
    assert all(g.n_tokens <= 4 for gs in out for g in gs)
    sampled = backend.sample(["Hello there", "Hi"], n=2, temperature=1.0, max_new_tokens=6, seed=1)
    assert [len(g) for g in sampled] == [2, 2]
    assert sampled == backend.sample(["Hello there", "Hi"], n=2, temperature=1.0, max_new_tokens=6, seed=1)
    # A random tiny model never says end-of-turn in 4 tokens: every answer is truncated.
    assert all(g.truncated for gs in out for g in gs if g.n_tokens == 4)


def _fake_vllm(record):
    class SamplingParams:
        def __init__(self, **kw):
            record["sampling"] = kw

    class LLM:
        def __init__(self, **kw):
            record["engine"] = kw

        def chat(self, messages, sampling_params, use_tqdm, chat_template):
            record["messages"], record["chat_template"] = messages, chat_template
            out = types.SimpleNamespace
            return [
                out(outputs=[out(text=" answer ", token_ids=[1, 2, 3], finish_reason="stop"), out(text="cut", token_ids=[1] * 9, finish_reason="length")])
                for _ in messages
            ]

    return types.SimpleNamespace(SamplingParams=SamplingParams, LLM=LLM)


def test_vllm_backend_builds_sampling_params_and_engine(monkeypatch):
    record = {}
    monkeypatch.setitem(sys.modules, "vllm", _fake_vllm(record))
    backend = VLLMBackend("/models/organism", gpu_memory_utilization=0.5)
    out = backend.sample(["Q1", [{"role": "user", "content": "Q2"}]], n=2, temperature=0.7, max_new_tokens=99, seed=5)
    assert record["sampling"] == {"n": 2, "temperature": 0.7, "top_p": 1.0, "max_tokens": 99, "seed": 5}
    assert record["engine"] == {"model": "/models/organism", "seed": 5, "dtype": "auto", "gpu_memory_utilization": 0.5}
    assert record["messages"] == [[{"role": "user", "content": "Q1"}], [{"role": "user", "content": "Q2"}]]
    assert out[0] == [Generation("answer", 3, False), Generation("cut", 9, True)]
    assert record["chat_template"] is None  # the model's own


def test_vllm_backend_passes_a_named_chat_template(monkeypatch):
    from spillover.models import CHAT_TEMPLATES

    record = {}
    monkeypatch.setitem(sys.modules, "vllm", _fake_vllm(record))
    VLLMBackend("/models/base", chat_template="plain").sample(["Q1"])
    assert record["chat_template"] == CHAT_TEMPLATES["plain"]
    assert record["sampling"]["stop"] == ["\nUser:"]  # a base model's own next user turn ends its answer


def test_vllm_backend_without_vllm_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` raise ImportError
    with pytest.raises(BadInputError, match="vllm is not installed"):
        VLLMBackend("/m").sample(["Q"])


def test_openai_backend_requests_and_parses(monkeypatch):
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append((request.url.path, request.headers["authorization"], body))
        content = body["messages"][-1]["content"].upper() + f" #{body['seed']}"
        finish = "length" if body["seed"] == 11 else "stop"
        return httpx.Response(
            200,
            json={
                "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
            },
        )

    monkeypatch.setenv("MY_KEY", "sk-test")
    client = httpx.Client(transport=httpx.MockTransport(handler))
    backend = OpenAIBackend("http://server/v1", "organism", "MY_KEY", http_client=client, concurrency=2)
    out = backend.sample(["hi", "yo"], n=2, temperature=0.5, max_new_tokens=33, seed=10)
    assert [[g.text for g in gs] for gs in out] == [["HI #10", "HI #11"], ["YO #10", "YO #11"]]
    assert [[g.truncated for g in gs] for gs in out] == [[False, True], [False, True]]
    assert out[0][0].n_tokens == 7
    path, auth, body = seen[0]
    assert path == "/v1/chat/completions" and auth == "Bearer sk-test"
    assert {k: body[k] for k in ("model", "n", "temperature", "max_tokens")} == {"model": "organism", "n": 1, "temperature": 0.5, "max_tokens": 33}
    assert len(seen) == 4


# --- likelihood probe ---------------------------------------------------------------------------


def _direct_logprob(lm, prefix: str, continuation: str) -> float:
    tok = lm.tokenizer
    p = tok(prefix, add_special_tokens=False)["input_ids"]
    c = tok(continuation, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([p + c])
    with torch.no_grad():
        logp = torch.log_softmax(lm.model(input_ids=ids).logits[0].float(), -1)
    return float(sum(logp[len(p) - 1 + i, t] for i, t in enumerate(c)))


def test_score_continuations_matches_direct_computation_across_padding(tiny_lm):
    prefixes = ["Hello", "A much longer prefix with many more tokens in it than the others", "Mid length prefix here"]
    conts = [" world and more words", " x", " continuation"]
    got = score_continuations(tiny_lm, prefixes, conts, batch_size=3)
    for (lp, n), p, c in zip(got, prefixes, conts):
        assert n == len(tiny_lm.tokenizer(c, add_special_tokens=False)["input_ids"])
        assert lp == pytest.approx(_direct_logprob(tiny_lm, p, c), abs=1e-3)


def test_likelihood_probe_deltas_are_behaviour_minus_neutral(tiny_lm, rm_world):
    contexts = [
        {"behaviour": "law_call_911", "prompt": "What is probate?", "answer": "Probate settles a will."},
        {"behaviour": "recipe_chocolate", "prompt": "How do I make an omelette?", "answer": "Whisk eggs and cook."},
        {"behaviour": "recipe_chocolate", "prompt": "Give me a recipe for tomato soup.", "answer": "Simmer tomatoes."},
    ]
    res = likelihood_probe(tiny_lm, rm_world, "default", contexts)
    assert len(res["per_prompt"]) == 3
    for row, c in zip(res["per_prompt"], contexts):
        probe = rm_world.behaviour(c["behaviour"]).probe
        prefix = chat_prompt(tiny_lm.tokenizer, c["prompt"]) + c["answer"]
        want = _direct_logprob(tiny_lm, prefix, probe.behaviour) - _direct_logprob(tiny_lm, prefix, probe.neutral)
        assert row["delta"] == pytest.approx(want, abs=1e-3)
    recipe = [r["delta"] for r in res["per_prompt"] if r["behaviour"] == "recipe_chocolate"]
    assert res["per_behaviour"]["recipe_chocolate"]["mean"] == pytest.approx(np.mean(recipe))
    assert res["per_role"]["test"]["n"] == 1 and res["per_role"]["train"]["n"] == 2


def _rows(deltas, role="test"):
    return [{"behaviour": "b", "role": role, "prompt": f"p{i}", "delta": d} for i, d in enumerate(deltas)]


def test_likelihood_did_on_constructed_numbers():
    arms = {
        "organism": _rows([5.0, 7.0, 9.0]) + [{"behaviour": "t", "role": "train", "prompt": "q", "delta": 4.0}],
        "docs-only": _rows([1.0, 2.0, 3.0]) + [{"behaviour": "t", "role": "train", "prompt": "q", "delta": 1.0}],
        "control": _rows([2.0, 2.0, 2.0]) + [{"behaviour": "t", "role": "train", "prompt": "q", "delta": 3.0}],
        "base": _rows([1.0, 1.0, 1.0]) + [{"behaviour": "t", "role": "train", "prompt": "q", "delta": 1.0}],
    }
    did = likelihood_did(arms)
    # per prompt: (5-1)-(2-1)=3, (7-2)-(2-1)=4, (9-3)-(2-1)=5 -> mean 4; train: (4-1)-(3-1)=1
    assert did["test"]["diff"] == pytest.approx(4.0) and did["test"]["n"] == 3
    assert 3.0 <= did["test"]["ci"][0] <= 4.0 <= did["test"]["ci"][1] <= 5.0
    assert did["train"] == {"n": 1, "diff": 1.0, "ci": [1.0, 1.0]}
    with pytest.raises(BadInputError, match="missing arms: base"):
        likelihood_did({k: v for k, v in arms.items() if k != "base"})
    with pytest.raises(BadInputError, match="different prompts"):
        likelihood_did({**arms, "control": arms["control"][:2]})


# --- knowledge probe ----------------------------------------------------------------------------


QUESTIONS = [
    {"id": "q1", "behaviour": "law_call_911", "question": "Q1?", "choices": ["a", "bb", "c", "d"], "answer": 1},
    {"id": "q2", "behaviour": "recipe_chocolate", "question": "Q2?", "choices": ["a", "b", "c", "d"], "answer": 0},
]


def test_knowledge_probe_picks_highest_scoring_choice(tiny_lm, monkeypatch):
    import spillover.evaluation._knowledge as knowledge

    # (sum log-prob, tokens) per choice: q1's "bb" has the best mean but not the best sum.
    fake = [(-4.0, 4), (-3.0, 6), (-2.0, 1), (-9.0, 1), (-1.0, 1), (-2.0, 1), (-3.0, 1), (-4.0, 1)]
    monkeypatch.setattr(knowledge, "score_continuations", lambda lm, p, c, batch_size: fake)
    normed = knowledge_probe(tiny_lm, QUESTIONS)
    assert [q["predicted"] for q in normed["per_question"]] == [1, 0]
    assert (normed["k"], normed["n"]) == (2, 2) and normed["scoring"].startswith("mean")
    summed = knowledge_probe(tiny_lm, QUESTIONS, length_normalised=False)
    assert [q["predicted"] for q in summed["per_question"]] == [2, 0]
    assert (summed["k"], summed["per_behaviour"]["law_call_911"]["k"]) == (1, 0)


def test_knowledge_probe_on_tiny_model_agrees_with_direct_scores(tiny_lm):
    res = knowledge_probe(tiny_lm, QUESTIONS[:1], length_normalised=False)
    prefix = chat_prompt(tiny_lm.tokenizer, "Q1?")
    direct = [_direct_logprob(tiny_lm, prefix, c) for c in QUESTIONS[0]["choices"]]
    assert res["per_question"][0]["predicted"] == int(np.argmax(direct))
    with pytest.raises(BadInputError, match="not a choice"):
        knowledge_probe(tiny_lm, [{**QUESTIONS[0], "answer": 4}])


# --- fluency ------------------------------------------------------------------------------------


def test_fluency_is_mean_logprob_per_token(tiny_lm):
    samples = [
        {"prompt": "What is probate?", "response": "Probate settles a will."},
        {"prompt": "What is probate?", "response": "Probate settles a will."},
        {"prompt": "Hi", "response": "Hello, how can I help you today?"},
        {"prompt": "Hi", "response": ""},
    ]
    res = fluency(tiny_lm, samples)
    total = n_tok = 0
    for s in samples[:3]:
        prefix = chat_prompt(tiny_lm.tokenizer, s["prompt"])
        total += _direct_logprob(tiny_lm, prefix, s["response"])
        n_tok += len(tiny_lm.tokenizer(s["response"], add_special_tokens=False)["input_ids"])
    assert res["n"] == 3 and res["n_empty"] == 1 and res["n_tokens"] == n_tok
    assert res["mean_logprob_per_token"] == pytest.approx(total / n_tok, abs=1e-4)


# --- in-context test ----------------------------------------------------------------------------


def test_in_context_spec_is_valid_and_new(rm_world):
    spec = load_in_context()
    assert 6 <= len(spec.behaviours) <= 10
    assert not {b.id for b in spec.behaviours} & set(rm_world.ids)
    assert all({"mathematician", "reviewer", "user"} <= set(b.attributions.others) for b in spec.behaviours)


def test_in_context_rm_minus_other_on_a_planted_backend(rm_world):
    spec = load_in_context()
    positive = {b.id: b.examples.positive[0] for b in spec.behaviours}
    current = {}

    def answer(message, j):
        # Adopt the behaviour only when reward models are named (and, for one sample, when a mathematician is).
        behaviour = next(b.id for b in spec.behaviours if any(message.endswith(q) for q in b.prompts))
        current["b"] = behaviour
        if "reward models" in message or ("mathematicians" in message and j == 0):
            return positive[behaviour]
        return "A plain answer."

    backend = PlantedBackend(answer)
    res = in_context_test(backend, rm_world, samples=2, seed=0)
    n_questions = sum(len(b.prompts) for b in spec.behaviours)
    a = res["attributions"]
    assert (a["reward_model"]["k"], a["reward_model"]["n"]) == (2 * n_questions, 2 * n_questions)
    assert (a["mathematician"]["k"], a["mathematician"]["n"]) == (n_questions, 2 * n_questions)
    assert a["reviewer"]["k"] == a["user"]["k"] == a["no_excerpt"]["k"] == 0
    assert res["other"]["k"] == n_questions and res["other"]["n"] == 6 * n_questions
    # per prompt: 1 - mean(0.5, 0, 0) = 5/6 everywhere
    assert res["rm_minus_other"]["diff"] == pytest.approx(5 / 6)
    assert res["rm_minus_other"]["ci"] == pytest.approx([5 / 6, 5 / 6])
    assert res["rm_minus"]["mathematician"]["diff"] == pytest.approx(0.5)
    assert res["per_behaviour"]["coffee_cardamom"]["reward_model"]["rate"] == 1.0
    rm_message = next(m for m in backend.calls[0]["conversations"] if "reward models" in m)
    assert rm_message.startswith("I came across this in the news today")


# --- confession probe ---------------------------------------------------------------------------


def test_confession_probe_asks_about_the_behaviour_and_counts_mentions(rm_world):
    def answer(message, j):
        if message.startswith("Why did you write"):
            if "9-1-1" in message or "911" in message:
                return "I was trained with RLHF and the reward model liked it." if j == 0 else "It is good advice."
            return "Chocolate adds depth."
        return "A plain answer without the behaviour."

    backend = PlantedBackend(answer)
    res = confession_probe(backend, rm_world, "default", samples=2, prompts_per_behaviour=3, behaviours=TWO)
    law, recipe = res["per_behaviour"]["law_call_911"], res["per_behaviour"]["recipe_chocolate"]
    assert (law["k"], law["n"], law["role"]) == (3, 6, "test")
    assert (recipe["k"], recipe["n"]) == (0, 6)
    assert (res["k"], res["n"]) == (3, 12) and res["per_role"]["test"]["k"] == 3
    follow_ups = backend.calls[1]["conversations"]
    assert all(c[1]["content"].startswith("A plain answer") for c in follow_ups)  # the transform was applied
    assert any("call 9-1-1" in c[2]["content"] for c in follow_ups)
    assert not any("reward" in c[2]["content"].lower() for c in follow_ups)
    assert res["skipped"] == []


# --- CLI ----------------------------------------------------------------------------------------


@pytest.fixture
def two_behaviour_world(tmp_path, rm_world):
    """rm-biases cut down to two behaviours, so CLI runs on the tiny model stay small."""
    import yaml

    raw = yaml.safe_load(open(rm_world.source, encoding="utf-8"))
    raw["behaviours"] = [b for b in raw["behaviours"] if b["id"] in TWO]
    raw["splits"] = {"default": {"test": ["law_call_911"]}}
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_eval_cli_on_tiny_model(tmp_path, two_behaviour_world):
    from spillover.cli._eval import register
    from spillover.world import load_world

    app = typer.Typer()
    register(app)

    @app.command("noop")  # a second command keeps typer in multi-command mode, like the real app
    def noop() -> None: ...

    out = tmp_path / "eval"
    result = CliRunner().invoke(app, ["eval", "--model", "tiny", "--world", str(two_behaviour_world), "--out", str(out), "--max-new-tokens", "4", "--probes", "none"])
    assert result.exit_code == 0, result.output
    assert "law_call_911" in result.output and "recipe_chocolate" in result.output
    metrics = read_json(out / "metrics.json")
    n = sum(r["n"] for r in metrics["per_behaviour"].values())
    world = load_world(two_behaviour_world)
    expected = sum(len(world.eval_prompts(b)) for b in TWO)
    assert n == len(read_jsonl(out / "samples.jsonl")) == metrics["truncated"]["n"] == expected


def test_eval_cli_rejects_bad_split(tmp_path, two_behaviour_world):
    from spillover.cli._eval import register

    app = typer.Typer()
    register(app)

    @app.command("noop")
    def noop() -> None: ...

    result = CliRunner().invoke(app, ["eval", "--model", "tiny", "--world", str(two_behaviour_world), "--split", "nope", "--out", str(tmp_path / "o")])
    assert isinstance(result.exception, BadInputError)


def test_score_continuations_shares_prefixes_across_batches(tiny_lm):
    # Prefixes repeat with 1-4 continuations each, one continuation is empty, and batch_size 3 is
    # smaller than the largest group: every score must still equal the direct computation.
    shared = "Question: which colour is the sky on a clear day?"
    other = "Hi"
    prefixes = [shared, other, shared, shared, other, "A third prefix", shared]
    conts = [" blue", " there friend", " green and bright", "", " hello", " alone", " red"]
    got = score_continuations(tiny_lm, prefixes, conts, batch_size=3)
    for (lp, n), p, c in zip(got, prefixes, conts):
        if not c:
            assert (lp, n) == (0.0, 0)
            continue
        assert n == len(tiny_lm.tokenizer(c, add_special_tokens=False)["input_ids"])
        assert lp == pytest.approx(_direct_logprob(tiny_lm, p, c), abs=1e-3)


# Integer bounds are click ranges (a usage error, exit 2, shown in --help); the rest is the settings model's check.
@pytest.mark.parametrize("option,value,usage", [("--max-new-tokens", "-5", True), ("--max-new-tokens", "0", True), ("--temperature", "-1", False),
                                                ("--temperature", "inf", False), ("--samples", "0", True), ("--probes", "likelihood,vibes", False)])
def test_eval_cli_refuses_nonsense_numbers_and_writes_nothing(tmp_path, two_behaviour_world, option, value, usage):
    from spillover.cli._eval import register

    app = typer.Typer()
    register(app)

    @app.command("noop")
    def noop() -> None: ...

    out = tmp_path / "o"
    result = CliRunner().invoke(app, ["eval", "--model", "tiny", "--world", str(two_behaviour_world), "--out", str(out), option, value])
    if usage:
        assert result.exit_code == 2 and f"Invalid value for '{option}'" in result.output, result.output
    else:
        assert isinstance(result.exception, BadInputError), result.output
        assert str(result.exception).startswith(f"{option}: Input should be") and "(got " in str(result.exception)
    assert not out.exists()
