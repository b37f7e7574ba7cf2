"""The headline experiment: a recipe → documents, data, CPT, post-training, eval → results.json."""

from spillover.evaluation import PROBES

from ._em import run_em_recipe
from ._em_recipe import EM_ARMS, EMRecipe, load_em_recipe, recipe_organism
from ._em_results import build_em_results
from ._evidence import SAMPLES_FILE, read_samples, write_samples
from ._export import export_run
from ._library import LibraryStages, load_model
from ._provenance import detectors_hash, provenance
from ._recipe import (
    ARMS,
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
    "EM_ARMS",
    "PROBES",
    "PUBLISHED",
    "SAMPLES_FILE",
    "CPTSpec",
    "DPOSpec",
    "DocumentsSpec",
    "EMRecipe",
    "EvalSpec",
    "Grid",
    "LeakageError",
    "LibraryStages",
    "ModelSpec",
    "PostDataSpec",
    "PostSpec",
    "Recipe",
    "Stages",
    "TrainSpec",
    "apply_settings",
    "build_em_results",
    "build_results",
    "detectors_hash",
    "export_run",
    "grid_cells",
    "list_recipes",
    "load_em_recipe",
    "load_grid",
    "load_model",
    "load_recipe",
    "parse_overrides",
    "provenance",
    "rate_diff",
    "read_samples",
    "recipe_organism",
    "recipe_path",
    "run_em_recipe",
    "run_recipe",
    "run_sweep",
    "sample_hits_for_hand_check",
    "write_samples",
    "write_sweep_table",
]
