"""The headline experiment: a recipe → documents, data, CPT, post-training, eval → results.json."""

from ._recipe import (
    ARMS,
    PROBES,
    CPTSpec,
    DocumentsSpec,
    DPOSpec,
    EvalSpec,
    ModelSpec,
    PostDataSpec,
    PostSpec,
    Recipe,
    TrainSpec,
    list_recipes,
    load_recipe,
    recipe_path,
)
from ._results import PUBLISHED, build_results, rate_diff
from ._run import LeakageError, run_recipe
from ._stages import Stages

__all__ = [
    "ARMS",
    "PROBES",
    "PUBLISHED",
    "CPTSpec",
    "DPOSpec",
    "DocumentsSpec",
    "EvalSpec",
    "LeakageError",
    "ModelSpec",
    "PostDataSpec",
    "PostSpec",
    "Recipe",
    "Stages",
    "TrainSpec",
    "build_results",
    "list_recipes",
    "load_recipe",
    "rate_diff",
    "recipe_path",
    "run_recipe",
]
