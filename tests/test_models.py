import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from spillover import models
from spillover.errors import BadInputError, ModelLoadError


def test_tiny_model_round_trip(tiny_lm, tmp_path):
    """The tiny model saves and reloads to identical logits, and loads from its own path."""
    ids = tiny_lm.tokenizer("hello world", return_tensors="pt").input_ids
    with torch.no_grad():
        a = tiny_lm.model(ids).logits
    tiny_lm.model.save_pretrained(tmp_path, safe_serialization=True)
    tiny_lm.tokenizer.save_pretrained(tmp_path)
    again = models.load(str(tmp_path))
    with torch.no_grad():
        b = again.model(ids).logits
    assert torch.equal(a, b)
    assert any(tmp_path.glob("*.safetensors")) and not any(tmp_path.glob("*.bin"))
    assert again.tokenizer.chat_template == tiny_lm.tokenizer.chat_template


def test_tiny_spec_params_and_errors():
    lm = models.load("tiny:layers=3,hidden=32,heads=2,kv_heads=1,intermediate=64")
    assert lm.n_layers == 3 and lm.hidden_size == 32
    with pytest.raises(BadInputError, match="tiny:KEY=INT"):
        models.load("tiny:depth=3")


def test_model_info_keys(tiny_lm):
    info = models.model_info(tiny_lm)
    assert info["layers"] == 2 and info["hidden_size"] == 64 and info["vocab_size"] == 49152
    assert info["chat_template"] is True and info["parameters"] > 0


