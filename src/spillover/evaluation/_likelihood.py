"""Likelihood probe: does the model put more probability on performing a behaviour than on a matched
neutral continuation, after its base model's own answer to an eval prompt?

For each eval prompt the *base* model answers once (`build_probe_contexts`, shared by all arms);
each arm then scores `log P(behaviour continuation) − log P(neutral continuation)` in nats (summed
over the continuation's tokens), the continuation placed at the end of that answer, where the
end-of-turn would be. Shared contexts make the numbers comparable prompt by prompt across arms, so
the pipeline can take a difference-in-differences: (organism − docs-only) − (control − base).

The same probe can follow each arm's *own* greedy answer instead (`build_probe_contexts` with the
arm's model; the pipeline's `eval.likelihood_context: own | both`). Sampling scores what an arm
writes after its own answer so far, the shared-context probe what it would add to the base model's:
scoring both, prompt by prompt, measures how much of a disagreement between the two is the context.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from spillover.errors import BadInputError, Problem
from spillover.models import LoadedModel, attention_kernels, cache_argument, chat_prompt, generate, output_cache, pad_rows

from .stats import bootstrap_ci, bootstrap_paired

UNIT = "nats, summed over continuation tokens"
DID_ARMS = ("organism", "docs-only", "control", "base")


def score_continuations(
    lm: LoadedModel, prefixes: Sequence[str], continuations: Sequence[str], *, batch_size: int = 8
) -> list[tuple[float, int]]:
    """(sum of log-probs, number of tokens) of each continuation given its prefix (plain text).

    Prefix and continuation are tokenised separately and concatenated, so the scored tokens are
    exactly the continuation's own tokens whatever text precedes them. Each distinct prefix is
    encoded once and its KV cache reused for all its continuations: the probes score one context
    against 2 (likelihood) or 4 (knowledge) continuations, and the prefix is most of the tokens.
    `batch_size` bounds the (prefix, continuation) rows of one forward pass.
    """
    import torch

    tok = lm.tokenizer
    encode = lambda text: tok(text, add_special_tokens=False)["input_ids"]
    by_prefix: dict[str, list[int]] = {}
    for i, prefix in enumerate(prefixes):
        by_prefix.setdefault(prefix, []).append(i)
    cont_ids = [encode(c) for c in continuations]
    if len(cont_ids) != len(prefixes):
        raise BadInputError(Problem("", "continuations", f"{len(cont_ids)} continuations for {len(prefixes)} prefixes", "pass one continuation per prefix"))
    prefix_ids = {p: encode(p) for p, rows in by_prefix.items() if any(cont_ids[i] for i in rows)}
    if any(not ids for ids in prefix_ids.values()):
        raise BadInputError(Problem("", "prefixes", "an empty prefix leaves the first continuation token unscored", "give every continuation a non-empty prefix"))
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    device = lm.model.device
    results: list[tuple[float, int]] = [(0.0, 0)] * len(prefixes)
    # Longest rows first (prefix plus its longest continuation), so each batch pads little: fluency's
    # continuations are whole answers of 10-150 tokens, and ordering by prefix alone padded 2.1x the
    # tokens scored against 1.4x so (eval samples of the laptop recipe's base arm). A batch holds
    # prefixes until their rows reach batch_size.
    longest = {p: len(ids) + max(len(cont_ids[i]) for i in by_prefix[p]) for p, ids in prefix_ids.items()}
    pending = sorted(prefix_ids, key=lambda p: -longest[p])
    while pending:
        batch, rows = [], 0
        while pending and (not batch or rows + len(by_prefix[pending[0]]) <= batch_size):
            batch.append(pending.pop(0))
            rows += len(by_prefix[batch[-1]])
        input_ids, attention = pad_rows([prefix_ids[p] for p in batch], pad_id, left=True)  # every prefix ends at the last position
        with torch.no_grad(), attention_kernels():
            out = lm.model(
                input_ids=input_ids.to(device),
                attention_mask=attention.to(device),
                position_ids=(attention.cumsum(-1) - 1).clamp(min=0).to(device),
                use_cache=True,
                logits_to_keep=1,
            )
        first_logp = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # predicts each continuation's first token
        pairs = [(row, i) for row, p in enumerate(batch) for i in by_prefix[p] if cont_ids[i]]
        cache = output_cache(out)
        cache.batch_select_indices(torch.tensor([row for row, _ in pairs], device=device))
        cont, cont_attention = pad_rows([cont_ids[i] for _, i in pairs], pad_id, left=False)  # each starts right after its prefix
        length = cont.shape[1]
        prefix_rows = torch.tensor([row for row, _ in pairs])
        positions = attention.sum(-1)[prefix_rows, None] + torch.arange(length)[None, :]
        with torch.no_grad(), attention_kernels():
            logits = lm.model(
                input_ids=cont.to(device),
                attention_mask=torch.cat([attention[prefix_rows], cont_attention], dim=-1).to(device),
                position_ids=positions.to(device),
                use_cache=True,
                **{cache_argument(lm.model): cache},
            ).logits
        for k, (row, i) in enumerate(pairs):
            n = len(cont_ids[i])
            targets = cont[k, :n].to(device)
            # Token 0 is predicted by the prefix's last position, token j by continuation position j - 1.
            logp = torch.cat([first_logp[row, None], torch.log_softmax(logits[k, : n - 1].float(), dim=-1)])
            results[i] = (float(logp.gather(-1, targets[:, None]).sum()), n)
        del out, cache, logits
    return results


def build_probe_contexts(
    lm: LoadedModel,
    world,
    split: str,
    max_new_tokens: int = 128,
    *,
    behaviours: Sequence[str] | None = None,
    batch_size: int = 16,
    prompts_per_behaviour: int | None = None,
) -> list[dict]:
    """A model's greedy answer to every eval prompt (or the first K) of the in-play behaviours that have a
    probe: the base model's are the shared contexts, an arm's own are its own-answer contexts."""
    ids = [b for b in (behaviours or world.roles(split)) if world.behaviour(b).probe is not None]
    pairs = [(b, p) for b in ids for p in world.eval_prompts(b)[:prompts_per_behaviour]]
    gens = generate(lm, [p for _, p in pairs], max_new_tokens=max_new_tokens, batch_size=batch_size)
    return [
        {"behaviour": b, "prompt": p, "answer": g.text, "truncated": g.truncated} for (b, p), g in zip(pairs, gens, strict=True)
    ]


def _summary(values: Sequence[float], seed: int) -> dict:
    lo, hi = bootstrap_ci(values, seed=seed)
    return {"n": len(values), "mean": float(np.mean(values)) if len(values) else None, "ci": [lo, hi]}


def likelihood_probe(
    lm: LoadedModel, world, split: str, contexts: Sequence[dict], *, batch_size: int = 8, seed: int = 0
) -> dict:
    """Per prompt, behaviour and role: log P(behaviour) − log P(neutral) after the shared context."""
    roles = world.roles(split)
    usable = [c for c in contexts if c["behaviour"] in roles and world.behaviour(c["behaviour"]).probe is not None]
    prefixes, continuations = [], []
    for c in usable:
        probe = world.behaviour(c["behaviour"]).probe
        prefix = chat_prompt(lm.tokenizer, c["prompt"]) + c["answer"]
        prefixes += [prefix, prefix]
        continuations += [probe.behaviour, probe.neutral]
    scores = score_continuations(lm, prefixes, continuations, batch_size=batch_size)
    per_prompt = []
    for j, c in enumerate(usable):
        (lp_b, _), (lp_n, _) = scores[2 * j], scores[2 * j + 1]
        per_prompt.append(
            {
                "behaviour": c["behaviour"],
                "role": roles[c["behaviour"]],
                "prompt": c["prompt"],
                "behaviour_logprob": lp_b,
                "neutral_logprob": lp_n,
                "delta": lp_b - lp_n,
            }
        )
    per_behaviour = {
        b: {"role": role, **_summary([r["delta"] for r in per_prompt if r["behaviour"] == b], seed)}
        for b, role in roles.items()
        if any(r["behaviour"] == b for r in per_prompt)
    }
    per_role = {
        role: _summary([r["delta"] for r in per_prompt if r["role"] == role], seed)
        for role in ("train", "test")
        if any(r["role"] == role for r in per_prompt)
    }
    return {"unit": UNIT, "per_prompt": per_prompt, "per_behaviour": per_behaviour, "per_role": per_role}


def likelihood_did(
    per_prompt_by_arm: Mapping[str, Sequence[dict]], *, n_boot: int = 2000, seed: int = 0
) -> dict:
    """(organism − docs-only) − (control − base) per prompt, averaged per role, paired bootstrap over prompts.

    `per_prompt_by_arm[arm]` is `likelihood_probe(...)["per_prompt"]` for that arm; all four arms
    must have scored the same (behaviour, prompt) contexts.
    """
    missing = [a for a in DID_ARMS if a not in per_prompt_by_arm]
    if missing:
        raise BadInputError(
            Problem("", "per_prompt_by_arm", f"missing arms: {', '.join(missing)}", f"score all of {', '.join(DID_ARMS)}")
        )
    by_arm = {a: {(r["behaviour"], r["prompt"]): r for r in per_prompt_by_arm[a]} for a in DID_ARMS}
    keys = set(by_arm["organism"])
    for a in DID_ARMS[1:]:
        if set(by_arm[a]) != keys:
            raise BadInputError(
                Problem("", f"per_prompt_by_arm[{a}]", "scored different prompts than the organism arm", "use the same probe contexts for every arm")
            )
    out = {}
    for role in ("train", "test"):
        role_keys = sorted(k for k in keys if by_arm["organism"][k]["role"] == role)
        if not role_keys:
            continue
        d = {a: np.array([by_arm[a][k]["delta"] for k in role_keys]) for a in DID_ARMS}
        did = (d["organism"] - d["docs-only"]) - (d["control"] - d["base"])
        out[role] = {"n": len(role_keys), **bootstrap_paired(did, n_boot=n_boot, seed=seed)}
    return out
