"""`run_recipe`: documents → data → CPT → post-training → eval → results, cached stage by stage.

Each stage directory holds `stage.json` (its config, its inputs' hashes and the hash of both)
and a `DONE` marker written last. A stage whose hash matches and which is DONE is skipped; one
whose hash differs is cleared and run again; one with the same hash that never finished (a killed
run) runs again in place, so trainers resume from their checkpoints. Inputs are the hashes of
upstream stages, so a change reruns exactly the stages downstream of it.

Training stages are deferred: they run only when a stage that reads their model runs (`needs`).
A run directory kept without its model weights (a run committed between sessions, each on a fresh
machine) therefore resumes without retraining any model whose evals and probes are finished; a
trained stage counts as done only while it still holds its `model/`.
"""

from __future__ import annotations

import copy
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from spillover._io import (
    DONE_MARKER,
    LOCK_FILE,
    atomic_write_text,
    config_hash,
    is_done,
    locked_dir,
    mark_done,
    read_json,
    write_json,
)
from spillover.errors import BadInputError, Problem
from spillover.world import World, load_world

from ._folds import build_run_results, check_split
from ._recipe import ModelSpec, Recipe, apply_settings, load_recipe
from ._schedule import LeakageError, check_audit, run_stages
from ._stagekit import holds_model
from ._stages import Stages

__all__ = ["LeakageError", "run_recipe"]

# The pipeline's record of a stage (config, input hashes, hash). Not config.json: trainers write
# their own config.json into the same directory.
STAGE_FILE = "stage.json"
RECIPE_FILE = "recipe.yaml"


@dataclass
class StageRecord:
    path: str  # relative to the run directory
    hash: str
    cached: bool
    seconds: float | None


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another filesystem, or links not allowed
        shutil.copy2(src, dst)


@dataclass
class StageRunner:
    run_dir: Path
    console: Console
    reuse_from: list[Path] = field(default_factory=list)
    t_start: float = field(default_factory=time.perf_counter)
    records: list[StageRecord] = field(default_factory=list)
    # Training stages not run yet, by stage directory: `need` runs one when a reader of its model runs.
    deferred: dict[Path, Callable[[], str]] = field(default_factory=dict)

    def _borrow(self, rel: str, h: str, d: Path, trains: bool = False) -> Path | None:
        """Link in the same stage (same hash, DONE) from another run directory, e.g. a sibling sweep cell.

        Hard links, not copies: stage files are only ever replaced by atomic renames, never written
        in place, so two run directories can share them. The link goes to a temp dir first, so a
        killed run never leaves half a stage behind.
        """
        for other in self.reuse_from:
            src = other / rel
            if src.resolve() == d.resolve() or not (src / STAGE_FILE).exists():
                continue
            if read_json(src / STAGE_FILE).get("hash") != h or not is_done(src) or (trains and not holds_model(src)):
                continue
            if d.exists():
                shutil.rmtree(d)
            d.parent.mkdir(parents=True, exist_ok=True)
            tmp = _borrow_temp(d)
            # Not the lender's lock file: a hard link would share its lock.
            shutil.copytree(src, tmp, copy_function=_link_or_copy, ignore=shutil.ignore_patterns(LOCK_FILE))
            tmp.rename(d)
            return other
        return None

    def _reused(self, rel: str, h: str, d: Path, message: str) -> str:
        """Record a finished stage that was not rerun, with the seconds it took when it ran."""
        done = read_json(d / DONE_MARKER)
        self.records.append(StageRecord(rel, h, True, done.get("seconds") if isinstance(done, dict) else None))
        self.console.print(f"[dim]· {message}[/]")
        return h

    def stage(
        self, rel: str, label: str, config: dict, inputs: dict[str, str], work: Callable[[Path], None],
        *, needs: tuple[ModelSpec, ...] = (), trains: bool = False,
    ) -> str:
        """Run `work(dir)` unless the stage is DONE with the same config and inputs; return its hash.

        `needs`: models that deferred stages write, trained (`need`) before this stage's clock starts,
        and only if it runs. `trains`: the stage writes `dir/model`; it is deferred until needed, and
        done only while `model/` is there."""
        d = self.run_dir / rel
        h = config_hash({"config": config, "inputs": inputs})
        record = d / STAGE_FILE
        same = record.exists() and read_json(record).get("hash") == h
        if same and is_done(d) and (not trains or holds_model(d)):
            return self._reused(rel, h, d, f"{label:<40} cached")
        if trains and d not in self.deferred:
            self.deferred[d] = lambda: self.stage(rel, label, config, inputs, work, needs=needs, trains=trains)
            return h
        self.deferred.pop(d, None)
        _clear_leftovers(d, same)
        lender = self._borrow(rel, h, d, trains)
        if lender is not None:
            return self._reused(rel, h, d, f"{label:<40} reused from {lender}")
        for model in needs:
            self.need(model)
        if d.exists() and not same:  # another config's output: start clean
            shutil.rmtree(d)
        # Same config but unfinished (a killed run): keep it, so a trainer resumes from its checkpoint.
        d.mkdir(parents=True, exist_ok=True)
        (d / DONE_MARKER).unlink(missing_ok=True)  # a trained stage kept without its model trains again
        write_json(record, {"stage": rel, "hash": h, "config": config, "inputs": inputs})
        self.console.print(f"[cyan]▶[/] {label:<40} [dim](run elapsed {_clock(time.perf_counter() - self.t_start)})[/]")
        t0 = time.perf_counter()
        work(d)
        seconds = round(time.perf_counter() - t0, 3)
        mark_done(d, {"hash": h, "seconds": seconds})
        self.records.append(StageRecord(rel, h, False, seconds))
        self.console.print(f"[green]✓[/] {label:<40} {_clock(seconds)}")
        return h

    def need(self, model: ModelSpec) -> None:
        """Train `model` now if a deferred stage writes it (`stage_dir/model`); base models pass through."""
        run = self.deferred.get(Path(model.spec).parent)
        if run is not None:
            run()


