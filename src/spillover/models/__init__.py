"""Models: `load(spec)` for the embedded default, tiny test models, local dirs, GGUF files and hub ids."""

from ._attention import attention_kernels
from ._chat import CHAT_TEMPLATES, TURN_END_TEXT, chat_prompt, read_chat_template, render_chat
from ._embedded import cache_root, embedded_gguf
from ._generate import Generation, cache_argument, generate, output_cache, pad_rows, stop_token_ids
from ._load import DEFAULT_MODEL, STAGE_MODEL_DIR, LoadedModel, load, model_info, resolve

__all__ = [
    "CHAT_TEMPLATES",
    "DEFAULT_MODEL",
    "STAGE_MODEL_DIR",
    "TURN_END_TEXT",
    "Generation",
    "LoadedModel",
    "attention_kernels",
    "cache_argument",
    "cache_root",
    "chat_prompt",
    "embedded_gguf",
    "generate",
    "load",
    "model_info",
    "output_cache",
    "pad_rows",
    "read_chat_template",
    "render_chat",
    "resolve",
    "stop_token_ids",
]
