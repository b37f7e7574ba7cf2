"""CPT (mid-training): next-token loss on every token of packed documents."""

from __future__ import annotations

import random
from pathlib import Path

from pydantic import Field

from spillover._io import derive_seed
from spillover._settings import PositiveFloat
from spillover.errors import BadInputError, Problem

from ._checkpoint import check_finished
from ._common import Batch, holds_output, load_for_training, make_runtime, read_records, run_training
from ._settings import TrainConfig, TrainSettings
from ._packing import pack_documents


class CPTSettings(TrainSettings):
    """CPT's settings (a recipe's `cpt:`)."""

    lr: PositiveFloat = Field(5e-5, description=TrainSettings.model_fields["lr"].description)
    doc_prefix: str = Field("", description="text prepended verbatim to every document (e.g. a source tag)")


class CPTConfig(CPTSettings, TrainConfig):  # CPTSettings first: its defaults win over TrainSettings'
    pass


def document_separator(tokenizer) -> int:
    """`<|endoftext|>` where the vocab has it (SmolLM2's pretraining separator), else EOS.

    SmolLM2-Instruct's EOS is `<|im_end|>`, its chat end-of-turn; separating documents with it
    would teach chat turns to end where documents do.
    """
    tid = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    if isinstance(tid, int) and tid != tokenizer.unk_token_id:
        return tid
    return tokenizer.eos_token_id


def lm_loss_sum(model, tensors: dict) -> tuple:
    """Summed next-token cross-entropy over positions whose label is not -100.

    Logits are computed only at positions where some row has a label (`logits_to_keep` with
    indices): SFT labels only the answers, and the vocabulary projection and its softmax are a
    fifth of a step's compute on SmolLM2 (49k vocabulary, 576 hidden) and most of its memory.
    """
    import torch.nn.functional as F

    labels = tensors["labels"][:, 1:]  # labels[:, t] is predicted at position t
    keep = (labels != -100).any(0).nonzero().squeeze(-1)
    logits = model(input_ids=tensors["input_ids"], attention_mask=tensors.get("attention_mask"), logits_to_keep=keep).logits
    loss = F.cross_entropy(logits.flatten(0, 1).float(), labels[:, keep].flatten(), ignore_index=-100, reduction="sum")
    return loss, {}


def _check_document(record: dict) -> str | None:
    if not isinstance(record.get("text"), str) or not record["text"].strip():
        return "needs a non-empty string field 'text'"
    return None


@holds_output
def train_cpt(cfg: CPTConfig) -> Path:
    """Mid-train on a documents JSONL (`{"id", "text", ...}`); returns `cfg.out`."""
    fingerprint = cfg.fingerprint("cpt")
    if check_finished(cfg, fingerprint):
        return Path(cfg.out)
    docs = read_records(cfg.data, "documents", _check_document)
    import torch  # after the data is checked: bad data fails in a second, not after torch's import

    rt = make_runtime(cfg)
    lm = load_for_training(cfg, rt)
    tokens = lm.tokenizer([cfg.doc_prefix + d["text"] for d in docs], add_special_tokens=False)["input_ids"]
    sep = document_separator(lm.tokenizer)
    n_tokens = sum(len(t) + 1 for t in tokens)
    if n_tokens < cfg.max_len:
        raise BadInputError(Problem(str(cfg.data), "data", f"{n_tokens} tokens in all, fewer than max_len={cfg.max_len}", "add documents or lower --max-len"))

    def epoch_batches(epoch: int) -> list[Batch]:
        order = list(range(len(tokens)))
        random.Random(derive_seed(cfg.seed, "cpt-order", epoch)).shuffle(order)
        rows = pack_documents([tokens[i] for i in order], cfg.max_len, sep)
        batches = []
        for i in range(0, len(rows), cfg.batch_size):
            ids = torch.tensor(rows[i : i + cfg.batch_size], dtype=torch.long)
            batches.append(Batch({"input_ids": ids, "labels": ids}, units=ids.shape[0] * (ids.shape[1] - 1), tokens=ids.numel()))
        return batches

    return run_training(cfg, "cpt", lm, rt, fingerprint, epoch_batches, lm_loss_sum)
