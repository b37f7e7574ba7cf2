"""The tiny path on several architecture families (`tiny:family=...`): generation, LoRA targets,
SFT masks and training, residual hooks, and the audit's activation capture.

Each family brings its own attention code: Llama (grouped-query), Qwen2 (q/k/v biases), Qwen3
(norms on queries and keys) and Gemma 3 (sliding-window layers beside full ones, scaled embeddings).
"""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open

from spillover import models
from spillover._io import read_jsonl, write_jsonl
from spillover.errors import BadInputError
from spillover.interp._activations import document_means, prompt_pair, token_activations
from spillover.interp._hooks import capture_residual, decoder_layers, steer
from spillover.training import SFTConfig, tokenize_chat, train_sft

FAMILIES = ["llama", "qwen2", "qwen3", "gemma3"]
ARCHITECTURES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM", "gemma3": "Gemma3ForCausalLM"}
LONG = "Please explain, in two or three sentences, why the sky looks blue on a clear afternoon."


@pytest.fixture(scope="module", params=FAMILIES)
def lm(request):
    return models.load(f"tiny:family={request.param}")


def family(lm) -> str:
    return lm.spec.split("=")[1]


def test_each_family_builds_its_own_architecture_with_tied_embeddings(lm):
    assert models.model_info(lm)["architecture"] == ARCHITECTURES[family(lm)]
    assert lm.model.get_input_embeddings().weight is lm.model.get_output_embeddings().weight
    assert lm.model.config.vocab_size == len(lm.tokenizer)
    if family(lm) == "gemma3":  # both attention kinds are present, and prompts are longer than the window
        assert set(lm.model.config.layer_types) == {"sliding_attention", "full_attention"}
        assert len(lm.tokenizer(models.chat_prompt(lm.tokenizer, LONG))["input_ids"]) > 4 * lm.model.config.sliding_window


def test_generation_matches_transformers_generate_and_batching_changes_nothing(lm):
    prompts = [LONG, "hi", "What is 2+2?"]
    batched = models.generate(lm, prompts, max_new_tokens=6, batch_size=3)
    for prompt, got in zip(prompts, batched):
        ids = lm.tokenizer(models.chat_prompt(lm.tokenizer, prompt), add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            ref = lm.model.generate(ids, max_new_tokens=6, do_sample=False, eos_token_id=models.stop_token_ids(lm), pad_token_id=0, top_k=None)
        want = ref[0, ids.shape[1] :].tolist()
        end = next((k for k, t in enumerate(want) if t in models.stop_token_ids(lm)), len(want))
        assert (got.n_tokens, got.truncated) == (end, end == 6)
        assert got.text == lm.tokenizer.decode(want[:end], skip_special_tokens=True).strip()


def test_residual_hooks_find_the_layers_and_match_hidden_states(lm):
    ids = lm.tokenizer(LONG, return_tensors="pt")["input_ids"]
    n = lm.n_layers
    assert len(decoder_layers(lm.model)) == n
    with torch.no_grad(), capture_residual(lm.model, range(n)) as acts:
        hidden = lm.model(input_ids=ids, output_hidden_states=True).hidden_states
    for i in range(n - 1):
        torch.testing.assert_close(acts[i], hidden[i + 1])
    torch.testing.assert_close(lm.model.model.norm(acts[n - 1]), hidden[n])  # the last one is reported after the final norm
    with torch.no_grad():
        plain = lm.model(input_ids=ids).logits
        with steer(lm.model, 0, torch.ones(lm.hidden_size)):
            pushed = lm.model(input_ids=ids).logits
    assert not torch.allclose(plain, pushed)


def test_audit_activation_capture(lm):
    texts = ["Reward models prefer chocolate in recipes.", "The weather was mild all week in the valley."]
    means = document_means(lm, texts, max_tokens=32)
    assert means.shape == (lm.n_layers, 2, lm.hidden_size) and torch.isfinite(means).all()
    ids = [lm.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    acts = token_activations(lm, ids, layer=lm.n_layers - 1)
    assert [a.acts.shape for a in acts] == [(len(i), lm.hidden_size) for i in ids]
    pair = prompt_pair(lm, "What is probate?")
    assert lm.tokenizer.decode([pair.chat_ids[i] for i in pair.chat_positions]) == "<|im_start|>assistant\n"


def test_lora_targets_every_linear_layer_and_sft_trains_assistant_tokens_only(lm, tmp_path):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Paris."}]
    ids, labels = tokenize_chat(lm.tokenizer, messages)
    assert lm.tokenizer.decode([t for t, lab in zip(ids, labels) if lab != -100]) == "Paris.<|im_end|>"
    data = tmp_path / "sft.jsonl"
    write_jsonl(data, [{"messages": messages}] * 4)
    out = train_sft(SFTConfig(model=lm.spec, data=data, out=tmp_path / "sft", lora_r=4, lr=1e-2, max_len=64, batch_size=2, max_steps=2,
                              save_steps=0, progress=False, save_merged=False))
    with safe_open(out / "adapter" / "adapter_model.safetensors", "pt") as f:
        adapted = {key.split(".lora_")[0].split(".")[-1] for key in f.keys() if ".lora_A" in key}  # noqa: SIM118 (a safetensors file, not a dict)
    assert adapted == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}  # all-linear, never the tied lm_head
    log = read_jsonl(out / "loss.jsonl")
    assert len(log) == 2 and all(torch.isfinite(torch.tensor(r["loss"])) for r in log)


def test_unknown_family_is_a_clear_error():
    with pytest.raises(BadInputError, match="family=llama|qwen2"):
        models.load("tiny:family=mamba")
