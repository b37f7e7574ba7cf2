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
    apply_settings,
    list_recipes,
    load_recipe,
    parse_overrides,
    recipe_path,
)
from ._results import PUBLISHED, build_results, rate_diff
from ._run import LeakageError, run_recipe
from ._stages import Stages
from ._sweep import Grid, grid_cells, load_grid, run_sweep, sample_hits_for_hand_check, write_sweep_table

__all__ = [
    "ARMS",
    "PROBES",
    "PUBLISHED",
    "CPTSpec",
    "DPOSpec",
    "DocumentsSpec",
    "Grid",
    "EvalSpec",
    "LeakageError",
    "ModelSpec",
    "PostDataSpec",
    "PostSpec",
    "Recipe",
    "Stages",
    "TrainSpec",
    "apply_settings",
    "build_results",
    "grid_cells",
    "load_grid",
    "list_recipes",
    "load_recipe",
    "parse_overrides",
    "rate_diff",
    "recipe_path",
    "run_recipe",
    "run_sweep",
    "sample_hits_for_hand_check",
    "write_sweep_table",
]
