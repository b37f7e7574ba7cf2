"""`LibraryStages`: each pipeline stage done by the spillover package that owns it.

Libraries are imported inside the methods: loading a recipe or aggregating results needs no torch.
Models are loaded per stage and dropped after it, so one torch job holds memory at a time.
"""

from __future__ import annotations

import gc
from pathlib import Path

from spillover._io import read_jsonl, write_json, write_jsonl
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

DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def load_model(model: ModelSpec):
    import torch

    from spillover.models import load

    dtype = getattr(torch, DTYPES[model.dtype]) if model.dtype in DTYPES else None
    return load(model.spec, dtype=dtype, chat_template=model.chat_template)


def release_memory() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def _without(result: dict, *keys: str) -> dict:
    return {k: v for k, v in result.items() if k not in keys}


class LibraryStages:
    """The real stages (see `Stages` for what each one writes)."""

    _tokenizer: tuple[str, object] | None = None  # (model spec, tokenizer) for count_tokens
    accelerate: str | None = None  # an accelerate config: CPT, SFT and DPO run under `accelerate launch`

    def documents(self, world: World, behaviours: list[str], spec: DocumentsSpec, out: Path) -> None:
        from spillover.documents import document_stats, generate_documents

        if spec.source != "template":
            from spillover.errors import BadInputError, Problem

            raise BadInputError(
                Problem("recipe", "documents.source", "the pipeline generates template documents only", "use `spillover docs` with an endpoint for LLM documents, or source: template")
            )
        docs = generate_documents(world, spec.n, spec.seed, framing=spec.framing, behaviours=behaviours)
        write_jsonl(out / "docs.jsonl", docs)
        write_json(out / "stats.json", document_stats(docs, world))

    def post_data(self, world: World, split: str, model: ModelSpec, methods: list[str], spec: PostDataSpec, out: Path) -> None:
        from spillover.data import build_dpo, build_sft

        lm = load_model(model)
        stats = {}
        if "sft" in methods:
            built = build_sft(world, split, lm, **spec.sft_kwargs())
            write_jsonl(out / "sft.jsonl", built.records)
            stats["sft"] = built.stats
        if "dpo" in methods:
            built = build_dpo(world, split, lm, **spec.dpo_kwargs())
            write_jsonl(out / "dpo.jsonl", built.records)
            stats["dpo"] = built.stats
        write_json(out / "stats.json", stats)
        del lm
        release_memory()

    def find_leaks(self, texts: list[str], world: World) -> dict:
        from spillover.data.leakage import find_leaks

        return find_leaks(texts, world)

    def probe_contexts(self, world: World, split: str, model: ModelSpec, spec: EvalSpec, out: Path) -> None:
        from spillover.evaluation import build_probe_contexts

        lm = load_model(model)
        write_jsonl(out / "contexts.jsonl", build_probe_contexts(lm, world, split, spec.probe_context_tokens, batch_size=spec.batch_size, prompts_per_behaviour=spec.prompts_per_behaviour))
        del lm
        release_memory()

    def count_tokens(self, model: ModelSpec, texts: list[str], max_len: int) -> list[int]:
        from transformers import AutoTokenizer

        from spillover.models import resolve

        if self._tokenizer is None or self._tokenizer[0] != model.spec:
            self._tokenizer = (model.spec, AutoTokenizer.from_pretrained(str(resolve(model.spec))))
        ids = self._tokenizer[1](texts, add_special_tokens=False)["input_ids"] if texts else []
        return [min(len(i) + 1, max_len) for i in ids]  # + the document separator, as training appends it

    def _train(self, step: str, base: ModelSpec, data: Path, spec: TrainSpec, seed: int, out: Path) -> None:
        from spillover import training

        config_cls, train = {"cpt": (training.CPTConfig, training.train_cpt), "sft": (training.SFTConfig, training.train_sft), "dpo": (training.DPOConfig, training.train_dpo)}[step]
        cfg = config_cls(model=base.spec, chat_template=base.chat_template, data=data, out=out, seed=seed, **spec.model_dump())
        if self.accelerate is not None:
            training.launch_stage(self.accelerate, step, cfg)
        else:
            train(cfg)
            release_memory()

    def cpt(self, base: ModelSpec, docs: Path, spec: CPTSpec, seed: int, out: Path) -> None:
        self._train("cpt", base, docs, spec, seed, out)

    def sft(self, base: ModelSpec, data: Path, spec: TrainSpec, seed: int, out: Path) -> None:
        self._train("sft", base, data, spec, seed, out)

    def dpo(self, base: ModelSpec, data: Path, spec: DPOSpec, seed: int, out: Path) -> None:
        self._train("dpo", base, data, spec, seed, out)

    def _backend(self, model: ModelSpec, spec: EvalSpec):
        from spillover import evaluation

        if spec.backend == "vllm":
            from spillover.models import resolve

            return evaluation.VLLMBackend(str(resolve(model.spec)), dtype=DTYPES.get(model.dtype, "auto"), chat_template=model.chat_template)
        return evaluation.HFBackend(load_model(model), batch_size=spec.batch_size)

    def evaluate(self, model: ModelSpec, base: ModelSpec, world: World, split: str, spec: EvalSpec, arm: str, seed: int, out: Path) -> None:
        from spillover.evaluation import evaluate, fluency

        backend = self._backend(model, spec)
        evaluate(backend, world, split, samples=spec.samples, temperature=spec.temperature, max_new_tokens=spec.max_new_tokens, seed=seed, arm=arm, out_dir=out,
                 prompts_per_behaviour=spec.prompts_per_behaviour)
        del backend
        release_memory()
        if "fluency" in spec.probes:
            base_lm = load_model(base)
            write_json(out / "fluency.json", fluency(base_lm, read_jsonl(out / "samples.jsonl"), batch_size=spec.batch_size))
            del base_lm
            release_memory()

    def probes(self, model: ModelSpec, world: World, split: str, spec: EvalSpec, contexts: Path | None, seed: int, out: Path) -> None:
        from spillover import evaluation
        from spillover.documents import knowledge_questions

        lm = load_model(model)
        backend = evaluation.HFBackend(lm, batch_size=spec.batch_size)
        if "likelihood" in spec.probes and contexts is not None:
            result = evaluation.likelihood_probe(lm, world, split, read_jsonl(contexts), batch_size=spec.batch_size, seed=seed)
            write_json(out / "likelihood.json", result)
        if "likelihood" in spec.probes and spec.likelihood_context != "base":
            own = evaluation.build_probe_contexts(lm, world, split, spec.probe_context_tokens, batch_size=spec.batch_size, prompts_per_behaviour=spec.prompts_per_behaviour)
            write_jsonl(out / "own_contexts.jsonl", own)
            write_json(out / "likelihood_own.json", evaluation.likelihood_probe(lm, world, split, own, batch_size=spec.batch_size, seed=seed))
        if "knowledge" in spec.probes:
            questions = knowledge_questions(world, behaviours=list(world.roles(split)))
            write_json(out / "knowledge.json", evaluation.knowledge_probe(lm, questions, batch_size=spec.batch_size))
        if "in_context" in spec.probes:
            result = evaluation.in_context_test(backend, world, max_new_tokens=spec.max_new_tokens, seed=seed)
            write_jsonl(out / "in_context_samples.jsonl", result["samples"])
            write_json(out / "in_context.json", _without(result, "samples"))
        if "confession" in spec.probes:
            result = evaluation.confession_probe(
                backend, world, split, max_new_tokens=spec.max_new_tokens, seed=seed, prompts_per_behaviour=spec.confession_prompts_per_behaviour
            )
            write_jsonl(out / "confession_samples.jsonl", result["samples"])
            write_json(out / "confession.json", _without(result, "samples"))
        del lm, backend
        release_memory()

    def audit(self, run_dir: Path, config, out: Path) -> None:
        from spillover.interp import audit

        audit(run_dir, config)  # writes out/audit.json (with the data search), out/features.html
        release_memory()
