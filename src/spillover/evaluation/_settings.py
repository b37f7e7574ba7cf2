"""The eval settings, declared once: a recipe's `eval:` and `spillover eval`'s options."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from spillover._settings import NonNegFloat, PositiveInt

PROBES = ("likelihood", "knowledge", "in_context", "confession", "fluency")


class EvalSettings(BaseModel):
    """How a model is sampled and probed. The recipe's `eval` is this model; `spillover eval` derives
    its options from the fields (cli/_options.py), so a standalone eval runs what a run's does."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    samples: PositiveInt = Field(1, description="answers per eval prompt")
    temperature: NonNegFloat = Field(1.0, description="sampling temperature (0 = greedy)")
    max_new_tokens: PositiveInt = Field(150, description="cap per answer; cut answers are counted and reported")
    # Prompts per generate call; 32-64 is 1.5-2x faster than 16 on 2 CPU cores (see PostDataSettings.batch_size).
    batch_size: PositiveInt = Field(32, description="prompts answered per generate call (and probe batch size)")
    # The leakage check always covers every eval prompt.
    prompts_per_behaviour: PositiveInt | None = Field(None, description="evaluate only the first K eval prompts of each behaviour (default: all)")
    backend: Literal["hf", "vllm"] = Field("hf", description="hf (transformers, here) or vllm (offline engine, GPU)")
    probe_context_tokens: PositiveInt = Field(64, description="likelihood probe: tokens of the base model's answer before the continuation")
    # What the likelihood probe's continuation follows: the base model's answer to each eval prompt
    # (shared by every arm), each arm's own greedy answer, or both, recorded apart (results.json).
    likelihood_context: Literal["base", "own", "both"] = Field("base", description="likelihood probe: the continuation follows the base model's answer, the arm's own, or both (recorded apart)")
    confession_prompts_per_behaviour: PositiveInt = Field(3, description="confession probe: questions per behaviour")
    probes: list[Literal["likelihood", "knowledge", "in_context", "confession", "fluency"]] = Field(
        default_factory=lambda: list(PROBES), description="probes run beside the exhibition rates (fluency scores the eval answers under the base model)"
    )

    @field_validator("probes")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("lists a probe twice")
        return v