def _clear_leftovers(d: Path, same: bool) -> None:
    """Temp dirs a killed run left in a stage's places (the run directory is locked: none is in use)."""
    shutil.rmtree(_borrow_temp(d), ignore_errors=True)
    if same:
        for leftover in sorted(d.rglob(".tmp-*"), reverse=True):  # atomic_dir's and checkpoints' temp names
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)


def _borrow_temp(stage_dir: Path) -> Path:
    return stage_dir.parent / f".tmp-borrow-{stage_dir.name}"


def _clock(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    return f"{m}m{s:02d}s" if m else f"{seconds:.1f}s"


def _run_dir_default(recipe: Recipe, quick: bool) -> Path:
    return Path("runs") / (f"{recipe.name}-quick" if quick else recipe.name)


def overrides_suffix(overrides: dict | None) -> str:
    """`-set-<hash>` for a default directory of a recipe run with `--set`: its own, so another
    setting never clears the stages of the recipe's plain run (whose finished stages it reuses)."""
    return f"-set-{config_hash(overrides)[:8]}" if overrides else ""


def run_recipe(
    recipe: str | Path | Recipe,
    out_dir: str | Path | None = None,
    quick: bool = False,
    stages: Stages | None = None,
    console: Console | None = None,
    seeds: list[int] | None = None,
    reuse_from: list[Path] | None = None,
    overrides: dict | None = None,
    accelerate: str | None = None,
) -> Path:
    """Run (or resume) a recipe; return the run directory holding results.json and the reports.

    Default run directory: runs/<recipe name>/ (runs/<name>-quick/ with `quick`). A recipe with
    `organism: em` runs the emergent-misalignment pipeline (`_em.run_em_recipe`; `stages` unused).
    `seeds` replaces the recipe's (after `quick`, which keeps only the first). `reuse_from`: other
    run directories whose finished stages with the same hash are linked in instead of rerun.
    `overrides`: dotted recipe fields (`{"post.sft.lr": 1e-4}`, as `parse_overrides` reads `--set`),
    applied after `quick` and recorded on top of the run's recipe.yaml. Without `out_dir` they get
    their own directory, runs/<name>-set-<hash>/, which reuses the plain run's finished stages.
    `accelerate`: an accelerate config (shipped name or YAML) replacing the recipe's `accelerate:`;
    with one, CPT, SFT and DPO each run as an `accelerate launch` of `spillover train from-config`.
    """
    if not isinstance(recipe, Recipe):
        from ._em_recipe import EMRecipe, recipe_organism

        if isinstance(recipe, EMRecipe) or recipe_organism(recipe) == "em":
            from ._em import run_em_recipe

            if accelerate is not None:
                raise BadInputError(Problem("--accelerate", "", "an em recipe trains in this process only", "drop --accelerate"))

            return run_em_recipe(recipe, out_dir, quick=quick, console=console, seeds=seeds, reuse_from=reuse_from)
    recipe = load_recipe(recipe)
    if quick:
        recipe = recipe.quick_version()
    if overrides:
        recipe = apply_settings(recipe, overrides, where="--set")
    if seeds:
        recipe = Recipe.model_validate({**recipe.model_dump(), "seeds": list(seeds)})
    if accelerate is not None:
        recipe = recipe.model_copy(update={"accelerate": accelerate})
    if stages is None:
        from ._library import LibraryStages

        stages = LibraryStages()
    if recipe.accelerate is not None:
        from spillover.training import launch_identity

        launch_identity(recipe.accelerate)  # an unknown or unreadable config fails here, before anything is written
        stages = copy.copy(stages)
        stages.accelerate = recipe.accelerate
    console = console or Console()
    world = load_world(recipe.world).with_prompt_prefix(recipe.prompt_prefix)
    check_split(world, recipe.split)  # fails early on an unknown split
    check_audit(recipe)
    reuse_from = list(reuse_from or [])
    if out_dir is None and overrides:
        plain = _run_dir_default(recipe, quick)
        out_dir = plain.with_name(plain.name + overrides_suffix(overrides))
        reuse_from += [plain] if plain.is_dir() else []
    run_dir = Path(out_dir) if out_dir is not None else _run_dir_default(recipe, quick)
    check_run_dir(run_dir, recipe)  # before anything is written
    with locked_dir(run_dir):
        check_run_dir(run_dir, recipe)  # another run may have started it meanwhile
        atomic_write_text(run_dir / RECIPE_FILE, recipe.to_yaml(overrides))
        return _run_locked(run_dir, recipe, world, stages, console, reuse_from)


def check_run_dir(run_dir: Path, recipe: Recipe) -> None:
    """A run writes only into a new or empty directory, or into a run of the same recipe.

    "A run of the recipe" is a directory whose recipe.yaml (written by every run) has the same
    `name`: its stages are resumed, and those whose config changed are cleared and rerun. Anything
    else is refused before a byte is written, so a typo in --out never clears someone's files.
    """
    if not run_dir.exists():
        return
    if not run_dir.is_dir():
        raise BadInputError(Problem(str(run_dir), "--out", "is a file, not a directory", "choose a directory for the run"))
    if not {p.name for p in run_dir.iterdir()} - {LOCK_FILE}:
        return  # empty, or a run killed before it wrote anything
    name = _recorded_recipe_name(run_dir / RECIPE_FILE)
    if name == recipe.name:
        return
    found = f"a run of recipe '{name}', not of '{recipe.name}'" if name else f"not empty and not a spillover run (no {RECIPE_FILE} naming a recipe)"
    raise BadInputError(
        Problem(str(run_dir), "--out", f"{found}; nothing was written",
                f"choose a new or empty directory, or a run directory of '{recipe.name}'")
    )


def _recorded_recipe_name(path: Path) -> str | None:
    import yaml

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    name = raw.get("name") if isinstance(raw, dict) else None
    return name if isinstance(name, str) else None


def _run_locked(run_dir: Path, recipe: Recipe, world: World, stages: Stages, console: Console,
                reuse_from: list[Path] | None) -> Path:
    console.rule(f"spillover run {recipe.name} → {run_dir}")
    runner = StageRunner(run_dir, console, reuse_from=list(reuse_from or []))
    run_stages(runner, recipe, world, stages)

    # Writes samples.jsonl.gz beside results.json (what the rates count) and a folds run's fold results.
    results = build_run_results(run_dir, recipe, world, timing={r.path: r.seconds for r in runner.records})
    results["timing"]["wall_seconds_this_run"] = round(time.perf_counter() - runner.t_start, 3)
    write_json(run_dir / "results.json", results)

    from spillover.report import render_report

    _, md_path = render_report(run_dir)
    from rich.markdown import Markdown

    console.print(Markdown(md_path.read_text(encoding="utf-8")))
    return run_dir
