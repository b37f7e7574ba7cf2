"""The work each pipeline stage does, behind one small interface.

`run_recipe` only decides *what* runs (caching, arms, seeds, order); a `Stages` object does the
work by calling the library packages (`LibraryStages` in `_library`). Tests pass their own
`Stages` to exercise the orchestration without training anything.

Every method writes its artifacts into `out` (the stage directory) and returns nothing; the files
it writes are the contract (docs/architecture.md, docs/results-schema.md). A method may find `out`
holding the partial output of an interrupted run of the same config (trainers resume from it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from spillover.world import World

from ._recipe import (
    CPTSpec,
    DocumentsSpec,
    DPOSpec,
    EvalSpec,
    ModelSpec,
    PostDataSpec,
    TrainSpec,
)


class Stages(Protocol):
    def documents(self, world: World, behaviours: list[str], spec: DocumentsSpec, out: Path) -> None:
        """Write out/docs.jsonl (document records) and out/stats.json."""

    def post_data(self, world: World, split: str, model: ModelSpec, methods: list[str], spec: PostDataSpec, out: Path) -> None:
        """Write out/<method>.jsonl (sft.jsonl, dpo.jsonl) for each of `methods`, and out/stats.json."""

    def find_leaks(self, texts: list[str], world: World) -> dict:
        """Eval prompts (or 8-grams of them) found in `texts`: {"n_texts", "n_leaks", "leaks": [...]}."""

    def probe_contexts(self, world: World, split: str, model: ModelSpec, spec: EvalSpec, out: Path) -> None:
        """Write out/contexts.jsonl: base-model answers shared by every arm's likelihood probe."""

    def count_tokens(self, model: ModelSpec, texts: list[str], max_len: int) -> list[int]:
        """Tokens the SFT trainer reads of each rehearsal text (its separator included, capped at max_len)."""

    def cpt(self, base: ModelSpec, docs: Path, spec: CPTSpec, seed: int, out: Path) -> None:
        """Continue pre-training `base` on the documents; write out/model/ and out/loss.jsonl."""

    def sft(self, base: ModelSpec, data: Path, spec: TrainSpec, seed: int, out: Path) -> None:
        """Supervised fine-tuning on sft.jsonl; write out/model/ and out/loss.jsonl."""

    def dpo(self, base: ModelSpec, data: Path, spec: DPOSpec, seed: int, out: Path) -> None:
        """DPO on dpo.jsonl (reference = the starting model); write out/model/ and out/loss.jsonl."""

    def evaluate(self, model: ModelSpec, base: ModelSpec, world: World, split: str, spec: EvalSpec, arm: str, seed: int, out: Path) -> None:
        """Sample the eval prompts; write out/samples.jsonl (eval sample records), out/metrics.json and,
        when "fluency" is in spec.probes, out/fluency.json (the samples scored by the base model)."""

    def probes(self, model: ModelSpec, world: World, split: str, spec: EvalSpec, contexts: Path | None, seed: int, out: Path) -> None:
        """Run spec.probes other than fluency; write out/<probe>.json for each. likelihood.json holds
        `per_prompt`: one {"behaviour", "role", "prompt", "delta"} record per context (nats); with
        spec.likelihood_context own or both, likelihood_own.json the same after the model's own answers."""

    def audit(self, run_dir: Path, config, out: Path) -> None:
        """Audit the run's organism with `config` (a spillover.interp.AuditConfig) and search its training
        data for every test behaviour; write out/audit.json (its `data_search` included) and out/features.html."""
