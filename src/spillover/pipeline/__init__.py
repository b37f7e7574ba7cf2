"""The headline experiment: a recipe → documents, data, CPT, post-training, eval → results.json."""

from ._em import run_em_recipe
from ._em_recipe import EM_ARMS, EMRecipe, load_em_recipe, recipe_organism
from ._em_results import build_em_results
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
from ._sweep import Grid, grid_cells, load_grid, run_sweep, sample_hits_for_hand_check, write_sweep_table

__all__ = [
    "ARMS",
    "EM_ARMS",
    "PROBES",
    "PUBLISHED",
    "CPTSpec",
    "DPOSpec",
    "DocumentsSpec",
    "EMRecipe",
    "Grid",
    "EvalSpec",
    "LeakageError",
    "ModelSpec",
    "PostDataSpec",
    "PostSpec",
    "Recipe",
    "Stages",
    "TrainSpec",
    "build_em_results",
    "build_results",
    "grid_cells",
    "load_grid",
    "list_recipes",
    "load_em_recipe",
    "load_recipe",
    "rate_diff",
    "recipe_organism",
    "recipe_path",
    "run_em_recipe",
    "run_recipe",
    "run_sweep",
    "sample_hits_for_hand_check",
    "write_sweep_table",
]