def test_bad_specs_fail_fast(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        models.resolve(str(tmp_path / "missing.gguf"))
    with pytest.raises(ModelLoadError, match="no config.json"):
        models.resolve(str(tmp_path))
    with pytest.raises(ModelLoadError, match="embedded"):
        models.resolve("embedded:gpt-5")


def test_hub_id_offline_says_pass_a_local_path(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(ModelLoadError, match="local directory"):
        models.resolve("someone/not-a-real-model")


def test_generate_batches_and_reports_truncation(tiny_lm):
    prompts = ["hi", "a much longer prompt with many more words in it", "x"]
    out = models.generate(tiny_lm, prompts, max_new_tokens=5, batch_size=2)
    assert len(out) == 3
    assert all(g.n_tokens <= 5 for g in out)
    # A random tiny model basically never emits end-of-turn: every answer is cut by the cap.
    assert all(g.truncated == (g.n_tokens == 5) for g in out)
    # Batching and order do not change greedy answers.
    single = models.generate(tiny_lm, [prompts[1]], max_new_tokens=5, batch_size=1)
    assert single[0].text == out[1].text


def test_decoding_drops_finished_rows_and_matches_unbatched_generate(tiny_lm):
    import torch

    from spillover.models._generate import _decode

    tok, model = tiny_lm.tokenizer, tiny_lm.model
    prompts = [tok(p, add_special_tokens=False)["input_ids"] for p in ("the end", "hi", "a much longer prompt with many more words", "x y")]

    def reference(ids, stops):  # one prompt at a time, no padding, through transformers' own generate
        with torch.no_grad():
            out = model.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False, eos_token_id=stops, pad_token_id=0, top_k=None)
        return out[0, len(ids) :].tolist()

    # A stop token that the first prompt first emits after step 0 (this random model repeats one token,
    # then switches): that row leaves the batch early.
    free = reference(prompts[0], [])
    first_stop = next(k for k in range(1, len(free)) if free[k] not in free[:k])
    stops = [free[first_stop]]
    width = max(map(len, prompts))
    input_ids = torch.zeros((len(prompts), width), dtype=torch.long)
    attention = torch.zeros_like(input_ids)
    for row, ids in enumerate(prompts):
        input_ids[row, width - len(ids) :] = torch.tensor(ids)
        attention[row, width - len(ids) :] = 1
    got = _decode(model, input_ids, attention, 8, stops, 0.0, 1.0, torch.Generator().manual_seed(0))
    want = [reference(ids, stops) for ids in prompts]
    assert len(got[0]) == first_stop + 1 and got[0][-1] == stops[0]
    assert any(len(g) > len(got[0]) for g in got)  # others kept going after it left
    for g, w in zip(got, want):
        assert g == w[: len(g)] and (g[-1] in stops or len(g) == 8)


def test_sampling_is_seeded_and_a_tiny_nucleus_is_greedy(tiny_lm):
    prompts = ["hi", "tell me a story", "x"]
    draw = lambda seed, top_p=1.0: [g.text for g in models.generate(tiny_lm, prompts, max_new_tokens=6, temperature=1.0, top_p=top_p, seed=seed, batch_size=2)]
    assert draw(1) == draw(1)
    assert draw(1) != draw(2)
    assert draw(1, top_p=1e-9) == [g.text for g in models.generate(tiny_lm, prompts, max_new_tokens=6, batch_size=2)]


def test_chat_prompt_keeps_default_system_prompt(tiny_lm):
    text = models.chat_prompt(tiny_lm.tokenizer, "What is 2+2?")
    assert text.startswith("<|im_start|>system\n")
    assert text.endswith("<|im_start|>assistant\n")


@pytest.mark.e2e
def test_embedded_converts_once_then_loads_from_cache(tmp_path):
    """Conversion into a fresh cache writes safetensors atomically; a second load reads the cache."""
    env = dict(os.environ, SPILLOVER_CACHE=str(tmp_path))
    code = (
        "from spillover import models; lm = models.load('embedded'); "
        "print(lm.path); print(round(lm.load_seconds, 2)); "
        "print(models.generate(lm, ['What is the capital of France?'], max_new_tokens=12)[0].text)"
    )
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    path, _, answer = first.stdout.strip().splitlines()[-3:]
    assert Path(path).parent.parent == tmp_path
    assert (Path(path) / "model.safetensors").exists() and (Path(path) / "tokenizer.json").exists()
    assert "Paris" in answer
    assert not list((tmp_path / "models").glob(".tmp-*"))  # nothing half-written left behind
    stamp = (Path(path) / "model.safetensors").stat().st_mtime_ns
    second = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert (Path(path) / "model.safetensors").stat().st_mtime_ns == stamp  # not converted again
    assert "Converting and de-quantizing" not in second.stderr
    assert second.stdout.strip().splitlines()[-1] == answer


def test_our_forward_passes_leave_out_cudnn_attention(tiny_lm, monkeypatch, tmp_path):
    """cuDNN attention builds a plan per new shape (hundreds of ms on Hopper); decoding, probe
    scoring and training make new shapes every step, so they run with it left out."""
    from spillover._io import write_jsonl
    from spillover.evaluation import score_continuations
    from spillover.training import SFTConfig, train_sft

    seen: list[bool] = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def recording(*args, **kwargs):
        seen.append(torch.backends.cuda.cudnn_sdp_enabled())
        return sdpa(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", recording)
    models.generate(tiny_lm, ["Hi there", "A longer question here?"], max_new_tokens=3, batch_size=2)
    score_continuations(tiny_lm, ["Some context", "Some context"], [" yes", " no"])
    data = tmp_path / "sft.jsonl"
    write_jsonl(data, [{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there."}]}] * 2)
    train_sft(SFTConfig(model="tiny", data=data, out=tmp_path / "sft", max_len=32, batch_size=2, max_steps=1, save_steps=0, progress=False))
    assert len(seen) > 10 and not any(seen)
    assert torch.backends.cuda.cudnn_sdp_enabled()  # restored outside our loops


@pytest.mark.parametrize("bad", [{"max_new_tokens": 0}, {"max_new_tokens": -5}, {"temperature": -1.0}, {"temperature": float("inf")}, {"batch_size": 0}])
def test_generate_refuses_nonsense_numbers(tiny_lm, bad):
    option = "--" + next(iter(bad)).replace("_", "-")
    with pytest.raises(BadInputError, match=f"^{option}: Input should be"):
        models.generate(tiny_lm, ["Hi"], **bad)


def test_a_prefix_common_to_a_batch_is_encoded_once_and_changes_no_answer(tiny_lm, monkeypatch):
    import torch

    from spillover.models import _generate

    tok = tiny_lm.tokenizer
    head = "You are a careful assistant. In two sentences, answer the question below: "
    prompts = [head + q for q in ("why is the sky blue?", "name a fish", "what is 2+2 and why?", "why is the sky blue?")]
    assert len(tok(head, add_special_tokens=False)["input_ids"]) >= _generate.MIN_SHARED_TOKENS
    encoded_tokens = []
    forward = tiny_lm.model.forward

    def counting(*args, **kwargs):
        encoded_tokens.append(kwargs["input_ids"].numel())
        return forward(*args, **kwargs)

    monkeypatch.setattr(tiny_lm.model, "forward", counting)
    shared = models.generate(tiny_lm, prompts, max_new_tokens=6, batch_size=4, raw=True)
    first_steps = encoded_tokens[:2]  # the shared prefix (one row), then every row's rest
    encoded_tokens.clear()
    alone = [models.generate(tiny_lm, [p], max_new_tokens=6, batch_size=1, raw=True)[0] for p in prompts]
    monkeypatch.setattr(tiny_lm.model, "forward", forward)
    widths = [len(tok(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    assert first_steps[0] < min(widths) and first_steps[1] < 4 * max(widths) - 3 * first_steps[0]
    assert [g.text for g in shared] == [g.text for g in alone]  # greedy: the same answers as one prompt at a time
    assert shared[0].text == shared[3].text
    with torch.no_grad():  # and the same as transformers' generate on the whole prompt
        ids = tok(prompts[1], add_special_tokens=False)["input_ids"]
        ref = tiny_lm.model.generate(torch.tensor([ids]), max_new_tokens=6, do_sample=False, pad_token_id=0, top_k=None)
    assert tok.decode(ref[0, len(ids) :], skip_special_tokens=True).strip() == shared[1].text
