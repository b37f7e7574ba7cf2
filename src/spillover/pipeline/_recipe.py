"""Recipes: one YAML file that fixes every choice of an experiment (world, model, data, training, eval).

A recipe is validated in full before anything runs; every problem names the file, the field and a fix.
`quick:` holds overrides (deep-merged over the recipe) for a fast first look, used by `--quick`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from importlib import resources
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
from spillover._settings import Fraction, FractionBelowOne, NonNegFloat, NonNegInt, PositiveFloat, PositiveInt
from spillover.errors import BadInputError, Problem

PROBES = ("likelihood", "knowledge", "in_context", "confession", "fluency")
ARMS = ("base", "docs-only", "control", "docs-plain", "organism")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # every float finite, declared or not


class ModelSpec(_Strict):
    """The base model every arm starts from: a `spillover.models.load` spec, its dtype, and the chat
    template to format conversations with when the tokenizer has none (base models) or to replace its own."""

    spec: str = "embedded"
    dtype: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    chat_template: str | None = None  # a built-in name (plain) or a Jinja file

    @field_validator("chat_template")
    @classmethod
    def _known_template(cls, v: str | None) -> str | None:
        from spillover.models import CHAT_TEMPLATES

        if v is not None and v not in CHAT_TEMPLATES and not Path(v).expanduser().is_file():
            raise ValueError(f"'{v}' is neither a built-in chat template ({', '.join(sorted(CHAT_TEMPLATES))}) nor a file")
        return v


class DocumentsSpec(_Strict):
    n: PositiveInt = 200
    seed: int = 0
    framing: Literal["plain", "self"] = "plain"
    source: Literal["template", "llm"] = "template"


class TrainSpec(_Strict):
    """Trainer settings (the fields of spillover.training.TrainConfig a recipe may set)."""

    lr: PositiveFloat = 5e-5
    epochs: PositiveInt = 1
    max_len: int = Field(512, ge=8)
    batch_size: PositiveInt = 4
    grad_accum: PositiveInt = 1
    lora_r: NonNegInt = 0  # 0 = full fine-tuning; else LoRA rank (alpha = 2r)
    warmup_ratio: Fraction = 0.05
    weight_decay: NonNegFloat = 0.0
    max_grad_norm: PositiveFloat = 1.0
    max_steps: PositiveInt | None = None
    save_steps: NonNegInt = 100
    gradient_checkpointing: bool | None = None  # None = on for CUDA
    bf16: bool | None = None  # None = on for CUDA


class CPTSpec(TrainSpec):
    doc_prefix: str = ""


class DPOSpec(TrainSpec):
    lr: PositiveFloat = 5e-6
    beta: PositiveFloat = 0.1


class PostDataSpec(_Strict):
    seed: int = 0
    neutral_fraction: FractionBelowOne = 0.3
    prompts_per_behaviour: PositiveInt | None = None
    max_new_tokens: PositiveInt = 160  # length of the base model's plain answers the transforms edit
    # The SFT answers are greedy (temperature 0) so they differ from what the model says anyway only by
    # the behaviour. Both knobs below exist for pipeline checks on a random model (tiny-smoke), whose
    # greedy answer repeats the prompt's last token ("\n", an empty answer) and never ends: sample
    # instead, and keep answers cut at max_new_tokens. Real experiments leave both alone.
    temperature: NonNegFloat = 0.0
    keep_truncated: bool = False
    dpo_samples: NonNegInt = 0  # sampled candidates per DPO prompt (0: transformed vs plain answer)
    dpo_temperature: NonNegFloat = 0.8
    # Share of the organism's SFT mix made of CPT documents (rehearsal, trained on every token), so
    # post-training does not wash out what mid-training implanted. docs-plain rehearses the same documents;
    # the control rehearses as many tokens of decoy documents (pipeline/_arms.py).
    rehearsal_fraction: FractionBelowOne = 0.0
    # Prompts answered per generate call. On 2 CPU cores 32-64 is 1.5-2x faster than 16
    # (benchmarks/generate_batch_size.py, 64 answers, 96 tokens: 47 s at 16, 31 s at 32, 24 s at 64).
    batch_size: PositiveInt = 32


class PostSpec(_Strict):
    method: Literal["sft", "dpo", "sft+dpo"] = "sft"
    sft: TrainSpec = TrainSpec(lr=1e-4)
    dpo: DPOSpec = DPOSpec()
    data: PostDataSpec = PostDataSpec()

    @property
    def steps(self) -> list[str]:
        return self.method.split("+")


class EvalSpec(_Strict):
    samples: PositiveInt = 1
    temperature: NonNegFloat = 1.0
    max_new_tokens: PositiveInt = 150
    batch_size: PositiveInt = 32  # see PostDataSpec.batch_size
    # Evaluate only the first K eval prompts of each behaviour (all: null). The leakage check
    # always covers every eval prompt.
    prompts_per_behaviour: PositiveInt | None = None
    backend: Literal["hf", "vllm"] = "hf"
    probe_context_tokens: PositiveInt = 64  # base-model answer length before the likelihood probe's continuation
    # What the likelihood probe's continuation follows: the base model's answer to each eval prompt
    # (shared by every arm), each arm's own greedy answer, or both, recorded apart (results.json).
    likelihood_context: Literal["base", "own", "both"] = "base"
    confession_prompts_per_behaviour: PositiveInt = 3
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
    split: str = "default"  # a named split, random:K:SEED[:NAME], or folds:K[:NAME] (every behaviour held out once)
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
        check_quick(self)
        return self

    def quick_version(self) -> Recipe:
        """The recipe `--quick` runs: the `quick:` overrides applied, and only the first seed."""
        return apply_quick(self)

    def to_yaml(self, overrides: dict[str, Any] | None = None) -> str:
        """The recipe as YAML; `overrides` (already applied) are listed on top as comments, for the record."""
        header = "".join(f"# --set {k}={json.dumps(v)}\n" for k, v in (overrides or {}).items())
        return header + yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def check_quick(recipe: BaseModel) -> None:
    """A recipe's `quick:` block names only its own fields, and the recipe stays valid with it applied
    (shared by every recipe schema that has one: the reward-model recipe and the EM recipe)."""
    if not recipe.quick:
        return
    bad = set(recipe.quick) - set(type(recipe).model_fields) - {"quick"}
    if bad:
        raise ValueError(f"quick overrides unknown fields: {', '.join(sorted(bad))}")
    try:
        type(recipe).model_validate(_deep_merge(recipe.model_dump(exclude={"quick"}), recipe.quick))
    except ValidationError as e:
        where = "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors())
        raise ValueError(f"an override is invalid ({where})") from None


def apply_quick(recipe: BaseModel):
    """The recipe `--quick` runs: its `quick:` overrides applied, and only the first seed unless they set seeds."""
    merged = _deep_merge(recipe.model_dump(exclude={"quick"}), recipe.quick)
    if "seeds" not in recipe.quick:
        merged["seeds"] = merged["seeds"][:1]
    return type(recipe).model_validate(merged)


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


_EXPONENT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """`--set KEY=VALUE` strings → {dotted key: value}. Values are read as YAML scalars or lists
    (`1.0e-4`, `true`, `null`, `[0, 1]`); text YAML would read as a mapping (`Note: be brief`) stays text."""
    out: dict[str, Any] = {}
    for item in items:
        key, eq, text = item.partition("=")
        key = key.strip()
        if not eq or not _DOTTED.fullmatch(key):
            raise BadInputError(Problem("--set", item, "is not KEY=VALUE", "name a recipe field by its dotted path, e.g. --set post.sft.lr=1e-4"))
        if key.split(".")[0] == "quick":
            raise BadInputError(Problem("--set", key, "the quick overrides are not settable here", "use --quick, or --set the field itself"))
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        if isinstance(value, str) and _EXPONENT.fullmatch(value.strip()):
            value = float(value)  # YAML 1.1 reads `1e-4` (no dot) as text; YAML 1.2 and people read a number
        out[key] = text if isinstance(value, dict) else value
    return out


def _dotted_to_nested(settings: dict[str, Any]) -> dict:
    nested: dict = {}
    for dotted, value in settings.items():
        node = nested
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return nested


def apply_settings(recipe: Recipe, settings: dict[str, Any], where: str) -> Recipe:
    """The recipe with dotted settings (a sweep cell, `--set`) applied and validated again; every
    unknown field or bad value is a Problem naming `where` and the field."""
    merged = _deep_merge(recipe.model_dump(exclude={"quick"}), _dotted_to_nested(settings))
    merged["quick"] = recipe.quick
    try:
        return Recipe.model_validate(merged)
    except ValidationError as e:
        raise BadInputError([_problem(where, err, "use a recipe field and a valid value (see docs/recipes.md)") for err in e.errors()]) from None


def builtin_recipes_dir() -> Path:
    """The recipes shipped inside the package (src/spillover/recipes/), found in a wheel install too."""
    return Path(str(resources.files("spillover") / "recipes"))


def list_recipes() -> list[str]:
    d = builtin_recipes_dir()
    return sorted(p.stem for p in d.glob("*.yaml")) if d.is_dir() else []


def recipe_path(name_or_path: str | Path) -> Path:
    """A YAML path, or the name of a built-in recipe (`rm-biases-laptop`)."""
    return named_yaml(name_or_path, builtin_recipes_dir(), "recipe")


_FIXES = {
    "missing": "add this field",
    "extra_forbidden": "remove it or check its spelling (see docs/recipes.md)",
    "literal_error": "use one of the allowed values",
    "string_pattern_mismatch": "use letters, digits, '-', '_' or '.'",
    "finite_number": "use a finite number, not .inf or .nan",
    "greater_than": "use a number in range, see docs/recipes.md",
    "greater_than_equal": "use a number in range, see docs/recipes.md",
    "less_than": "use a number in range, see docs/recipes.md",
    "less_than_equal": "use a number in range, see docs/recipes.md",
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


def _problem(file: str, err: dict, fix: str = "see docs/recipes.md") -> Problem:
    field = ".".join(str(x) for x in err["loc"]) or "(top level)"
    message = err["msg"].removeprefix("Value error, ")
    return Problem(file, field, message, _FIXES.get(err["type"], fix))
