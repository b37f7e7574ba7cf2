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
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from spillover._io import named_yaml, read_yaml_mapping
from spillover._settings import FractionBelowOne, PositiveInt
from spillover.data import PostDataSettings
from spillover.errors import BadInputError, Problem
from spillover.evaluation import EvalSettings
from spillover.training import CPTSettings, DPOSettings, SFTSettings

ARMS = ("base", "docs-only", "control", "docs-plain", "organism")
# The organism, where it starts (docs-only) and the untrained reference: what every comparison reads.
REQUIRED_ARMS = ("base", "docs-only", "organism")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # every float finite, declared or not


class ModelSpec(_Strict):
    """The base model every arm starts from: a `spillover.models.load` spec, its dtype, and the chat
    template to format conversations with when the tokenizer has none (base models) or to replace its own."""

    spec: str = Field("embedded", description="embedded | tiny | DIR (a previous stage's out dir works) | FILE.gguf | hub id")
    dtype: Literal["auto", "fp32", "bf16", "fp16"] = Field("auto", description="weights' dtype when loaded (auto: as stored)")
    chat_template: str | None = Field(
        None, description="chat template for models without one (base models) or to replace theirs: 'plain' (User:/Assistant: turns) or a Jinja file"
    )

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


# The trainer, data and eval settings are declared once, beside the code that uses them; the recipe's
# specs are those models (so are `spillover train|data|eval`'s options, cli/_options.py).
class TrainSpec(SFTSettings):
    """SFT trainer settings (`post.sft`; the EM recipe's `sft`)."""


class CPTSpec(CPTSettings):
    """CPT trainer settings (`cpt`)."""


class DPOSpec(DPOSettings):
    """DPO trainer settings (`post.dpo`)."""


class PostDataSpec(PostDataSettings):
    # Share of the organism's SFT mix made of CPT documents (rehearsal, trained on every token), so
    # post-training does not wash out what mid-training implanted. docs-plain rehearses the same documents;
    # the control rehearses as many tokens of decoy documents (pipeline/_arms.py).
    rehearsal_fraction: FractionBelowOne = Field(0.0, description="share of the organism's SFT mix made of its CPT documents (rehearsal)")


class PostSpec(_Strict):
    method: Literal["sft", "dpo", "sft+dpo"] = "sft"
    sft: TrainSpec = TrainSpec()
    dpo: DPOSpec = DPOSpec()
    data: PostDataSpec = PostDataSpec()

    @property
    def steps(self) -> list[str]:
        return self.method.split("+")


class EvalSpec(EvalSettings):
    """Eval settings (`eval`)."""


def _audit_config(value: Any) -> Any:
    """`audit:` as a spillover.interp.AuditConfig: its fields, a preset's name (`audit: laptop`) or a
    preset with fields over it (`audit: {preset: laptop, seed: 1}`); AuditConfig applies the preset.
    Imported only for a recipe that has one: interp pulls in torch, and loading a recipe needs none
    (pipeline/_library.py). Its ValidationError passes through, so each problem names `audit.<field>`."""
    if value is None:
        return None
    from spillover.interp import AuditConfig

    return AuditConfig.model_validate(value.model_dump() if isinstance(value, BaseModel) else value)


class Recipe(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    world: str = Field("rm-biases", description="a built-in world name or a YAML path")
    split: str = Field("default", description="a named split, random:K:SEED[:NAME], or (recipes only) folds:K[:NAME]: every behaviour held out once")
    prompt_prefix: str = Field("", description="text before every user prompt, in post-training data and eval alike (e.g. 'In two sentences, answer: ')")
    model: ModelSpec = ModelSpec()
    # An accelerate config (shipped name or YAML path): CPT, SFT and DPO run under `accelerate launch` with it.
    accelerate: str | None = None
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    arms: list[str] = Field(
        default_factory=lambda: list(ARMS),
        description="the arms to run (all five by default); a shorter list that keeps base, docs-only and organism "
        "skips the others, e.g. an exploratory seed or an audit: [base, docs-only, control, organism]",
    )
    documents: DocumentsSpec = DocumentsSpec()
    cpt: CPTSpec = CPTSpec()
    post: PostSpec = PostSpec()
    eval: EvalSpec = EvalSpec()
    # Audit the organism after eval (an AuditConfig or a preset's name, docs/audit.md): audit/audit.json with the data search.
    audit: Annotated[Any, BeforeValidator(_audit_config)] = None
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

    @field_validator("arms")
    @classmethod
    def _known_arms(cls, v: list[str]) -> list[str]:
        unknown = [a for a in v if a not in ARMS]
        if unknown:
            raise ValueError(f"no arm {', '.join(unknown)} (arms: {', '.join(ARMS)})")
        missing = [a for a in REQUIRED_ARMS if a not in v]
        if missing:
            raise ValueError(f"leaves out {', '.join(missing)}: every run has {', '.join(REQUIRED_ARMS)}")
        if len(set(v)) != len(v):
            raise ValueError("lists an arm twice")
        return [a for a in ARMS if a in v]  # the canonical order, whatever order the recipe lists them in

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
    """`over` merged into `base`, mapping by mapping. A mapping naming a `preset` (`audit: {preset: quick}`)
    replaces what it lands on: merged, every field of the old block would override the preset."""
    out = dict(base)
    for k, v in over.items():
        merge = isinstance(v, dict) and "preset" not in v and isinstance(out.get(k), dict)
        out[k] = _deep_merge(out[k], v) if merge else v
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
