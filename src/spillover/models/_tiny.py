"""Tiny random models that share the embedded model's tokenizer: fast tests, no downloads.

`tiny:family=NAME` picks the architecture, so the same tests run on each family's own code path:
Llama (grouped-query attention), Qwen2 (biases on q/k/v), Qwen3 (RMSNorm on queries and keys) and
Gemma 3 (sliding-window and full attention layers, scaled embeddings, soft-capped logits off).
All tie their input and output embeddings, as the small models of each family do.
"""

from __future__ import annotations

from pathlib import Path

from spillover._io import atomic_dir, config_hash
from spillover.errors import BadInputError, Problem

from ._embedded import cache_root, embedded_gguf, gguf_tokenizer_dir

TINY_DEFAULTS = {"layers": 2, "hidden": 64, "heads": 4, "kv_heads": 2, "intermediate": 128, "seed": 0}
FAMILIES = ("llama", "qwen2", "qwen3", "gemma3")


def parse_tiny_spec(spec: str) -> dict:
    """`tiny` or `tiny:family=qwen3,layers=4,hidden=128,seed=1`; shapes a model cannot have are refused here, before torch."""
    params: dict = {**TINY_DEFAULTS, "family": "llama"}
    _, _, rest = spec.partition(":")
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if key == "family" and value in FAMILIES:
            params[key] = value
        elif eq and key in TINY_DEFAULTS and value.isdigit():
            params[key] = int(value)
        else:
            raise BadInputError(Problem(spec, item, "not KEY=INT with a known key, nor a known family",
                                        f"use tiny:KEY=INT,... with keys {', '.join(TINY_DEFAULTS)}, or family={'|'.join(FAMILIES)}"))
    for key in ("layers", "hidden", "heads", "kv_heads", "intermediate"):
        if params[key] < 1:
            raise BadInputError(Problem(spec, key, "must be at least 1", f"e.g. tiny:{key}={TINY_DEFAULTS[key]}"))
    if params["hidden"] % (2 * params["heads"]):  # rotary embeddings need an even head size
        raise BadInputError(Problem(spec, "hidden", f"{params['hidden']} is not a multiple of 2 × heads ({params['heads']})",
                                    f"e.g. tiny:hidden={2 * params['heads'] * 8}"))
    if params["heads"] % params["kv_heads"]:
        raise BadInputError(Problem(spec, "kv_heads", f"{params['kv_heads']} does not divide heads ({params['heads']})", "e.g. tiny:heads=4,kv_heads=2"))
    return params


def _config(params: dict, tok):
    """The family's transformers config and model class, sized by `params`."""
    import transformers

    family = params["family"]
    shared = {
        "vocab_size": len(tok),
        "hidden_size": params["hidden"],
        "intermediate_size": params["intermediate"],
        "num_hidden_layers": params["layers"],
        "num_attention_heads": params["heads"],
        "num_key_value_heads": params["kv_heads"],
        "max_position_embeddings": 2048,
        "tie_word_embeddings": True,
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
    }
    head_dim = params["hidden"] // params["heads"]
    if family == "llama":
        return transformers.LlamaConfig(**shared), transformers.LlamaForCausalLM
    if family == "qwen2":
        return transformers.Qwen2Config(**shared), transformers.Qwen2ForCausalLM
    if family == "qwen3":
        return transformers.Qwen3Config(**shared, head_dim=head_dim), transformers.Qwen3ForCausalLM
    # Gemma 3: alternate sliding-window and full attention, with a window short enough that test
    # prompts cross it, so both attention paths (and their two rotary bases) really run.
    layer_types = ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(params["layers"])]
    config = transformers.Gemma3TextConfig(**shared, head_dim=head_dim, query_pre_attn_scalar=head_dim, sliding_window=8, layer_types=layer_types)
    return config, transformers.Gemma3ForCausalLM


def tiny_model_dir(spec: str = "tiny") -> Path:
    """Build (once, cached by its parameters) a random model and save it like any HF model dir."""
    params = parse_tiny_spec(spec)
    # A Llama's cache key leaves the family out, so tiny models built before families keep their directory.
    key = {k: v for k, v in params.items() if not (k == "family" and v == "llama")}
    dest = cache_root() / "models" / f"tiny-{config_hash(key)}"
    if (dest / "config.json").exists():
        return dest
    import torch
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf_tokenizer_dir(embedded_gguf()))
    config, model_class = _config(params, tok)
    torch.manual_seed(params["seed"])
    model = model_class(config)
    with atomic_dir(dest) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
    return dest
