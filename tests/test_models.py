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
