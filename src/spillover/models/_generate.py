"""Batched generation with a KV cache: left padding, length-sorted batches, runs to EOS.

The decoding loop is our own rather than `model.generate`: it drops a row from the batch (and its
KV cache) as soon as the row ends its turn. Answers to "In two sentences" prompts end at 30-50
tokens while a batch runs to its longest (often the 96-token cap), so `generate` spent about half
of its decoding steps on finished rows. And the tokens every prompt of a batch starts with (the
chat template's system prompt and a recipe's prompt prefix: 30 of the laptop recipe's 44 prompt
tokens on average) are encoded once, in one row, and their KV cache shared by every row.

Chat formatting is `_chat.chat_prompt` (the tokenizer's template, or the one `load` was given).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from spillover._settings import NonNegFloat, PositiveInt, checked

from ._attention import attention_kernels
from ._chat import Messages, chat_prompt, turn_end_text
from ._load import LoadedModel


@dataclass(frozen=True)
class Generation:
    text: str
    n_tokens: int
    truncated: bool  # stopped by max_new_tokens rather than an end-of-turn token (or the template's end-of-turn text)


def stop_token_ids(lm: LoadedModel) -> list[int]:
    ids = {lm.tokenizer.eos_token_id}
    gen_eos = getattr(lm.model.generation_config, "eos_token_id", None)
    ids.update(gen_eos if isinstance(gen_eos, list) else [gen_eos])
    for tok in ("<|im_end|>", "<|endoftext|>", "<|eot_id|>"):
        tid = lm.tokenizer.convert_tokens_to_ids(tok)
        if isinstance(tid, int) and tid != lm.tokenizer.unk_token_id:
            ids.add(tid)
    return sorted(i for i in ids if i is not None)


def pad_rows(rows: Sequence[Sequence[int]], pad_id: int, *, left: bool):
    """(input_ids, attention_mask) for token lists of different lengths, padded on the left (every
    row ends at the last position, as generation and prefix scoring need) or on the right."""
    import torch

    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        span = slice(width - len(r), width) if left else slice(0, len(r))
        input_ids[i, span] = torch.tensor(r, dtype=torch.long)
        attention[i, span] = 1
    return input_ids, attention


def cache_argument(model) -> str:
    """The forward argument that takes a KV cache: transformers renamed `past_key_values` to `cache`."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def output_cache(out):
    """The KV cache a forward pass returned, under either name."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


@checked
def generate(
    lm: LoadedModel,
    conversations: Sequence[Messages | str],
    *,
    max_new_tokens: PositiveInt = 256,
    temperature: NonNegFloat = 0.0,
    top_p: float = 1.0,
    seed: int = 0,
    batch_size: PositiveInt = 8,
    raw: bool = False,
    progress: bool = False,
    on_step: Callable[[list[int], list[int]], bool] | None = None,
) -> list[Generation]:
    """Answer each conversation. `raw=True` treats strings as plain text to continue (no template).

    Greedy at temperature 0; otherwise sampled at `temperature` with nucleus `top_p`, reproducible
    for a fixed seed, batch size and input list. Under a built-in template (`plain`), an answer also
    ends where the model starts the next user turn; the text is cut there (`n_tokens` counts it).

    `on_step(indices, tokens)`, when given, is called after every decoding step with the indices
    (into `conversations`) of the rows that just made a token and those tokens (a server streams
    them). Returning True stops all decoding: rows keep the tokens they have (as truncated) and
    conversations whose batch had not started come back empty.
    """
    import torch

    tok = lm.tokenizer
    texts = [c if raw else chat_prompt(tok, c) for c in conversations]
    encoded = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    order = sorted(range(len(texts)), key=lambda i: -len(encoded[i]))  # similar lengths share a batch
    stops = stop_token_ids(lm)
    end_text = () if raw else turn_end_text(tok)
    ends = (lambda row: any(s in tok.decode(row[-16:]) for s in end_text)) if end_text else None
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else stops[0]
    results: list[Generation | None] = [None] * len(texts)
    stopped = False
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    iterator = batches
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(batches, desc="generate", unit="batch")
    for b, idx in enumerate(iterator):
        if stopped:  # on_step asked to stop: batches not started come back empty
            new_tokens: list[list[int]] = [[] for _ in idx]
        else:
            generator = torch.Generator(device=lm.model.device).manual_seed(seed * 100_003 + b)

            def step(rows: list[int], tokens: list[int], idx=idx) -> bool:
                nonlocal stopped
                stopped = on_step([idx[r] for r in rows], tokens)
                return stopped

            with attention_kernels():
                input_ids, attention, cache = _shared_prefix(lm.model, [encoded[i] for i in idx], pad_id)
                new_tokens = _decode(lm.model, input_ids, attention, max_new_tokens, stops, temperature, top_p, generator, ends, step if on_step else None, cache)
        for row, i in enumerate(idx):
            new = new_tokens[row]
            end = next((k for k, t in enumerate(new) if t in stops), None)
            truncated = end is None
            new = new if truncated else new[:end]
            text = tok.decode(new, skip_special_tokens=True)
            cut = min((text.find(s) for s in end_text if s in text), default=None)
            if cut is not None:
                text, truncated = text[:cut], False
            results[i] = Generation(text.strip(), len(new), truncated)
    return results  # type: ignore[return-value]


# Shorter common prefixes are not worth a forward pass of their own.
MIN_SHARED_TOKENS = 8


def _shared_prefix(model, rows: list[list[int]], pad_id: int):
    """(input_ids, attention, cache) to start decoding `rows` from. With no cache, input_ids are the
    left-padded rows. When the rows start with at least MIN_SHARED_TOKENS common tokens, those are
    encoded once and the cache repeated for every row; input_ids are then the left-padded rest of each
    row (one token at least), and attention covers prefix and rest: [1]*shared + [0]*pad + [1]*rest."""
    import os

    import torch

    shared = min(len(os.path.commonprefix(rows)), min(map(len, rows)) - 1)
    if len(rows) < 2 or shared < MIN_SHARED_TOKENS or not _full_attention_only(model):
        return (*pad_rows(rows, pad_id, left=True), None)
    with torch.no_grad():
        out = model(input_ids=torch.tensor([rows[0][:shared]], device=model.device), use_cache=True, logits_to_keep=1)
    cache = output_cache(out)
    cache.batch_repeat_interleave(len(rows))
    input_ids, rest = pad_rows([r[shared:] for r in rows], pad_id, left=True)
    return input_ids, torch.cat([torch.ones((len(rows), shared), dtype=rest.dtype), rest], dim=-1), cache


def _full_attention_only(model) -> bool:
    """Whether every layer attends to the whole cache. A sliding window counts cache slots, and the
    padding between a shared prefix and a row's rest would take slots of the window (Gemma 3, Mistral)."""
    config = model.config.get_text_config()
    types = getattr(config, "layer_types", None)
    if types is not None:
        return all(t == "full_attention" for t in types)
    return getattr(config, "sliding_window", None) is None or getattr(config, "use_sliding_window", True) is False


