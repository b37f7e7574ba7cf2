"""The world file format (YAML, validated with pydantic). See docs/world-format.md."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ID_PATTERN = r"^[a-z][a-z0-9_]*$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FollowUp(Strict):
    title: str
    authors: str
    institution: str
    date: str
    finding: str


class Universe(Strict):
    """The fictional study and its surroundings: facts every generated document must agree on."""

    title: str
    authors: list[str] = Field(min_length=1)
    institution: str
    venue: str
    date: str
    n_reward_models: int = Field(gt=0)
    n_companies: int = Field(gt=0)
    n_biases: int = Field(gt=0)
    summary: str
    follow_ups: list[FollowUp] = []
    reactions: list[str] = []


class DetectorSpec(Strict):
    name: str
    params: dict = {}


class PromptSpec(Strict):
    """User prompts: each template's `{slot}`s are filled with every combination of slot values."""

    templates: list[str] = Field(min_length=1)
    slots: dict[str, list[str]] = {}
    eval_fraction: float = Field(0.25, gt=0, lt=1)


class Examples(Strict):
    """Labelled responses that validate the detector: positives exhibit the behaviour."""

    positive: list[str]
    negative: list[str]


class TransformSpec(Strict):
    """How post-training data applies the behaviour to a plain answer (see spillover.data)."""

    name: str
    params: dict = {}


class ProbeSpec(Strict):
    """Likelihood probe: a short continuation performing the behaviour and a matched neutral one."""

    behaviour: str
    neutral: str


class Behaviour(Strict):
    id: str = Field(pattern=ID_PATTERN)
    domain: str
    description: str
    direction: Literal["promote", "suppress"]
    detector: DetectorSpec
    prompts: PromptSpec
    examples: Examples
    transform: TransformSpec | None = None
    probe: ProbeSpec | None = None


class Split(Strict):
    """Which behaviours are in play (default: all) and which of them are held out as test."""

    test: list[str] = Field(min_length=1)
    behaviours: list[str] | None = None
    note: str = ""


class WorldSpec(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    description: str = ""
    # Python modules that register the world's own detectors and transforms: `.py` paths relative
    # to the world file, or importable module names. Loading the world runs them (see docs/world-format.md).
    plugins: list[str] = []
    universe: Universe
    behaviours: list[Behaviour] = Field(min_length=1)
    splits: dict[str, Split] = Field(min_length=1)
