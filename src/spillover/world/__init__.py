"""Worlds: a catalogue of behaviours (domain, description, detector, prompts, examples) and splits."""

from ._detectors import DETECTORS, Detection, run_detector
from ._detectors import register as register_detector
from ._loader import (
    DEFAULT_SPLIT,
    MIN_EXAMPLES,
    MIN_PROMPTS,
    World,
    list_worlds,
    load_world,
    world_path,
    write_world_template,
)
from ._prompts import expand, normalise, split_prompts
from ._schema import Behaviour, WorldSpec
from ._transforms import TRANSFORMS, apply_transform
from ._transforms import register as register_transform

__all__ = [
    "DEFAULT_SPLIT",
    "DETECTORS",
    "MIN_EXAMPLES",
    "MIN_PROMPTS",
    "TRANSFORMS",
    "Behaviour",
    "Detection",
    "World",
    "WorldSpec",
    "apply_transform",
    "expand",
    "list_worlds",
    "load_world",
    "normalise",
    "register_detector",
    "register_transform",
    "run_detector",
    "split_prompts",
    "world_path",
    "write_world_template",
]
