"""The post-training data settings, declared once: a recipe's `post.data:` and `spillover data sft|dpo`'s options."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from spillover._settings import FractionBelowOne, NonNegFloat, NonNegInt, PositiveInt


class PostDataSettings(BaseModel):
    """How `build_sft` and `build_dpo` are called. The recipe's `post.data` is this model (plus its
    rehearsal share); the CLI derives its options from the fields (cli/_options.py)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    seed: int = Field(0, description="seed for prompt sampling and the transforms' choices")
    neutral_fraction: FractionBelowOne = Field(0.3, description="SFT: at least this share of records answers a neutral prompt")
    prompts_per_behaviour: PositiveInt | None = Field(None, description="use this many train prompts per behaviour (default: all)")
    max_new_tokens: PositiveInt = Field(160, description="length cap of the model's plain answers the transforms edit; longer answers are dropped")
    # The SFT answers are greedy (temperature 0) so they differ from what the model says anyway only by
    # the behaviour. Both knobs below exist for pipeline checks on a random model (tiny-smoke), whose
    # greedy answer repeats the prompt's last token ("\n", an empty answer) and never ends: sample
    # instead, and keep answers cut at max_new_tokens. Real experiments leave both alone.
    temperature: NonNegFloat = Field(0.0, description="SFT: sampling temperature of the plain answers (0 = greedy)")
    keep_truncated: bool = Field(False, description="keep answers cut at max_new_tokens (for random test models only)")
    dpo_samples: NonNegInt = Field(0, description="DPO: 0 = transformed vs plain answer; K = rank K sampled answers and their transforms by simulated reward")
    dpo_temperature: NonNegFloat = Field(0.8, description="DPO: sampling temperature of the candidates (when sampling them)")
    # On 2 CPU cores 32-64 is 1.5-2x faster than 16
    # (benchmarks/generate_batch_size.py, 64 answers, 96 tokens: 47 s at 16, 31 s at 32, 24 s at 64).
    batch_size: PositiveInt = Field(32, description="prompts answered per generate call")

    def sft_kwargs(self) -> dict:
        """`build_sft`'s keyword arguments."""
        return self.model_dump(include={"seed", "neutral_fraction", "prompts_per_behaviour", "max_new_tokens", "temperature", "keep_truncated", "batch_size"})

    def dpo_kwargs(self) -> dict:
        """`build_dpo`'s keyword arguments."""
        common = self.model_dump(include={"seed", "prompts_per_behaviour", "max_new_tokens", "keep_truncated", "batch_size"})
        return {**common, "k_samples": self.dpo_samples, "temperature": self.dpo_temperature}
