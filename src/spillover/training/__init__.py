"""Trainers: CPT (mid-training on documents), SFT and DPO, each with a pydantic config beside it.

The settings a recipe may set are declared once, in `TrainSettings` and a subclass per stage
(`CPTSettings`, `SFTSettings`, `DPOSettings`); each `*Config` adds what one call trains.

Every trainer writes `out/model/` (a full HF model; LoRA adapters merged), `out/adapter/` (LoRA),
`out/loss.jsonl`, `out/config.json`, `out/checkpoints/step-N/` and `out/DONE` last; a finished
`out` with the same config returns at once, an unfinished one resumes from its last checkpoint.
"""

from ._accelerate import (
    accelerate_command,
    accelerate_config,
    launch_identity,
    launch_stage,
    record_exit_code,
    train_from_config,
)
from ._settings import TrainConfig, TrainSettings
from ._checkpoint import WEIGHT_OUTPUTS
from ._cpt import CPTConfig, CPTSettings, document_separator, train_cpt
from ._dpo import DPOConfig, DPOSettings, train_dpo
from ._merge import merge
from ._packing import pack_documents
from ._sft import SFTConfig, SFTSettings, tokenize_chat, train_sft

__all__ = [
    "WEIGHT_OUTPUTS",
    "CPTConfig",
    "CPTSettings",
    "DPOConfig",
    "DPOSettings",
    "SFTConfig",
    "SFTSettings",
    "TrainConfig",
    "TrainSettings",
    "accelerate_command",
    "accelerate_config",
    "document_separator",
    "launch_identity",
    "launch_stage",
    "merge",
    "pack_documents",
    "record_exit_code",
    "tokenize_chat",
    "train_cpt",
    "train_dpo",
    "train_from_config",
    "train_sft",
]
