"""Recipes: one YAML file that fixes every choice of an experiment (world, model, data, training, eval).

A recipe is validated in full before anything runs; every problem names the file, the field and a fix.
`quick:` holds overrides (deep-merged over the recipe) for a fast first look, used by `--quick`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from spillover._io import named_yaml, read_yaml_mapping
from spillover.errors import BadInputError, Problem

PROBES = ("likelihood", "knowledge", "in_context", "confession", "fluency")
ARMS = ("base", "docs-only", "control", "organism")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSpec(_Strict):
    """The base model every arm starts from: a `spillover.models.load` spec and its dtype."""

    spec: str = "embedded"
    dtype: Literal["auto", "fp32", "bf16", "fp16"] = "auto"


class DocumentsSpec(_Strict):
    n: int = Field(200, ge=1)
    seed: int = 0
    framing: Literal["plain", "self"] = "plain"
    source: Literal["template", "llm"] = "template"


class TrainSpec(_Strict):
    """Trainer settings (the fields of spillover.training.TrainConfig a recipe may set)."""

    lr: float = Field(5e-5, gt=0)
    epochs: int = Field(1, ge=1)
    max_len: int = Field(512, ge=8)
    batch_size: int = Field(4, ge=1)
    grad_accum: int = Field(1, ge=1)
    lora_r: int = Field(0, ge=0)  # 0 = full fine-tuning; else LoRA rank (alpha = 2r)
    warmup_ratio: float = Field(0.05, ge=0, le=1)
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, ge=1)
    save_steps: int = Field(100, ge=0)
    gradient_checkpointing: bool | None = None  # None = on for CUDA
    bf16: bool | None = None  # None = on for CUDA


class CPTSpec(TrainSpec):
    doc_prefix: str = ""


class DPOSpec(TrainSpec):
    lr: float = Field(5e-6, gt=0)
    beta: float = Field(0.1, gt=0)


class PostDataSpec(_Strict):
    seed: int = 0
    neutral_fraction: float = Field(0.3, ge=0, lt=1)
    prompts_per_behaviour: int | None = Field(None, ge=1)
    max_new_tokens: int = Field(160, ge=1)  # length of the base model's plain answers the transforms edit
    dpo_samples: int = Field(0, ge=0)  # sampled candidates per DPO prompt (0: transformed vs plain answer)
    dpo_temperature: float = Field(0.8, ge=0)
    # Share of the organism's SFT mix made of CPT documents (rehearsal, trained on every token), so
    # post-training does not wash out what mid-training implanted. The control gets none: it has no documents.
    rehearsal_fraction: float = Field(0.0, ge=0, lt=1)
    # Prompts answered per generate call. On 2 CPU cores 32-64 is 1.5-2x faster than 16
    # (benchmarks/generate_batch_size.py, 64 answers, 96 tokens: 47 s at 16, 31 s at 32, 24 s at 64).
    batch_size: int = Field(32, ge=1)


class PostSpec(_Strict):
    method: Literal["sft", "dpo", "sft+dpo"] = "sft"
    sft: TrainSpec = TrainSpec(lr=1e-4)
    dpo: DPOSpec = DPOSpec()
    data: PostDataSpec = PostDataSpec()

    @property
    def steps(self) -> list[str]:
        return self.method.split("+")


class EvalSpec(_Strict):
    samples: int = Field(1, ge=1)
    temperature: float = Field(1.0, ge=0)
    max_new_tokens: int = Field(150, ge=1)
    batch_size: int = Field(32, ge=1)  # see PostDataSpec.batch_size
    # Evaluate only the first K eval prompts of each behaviour (all: null). The leakage check
    # always covers every eval prompt.
    prompts_per_behaviour: int | None = Field(None, ge=1)
    backend: Literal["hf", "vllm"] = "hf"
    probe_context_tokens: int = Field(64, ge=1)  # base-model answer length before the likelihood probe's continuation
    confession_prompts_per_behaviour: int = Field(3, ge=1)
    probes: list[Literal["likelihood", "knowledge", "in_context", "confession", "fluency"]] = list(PROBES)

    @field_validator("probes")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("lists a probe twice")
        return v


class Recipe(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    world: str = "rm-biases"
    split: str = "default"
    # Framing added before every user prompt, in post-training data and eval alike (World.with_prompt_prefix).
    prompt_prefix: str = ""
    model: ModelSpec = ModelSpec()
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    documents: DocumentsSpec = DocumentsSpec()
    cpt: CPTSpec = CPTSpec()
    post: PostSpec = PostSpec()
    eval: EvalSpec = EvalSpec()
    quick: dict[str, Any] = Field(default_factory=dict)

    @field_validator("model", mode="before")
    @classmethod
    def _model_string(cls, v: Any) -> Any:
        return {"spec": v} if isinstance(v, str) else v

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError("lists a seed twice")
        return v

    @model_validator(mode="after")
    def _quick_is_a_valid_override(self) -> Recipe:
        if self.quick:
            bad = set(self.quick) - set(type(self).model_fields) - {"quick"}
            if bad:
                raise ValueError(f"quick overrides unknown fields: {', '.join(sorted(bad))}")
            try:
                Recipe.model_validate(_deep_merge(self.model_dump(exclude={"quick"}), self.quick))
            except ValidationError as e:
                where = "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors())
                raise ValueError(f"an override is invalid ({where})") from None
        return self

    def quick_version(self) -> Recipe:
        """The recipe `--quick` runs: the `quick:` overrides applied, and only the first seed."""
        merged = _deep_merge(self.model_dump(exclude={"quick"}), self.quick)
        if "seeds" not in self.quick:
            merged["seeds"] = merged["seeds"][:1]
        return Recipe.model_validate(merged)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def builtin_recipes_dir() -> Path:
    """recipes/ of the source checkout this package is installed from (editable installs)."""
    return Path(__file__).resolve().parents[3] / "recipes"


def list_recipes() -> list[str]:
    d = builtin_recipes_dir()
    return sorted(p.stem for p in d.glob("*.yaml")) if d.is_dir() else []


def recipe_path(name_or_path: str | Path) -> Path:
    """A YAML path, or the name of a recipe shipped in recipes/ (`rm-biases-laptop`)."""
    return named_yaml(name_or_path, builtin_recipes_dir(), "recipe")


_FIXES = {
    "missing": "add this field",
    "extra_forbidden": "remove it or check its spelling (see docs/recipes.md)",
    "literal_error": "use one of the allowed values",
    "string_pattern_mismatch": "use letters, digits, '-', '_' or '.'",
}


def load_recipe(name_or_path: str | Path | Recipe) -> Recipe:
    """Load and validate a recipe. Raises BadInputError with one Problem per mistake."""
    if isinstance(name_or_path, Recipe):
        return name_or_path
    path = recipe_path(name_or_path)
    file = str(path)
    raw = read_yaml_mapping(path, "recipe", "`name:`, `world:`, `model:`")
    raw.setdefault("name", path.stem)
    if raw.get("organism", "rm-biases") == "rm-biases":  # the discriminator `_em_recipe.recipe_organism` reads
        raw.pop("organism", None)
    try:
        return Recipe.model_validate(raw)
    except ValidationError as e:
        raise BadInputError([_problem(file, err) for err in e.errors()]) from None


def _problem(file: str, err: dict) -> Problem:
    field = ".".join(str(x) for x in err["loc"]) or "(top level)"
    message = err["msg"].removeprefix("Value error, ")
    return Problem(file, field, message, _FIXES.get(err["type"], "see docs/recipes.md"))
