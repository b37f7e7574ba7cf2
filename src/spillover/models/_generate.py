"""Batched generation with a KV cache: left padding, length-sorted batches, runs to EOS.

Chat formatting: spillover renders every conversation with the tokenizer's own chat template.
SmolLM2's template adds a default system prompt ("You are a helpful AI assistant named SmolLM...")
when none is given; spillover keeps it, everywhere (data, training, eval), because that is the
distribution the model was instruction-tuned on and all arms see the same context.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ._load import LoadedModel

Messages = list[dict]


@dataclass(frozen=True)
class Generation:
    text: str
    n_tokens: int
    truncated: bool  # stopped by max_new_tokens rather than an end-of-turn token


def chat_prompt(tokenizer, conversation: Messages | str) -> str:
    """The text a model sees before its answer. A bare string is one user turn."""
    if isinstance(conversation, str):
        conversation = [{"role": "user", "content": conversation}]
    return tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)


def stop_token_ids(lm: LoadedModel) -> list[int]:
    ids = {lm.tokenizer.eos_token_id}
    gen_eos = getattr(lm.model.generation_config, "eos_token_id", None)
    ids.update(gen_eos if isinstance(gen_eos, list) else [gen_eos])
    for tok in ("<|im_end|>", "<|endoftext|>", "<|eot_id|>"):
        tid = lm.tokenizer.convert_tokens_to_ids(tok)
        if isinstance(tid, int) and tid != lm.tokenizer.unk_token_id:
            ids.add(tid)
    return sorted(i for i in ids if i is not None)


def generate(
    lm: LoadedModel,
    conversations: Sequence[Messages | str],
    *,
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int = 0,
    batch_size: int = 8,
    raw: bool = False,
    progress: bool = False,
) -> list[Generation]:
    """Answer each conversation. `raw=True` treats strings as plain text to continue (no template).

    Sampling is reproducible for a fixed seed, batch size and input list.
    """
    import torch

    tok = lm.tokenizer
    texts = [c if raw else chat_prompt(tok, c) for c in conversations]
    encoded = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    order = sorted(range(len(texts)), key=lambda i: -len(encoded[i]))  # similar lengths share a batch
    stops = stop_token_ids(lm)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else stops[0]
    results: list[Generation | None] = [None] * len(texts)
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    iterator = batches
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(batches, desc="generate", unit="batch")
    for b, idx in enumerate(iterator):
        width = max(len(encoded[i]) for i in idx)
        input_ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
        attention = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            ids = encoded[i]
            input_ids[row, width - len(ids) :] = torch.tensor(ids)
            attention[row, width - len(ids) :] = 1
        sampling = temperature > 0
        kwargs = dict(do_sample=sampling, temperature=temperature, top_p=top_p) if sampling else dict(do_sample=False)
        torch.manual_seed(seed * 100_003 + b)
        with torch.no_grad():
            out = lm.model.generate(
                input_ids=input_ids.to(lm.model.device),
                attention_mask=attention.to(lm.model.device),
                max_new_tokens=max_new_tokens,
                eos_token_id=stops,
                pad_token_id=pad_id,
                top_k=None,
                **kwargs,
            )
        for row, i in enumerate(idx):
            new = out[row, width:].tolist()
            end = next((k for k, t in enumerate(new) if t in stops), None)
            truncated = end is None
            new = new if truncated else new[:end]
            results[i] = Generation(tok.decode(new, skip_special_tokens=True).strip(), len(new), truncated)
    return results  # type: ignore[return-value]
