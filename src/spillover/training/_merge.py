"""Merge LoRA adapters into their base weights and export a plain safetensors model directory."""

from __future__ import annotations

from pathlib import Path

from spillover._io import atomic_dir
from spillover.errors import BadInputError, Problem


def adapter_dir(src: str | Path) -> Path:
    """`src` is an adapter dir, or a stage out dir holding `adapter/`."""
    src = Path(src).expanduser()
    for candidate in (src, src / "adapter"):
        if (candidate / "adapter_config.json").exists():
            return candidate
    raise BadInputError(Problem(str(src), "adapter", "no adapter_config.json here or in adapter/", "pass a LoRA adapter dir or a LoRA stage's out dir"))


def merge(src: str | Path, out_dir: str | Path, *, device: str | None = None) -> Path:
    """Load base + adapter, fold the adapters into the weights and save a model `transformers` loads.

    The merged model keeps the dtype the base loads in (fp32 on CPU, bf16 on CUDA).
    """
    from spillover.models import load

    lm = load(str(adapter_dir(src)), device=device)
    merged = lm.model.merge_and_unload()
    with atomic_dir(out_dir) as tmp:
        merged.save_pretrained(tmp, safe_serialization=True)
        lm.tokenizer.save_pretrained(tmp)
    return Path(out_dir)