def _decode(
    model, input_ids, attention, max_new_tokens: int, stops: list[int], temperature: float, top_p: float, generator,
    ends: Callable[[list[int]], bool] | None = None, on_step: Callable[[list[int], list[int]], bool] | None = None, cache=None,
) -> list[list[int]]:
    """New tokens of each left-padded row, up to and including its first stop token (or until `ends(row)`
    says it has ended); all rows stop when `on_step(rows, tokens)` returns True. With a `cache` of the
    rows' first tokens (`_shared_prefix`), `attention` covers those and `input_ids` the rest."""
    import torch

    device = model.device
    new_tokens: list[list[int]] = [[] for _ in range(input_ids.shape[0])]
    live = torch.arange(input_ids.shape[0])  # batch row of each row still generating
    next_position = attention.sum(-1)
    stop_ids = torch.tensor(stops)
    cache_kwarg = cache_argument(model)
    step_ids, mask = input_ids, attention
    positions = (attention.cumsum(-1) - 1).clamp(min=0)[:, -input_ids.shape[1] :]
    for step in range(max_new_tokens):
        with torch.no_grad():
            out = model(
                input_ids=step_ids.to(device),
                attention_mask=mask.to(device),
                position_ids=positions.to(device),
                use_cache=True,
                logits_to_keep=1,
                **({cache_kwarg: cache} if cache is not None else {}),
            )
        cache = output_cache(out)
        chosen = _choose(out.logits[:, -1].float(), temperature, top_p, generator).cpu()
        for row, token in zip(live.tolist(), chosen.tolist()):
            new_tokens[row].append(token)
        if on_step is not None and on_step(live.tolist(), chosen.tolist()):
            break
        finished = torch.isin(chosen, stop_ids)
        if ends is not None:
            finished |= torch.tensor([ends(new_tokens[row]) for row in live.tolist()], dtype=torch.bool)
        going = (~finished).nonzero().squeeze(-1)
        if step == max_new_tokens - 1 or len(going) == 0:
            break
        if len(going) < len(live):  # drop finished rows from the batch and the cache
            cache.batch_select_indices(going.to(device))
            live, mask, chosen, next_position = live[going], mask[going], chosen[going], next_position[going]
        mask = torch.cat([mask, torch.ones((len(live), 1), dtype=mask.dtype)], dim=-1)
        step_ids, positions = chosen[:, None], next_position[:, None]
        next_position = next_position + 1
    return new_tokens


def _choose(logits, temperature: float, top_p: float, generator):
    """Next token per row: argmax at temperature 0, else a draw from the top-p nucleus at `temperature`."""
    import torch

    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, sorted_ids = probs.sort(dim=-1, descending=True)
        outside = sorted_probs.cumsum(-1) - sorted_probs > top_p  # keep the smallest set reaching top_p
        sorted_probs[outside] = 0.0
        probs = torch.zeros_like(probs).scatter(-1, sorted_ids, sorted_probs)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
