"""The emergent-misalignment recipe (`organism: em`): narrow datasets, fine-tuned arms, broad questions.

Same conventions as the reward-model recipe (`_recipe`): validated in full before anything runs,
`quick:` overrides for `--quick`, trainer settings from `TrainSpec`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from spillover._io import read_yaml_mapping
from spillover.errors import BadInputError

from ._recipe import ModelSpec, TrainSpec, _problem, _Strict, apply_quick, check_quick, recipe_path

EM_ARMS = ("insecure", "secure", "educational", "financial-risky", "financial-good")
ORGANISMS = ("rm-biases", "em")


class EMDataSpec(_Strict):
    seed: int = 0
    n: int | None = Field(None, ge=1)  # examples per dataset (all: null); the same tasks for every code arm
    # A dataset's records read from a local JSONL in the published format instead of generated.
    published: dict[Literal["insecure", "secure", "educational", "financial-risky", "financial-good"], str] = Field(default_factory=dict)


class EMEvalSpec(_Strict):
    questions: str | None = None  # a questions YAML (default: the built-in 48)
    samples: int = Field(2, ge=0)  # sampled answers per question and arm, at `temperature` (0: none)
    sample_questions: int | None = Field(None, ge=1)  # answer only the first K questions (all: null)
    temperature: float = Field(1.0, ge=0)
    max_new_tokens: int = Field(64, ge=1)
    batch_size: int = Field(32, ge=1)


class EMDirectionSpec(_Strict):
    enabled: bool = True
    layer: int | None = Field(None, ge=0)  # None: the middle layer
    scale: float = Field(1.0, gt=0)  # steering vector = scale × (insecure − secure mean difference)


class EMJudgeSpec(_Strict):
    base_url: str | None = None  # an OpenAI-compatible endpoint; none: no judge stage
    model: str = ""
    api_key_env: str = "OPENAI_API_KEY"
    min_mass: float = Field(0.8, gt=0, le=1)


class EMRecipe(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    organism: Literal["em"] = "em"
    description: str = ""
    model: ModelSpec = ModelSpec()
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    arms: list[Literal["insecure", "secure", "educational", "financial-risky", "financial-good"]] = Field(default_factory=lambda: list(EM_ARMS))
    data: EMDataSpec = EMDataSpec()
    sft: TrainSpec = TrainSpec(lr=1e-4)
    eval: EMEvalSpec = EMEvalSpec()
    direction: EMDirectionSpec = EMDirectionSpec()
    judge: EMJudgeSpec = EMJudgeSpec()
    quick: dict[str, Any] = Field(default_factory=dict)

    @field_validator("model", mode="before")
    @classmethod
    def _model_string(cls, v: Any) -> Any:
        return {"spec": v} if isinstance(v, str) else v

    @field_validator("seeds", "arms")
    @classmethod
    def _distinct(cls, v: list) -> list:
        if len(set(v)) != len(v):
            raise ValueError("lists an entry twice")
        return v

    @model_validator(mode="after")
    def _checks(self) -> EMRecipe:
        if self.direction.enabled and not {"insecure", "secure"} <= set(self.arms):
            raise ValueError("direction needs the insecure and secure arms (add them, or set direction.enabled: false)")
        if self.judge.base_url and not self.judge.model:
            raise ValueError("judge.base_url is set but judge.model is empty")
        check_quick(self)
        return self

    def quick_version(self) -> EMRecipe:
        return apply_quick(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def recipe_organism(name_or_path: str | Path) -> str:
    """The `organism:` a recipe file declares (rm-biases when it declares none)."""
    from spillover.errors import Problem

    path = recipe_path(name_or_path)
    organism = read_yaml_mapping(path, "recipe", "`name:`, `organism:`, `model:`").get("organism", "rm-biases")
    if organism not in ORGANISMS:
        raise BadInputError(Problem(str(path), "organism", f"unknown organism {organism!r}", f"use one of: {', '.join(ORGANISMS)}"))
    return organism


def load_em_recipe(name_or_path: str | Path | EMRecipe) -> EMRecipe:
    if isinstance(name_or_path, EMRecipe):
        return name_or_path
    path = recipe_path(name_or_path)
    raw = read_yaml_mapping(path, "recipe", "`name:`, `organism: em`, `model:`")
    raw.setdefault("name", path.stem)
    try:
        return EMRecipe.model_validate(raw)
    except ValidationError as e:
        raise BadInputError([_problem(str(path), err) for err in e.errors()]) from None
