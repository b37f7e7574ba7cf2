"""`load(spec)`: one entry point for every model spillover uses."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spillover._io import is_done
from spillover.errors import ModelLoadError

from ._chat import read_chat_template
from ._embedded import EMBEDDED_NAME, convert_gguf, embedded_gguf
from ._tiny import tiny_model_dir

DEFAULT_MODEL = "embedded"
# Where a training stage writes its model (training/_common.py). A finished stage's directory stands
# for that model wherever a model spec is taken, so stages stack: CPT -> SFT -> DPO.
STAGE_MODEL_DIR = "model"


@dataclass
class LoadedModel:
    """A causal LM, its tokenizer, and where it came from (a local directory other tools can load)."""

    model: Any
    tokenizer: Any
    spec: str
    path: Path
    device: str
    dtype: Any
    load_seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def n_layers(self) -> int:
        return self.model.config.num_hidden_layers

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size


def resolve(spec: str = DEFAULT_MODEL) -> Path:
    """Turn a spec into a local Hugging Face directory (converting/caching where needed).

    Specs: `embedded` (= `embedded:smollm2-135m-instruct`), `tiny[:k=v,...]`, a local HF directory,
    a `.gguf` file, or a hub id (only where a hub is reachable).
    """
    spec = spec.strip()
    if spec in ("embedded", f"embedded:{EMBEDDED_NAME}"):
        return convert_gguf(embedded_gguf())
    if spec.startswith("embedded:"):
        raise ModelLoadError(f"unknown embedded model '{spec}'; the only one is embedded:{EMBEDDED_NAME}")
    if spec == "tiny" or spec.startswith("tiny:"):
        return tiny_model_dir(spec)
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelLoadError(f"GGUF file not found: {path}")
        with path.open("rb") as f:
            if f.read(4) != b"GGUF":  # checked here, before torch and transformers are imported
                raise ModelLoadError(f"{path}: not a GGUF file (it does not start with the GGUF magic bytes); pass a .gguf model")
        return convert_gguf(path.resolve())
    if path.is_dir():
        if is_done(path) and (path / STAGE_MODEL_DIR / "config.json").exists():
            return (path / STAGE_MODEL_DIR).resolve()  # a finished training stage: its model/ holds the weights
        if not (path / "config.json").exists():
            raise ModelLoadError(f"{path} is a directory but has no config.json; pass a Hugging Face model directory")
        return path.resolve()
    if spec.startswith((".", "/", "~")) or os.sep in spec and spec.count("/") != 1:
        raise ModelLoadError(f"model path not found: {spec}")
    return _hub_snapshot(spec)


def _hub_snapshot(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.safetensors", "tokenizer*", "*.model", "*.txt"]
    try:  # the local HF cache first: no network needed
        return Path(snapshot_download(repo_id, allow_patterns=patterns, local_files_only=True))
    except Exception:
        pass
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns, etag_timeout=10))
    except Exception as e:
        raise ModelLoadError(
            f"could not fetch '{repo_id}' from the Hugging Face hub ({type(e).__name__}); "
            "offline, download it elsewhere and pass the local directory with --model PATH"
        ) from None


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def default_dtype(device: str):
    import torch

    return torch.bfloat16 if device.startswith("cuda") else torch.float32


def load(
    spec: str = DEFAULT_MODEL, *, device: str | None = None, dtype: Any = None, adapter: str | None = None, chat_template: str | None = None
) -> LoadedModel:
    """Load a model and its tokenizer. CPU → fp32, CUDA → bf16 unless told otherwise.

    `adapter`: a PEFT adapter directory applied on top (left unmerged).
    `chat_template`: a built-in template name (`plain`) or a Jinja file, set on the tokenizer in
    place of its own (base models have none); everything that formats chats then uses it.
    A directory holding only a PEFT adapter (adapter_config.json) also works as `spec`.
    """
    t0 = time.perf_counter()
    template = read_chat_template(chat_template) if chat_template else None  # a bad name fails before loading
    path = Path(spec) if Path(spec).expanduser().is_dir() else None
    if path is not None and (path / "adapter_config.json").exists() and not (path / "config.json").exists():
        adapter = str(path)
        from peft import PeftConfig

        spec = PeftConfig.from_pretrained(str(path)).base_model_name_or_path
    local = resolve(spec)  # a bad spec fails here, before the seconds torch and transformers take to import
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = device or default_device()
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    dtype = dtype or default_dtype(device)
    tokenizer = AutoTokenizer.from_pretrained(local)
    if template is not None:
        tokenizer.chat_template = template
    model = AutoModelForCausalLM.from_pretrained(local, dtype=dtype).to(device)
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    model.eval()
    if tokenizer.pad_token is None:
        # Masks always come from attention_mask, never from pad ids (SmolLM2's pad is its EOS).
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(model, tokenizer, spec, local, device, dtype, time.perf_counter() - t0)


def model_info(lm: LoadedModel) -> dict:
    cfg = lm.model.config
    return {
        "spec": lm.spec,
        "path": str(lm.path),
        "architecture": (cfg.architectures or [type(lm.model).__name__])[0],
        "parameters": sum(p.numel() for p in lm.model.parameters()),
        "layers": cfg.num_hidden_layers,
        "hidden_size": cfg.hidden_size,
        "vocab_size": cfg.vocab_size,
        "chat_template": bool(getattr(lm.tokenizer, "chat_template", None)),
        "device": lm.device,
        "dtype": str(lm.dtype).removeprefix("torch."),
        "load_seconds": round(lm.load_seconds, 2),
    }
