"""A run directory without its model weights: what a repository can hold, and what a fresh machine
resumes from.

`spillover run` defers training until a stage that reads the model runs (`_run.StageRunner`), and a
trained stage without its `model/` is not done. So a run exported here, copied back to a run
directory and run again with the same recipe retrains only the models whose evals, probes or audit
are unfinished: a run too long for one session (each on a fresh machine) goes on from where the
last one stopped, with its evidence committed as it comes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from spillover._io import LOCK_FILE, atomic_dir
from spillover.errors import BadInputError, Problem
from spillover.training import WEIGHT_OUTPUTS


def _left_out(directory: str, names: list[str]) -> set[str]:
    stage = "stage.json" in names  # weights only where a stage wrote them
    return {n for n in names if n == LOCK_FILE or n.startswith(".tmp-") or (stage and n in WEIGHT_OUTPUTS)}


def export_run(run_dir: str | Path, dest: str | Path) -> dict:
    """Copy `run_dir` to `dest` (which must not exist) without model weights, checkpoints, locks or
    temp files; symlinks (a folds run's shared stages) stay links. Returns what was copied and left out."""
    run_dir, dest = Path(run_dir), Path(dest)
    if not (run_dir / "recipe.yaml").is_file():
        raise BadInputError(Problem(str(run_dir), "RUN_DIR", "is not a spillover run (no recipe.yaml)", "give a directory written by `spillover run`"))
    if dest.exists():
        raise BadInputError(Problem(str(dest), "DEST", "already exists; nothing was written", "choose a new directory"))
    left: list[str] = []

    def ignore(directory: str, names: list[str]) -> set[str]:
        out = _left_out(directory, names)
        left.extend(str((Path(directory) / n).relative_to(run_dir)) for n in sorted(out) if n != LOCK_FILE)
        return out

    with atomic_dir(dest) as tmp:
        shutil.copytree(run_dir, tmp, symlinks=True, ignore=ignore, dirs_exist_ok=True)
    files = [p for p in dest.rglob("*") if p.is_file() and not p.is_symlink()]
    return {"files": len(files), "bytes": sum(p.stat().st_size for p in files), "left_out": left}
