"""A tiny random Llama that shares the embedded model's tokenizer: fast tests, no downloads."""

from __future__ import annotations

from pathlib import Path

from spillover._io import atomic_dir, config_hash
from spillover.errors import BadInputError, Problem

from ._embedded import cache_root, embedded_gguf, gguf_tokenizer_dir

TINY_DEFAULTS = {"layers": 2, "hidden": 64, "heads": 4, "kv_heads": 2, "intermediate": 128, "seed": 0}


def parse_tiny_spec(spec: str) -> dict:
    """`tiny` or `tiny:layers=4,hidden=128,seed=1`; shapes a Llama cannot have are refused here, before torch."""
    params = dict(TINY_DEFAULTS)
    _, _, rest = spec.partition(":")
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq or key not in TINY_DEFAULTS or not value.isdigit():
            raise BadInputError(Problem(spec, item, "not KEY=INT with a known key", f"use tiny:KEY=INT,... with keys {', '.join(TINY_DEFAULTS)}"))
        params[key] = int(value)
    for key in ("layers", "hidden", "heads", "kv_heads", "intermediate"):
        if params[key] < 1:
            raise BadInputError(Problem(spec, key, "must be at least 1", f"e.g. tiny:{key}={TINY_DEFAULTS[key]}"))
    if params["hidden"] % (2 * params["heads"]):  # rotary embeddings need an even head size
        raise BadInputError(Problem(spec, "hidden", f"{params['hidden']} is not a multiple of 2 × heads ({params['heads']})",
                                    f"e.g. tiny:hidden={2 * params['heads'] * 8}"))
    if params["heads"] % params["kv_heads"]:
        raise BadInputError(Problem(spec, "kv_heads", f"{params['kv_heads']} does not divide heads ({params['heads']})", "e.g. tiny:heads=4,kv_heads=2"))
    return params


def tiny_model_dir(spec: str = "tiny") -> Path:
    """Build (once, cached by its parameters) a random Llama and save it like any HF model dir."""
    params = parse_tiny_spec(spec)
    dest = cache_root() / "models" / f"tiny-{config_hash(params)}"
    if (dest / "config.json").exists():
        return dest
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(gguf_tokenizer_dir(embedded_gguf()))
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=params["hidden"],
        intermediate_size=params["intermediate"],
        num_hidden_layers=params["layers"],
        num_attention_heads=params["heads"],
        num_key_value_heads=params["kv_heads"],
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(params["seed"])
    model = LlamaForCausalLM(config)
    with atomic_dir(dest) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
    return dest
