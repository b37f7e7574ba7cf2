"""`run_sweep`: one recipe over a grid of settings → one table (a row per setting) and a plot.

A grid file names recipe fields by dotted path and lists values for each; every combination is a
cell (or list `cells:` explicitly). Each cell is an ordinary run directory under
`<sweep dir>/cells/<settings>-<hash>/`, so it is cached and resumable like any run, and a grid can grow without
redoing finished cells. A stage that another cell already finished with the same hash (the base
arm's eval, the documents, the CPT model when only post-training differs) is hard-linked in, not rerun. The table is rebuilt from every cell directory on disk, so no setting that
was ever tried drops out of it. Cells run one after another: two torch jobs on 2 cores slow each
other ~10x.
"""

from __future__ import annotations

import itertools
import random
import re
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from spillover._io import (
    atomic_write_text,
    config_hash,
    locked_dir,
    named_yaml,
    read_json,
    read_jsonl,
    read_yaml_mapping,
    write_json,
    write_jsonl,
)
from spillover._settings import NonNegInt, checked
from spillover.errors import BadInputError, Problem

from ._recipe import Recipe, apply_settings, builtin_recipes_dir, load_recipe
from ._run import overrides_suffix, run_recipe

SWEEP_FILE = "sweep.json"
# Detector hits read by a person: rows {cell, arm, seed, behaviour, role, prompt, response, span, label}.
# `label` is true when the answer really performs the behaviour, false for a misfire, null until read.
HAND_CHECK_FILE = "hand_check.jsonl"


class Grid(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    axes: dict[str, list[Any]] = Field(default_factory=dict)
    cells: list[dict[str, Any]] = Field(default_factory=list)


def load_grid(name_or_path: str | Path) -> Grid:
    """A grid YAML path, or the name of a built-in grid (`laptop-levers`)."""
    path = named_yaml(name_or_path, builtin_recipes_dir() / "grids", "grid")
    raw = read_yaml_mapping(path, "grid", "`axes:` or `cells:`")
    try:
        grid = Grid.model_validate(raw)
    except ValidationError as e:
        raise BadInputError(
            [Problem(str(path), ".".join(map(str, err["loc"])), err["msg"], "use `axes: {dotted.field: [values]}` or `cells: [{dotted.field: value}]`") for err in e.errors()]
        ) from None
    if not grid.axes and not grid.cells:
        raise BadInputError(Problem(str(path), "axes", "the grid is empty", "list at least one axis or cell"))
    for key, values in grid.axes.items():
        if not values:
            raise BadInputError(Problem(str(path), f"axes.{key}", "no values", "list one or more values"))
    return grid


def grid_cells(grid: Grid) -> list[dict[str, Any]]:
    """Every combination of the axes (in file order), then the explicit cells."""
    keys = list(grid.axes)
    combos = [dict(zip(keys, values)) for values in itertools.product(*(grid.axes[k] for k in keys))] if keys else []
    return combos + [dict(c) for c in grid.cells]


def cell_slug(settings: dict[str, Any]) -> str:
    """A stable directory name for a cell: readable settings, then a hash of them.

    `documents.n=400,post.sft.lr=0.0001-3f9a2c1d`. The readable part replaces characters unsafe in
    file names and is cut to 120 characters, so two settings can share it ("Answer: " and
    "Answer; "); the hash of the exact settings keeps their directories apart.
    """
    if not settings:
        return "recipe"
    readable = re.sub(r"[^A-Za-z0-9_.=,+-]", "_", ",".join(f"{k}={v}" for k, v in sorted(settings.items())))[:120]
    return f"{readable}-{config_hash(settings, 8)}"


def _legacy_slug(settings: dict[str, Any]) -> str:
    """The name cells had before the hash was added (sweeps on disk from then resume in place)."""
    parts = [f"{k}={v}" for k, v in sorted(settings.items())]
    return re.sub(r"[^A-Za-z0-9_.=,+-]", "_", ",".join(parts))[:200]


def _cell_dir(sweep_dir: Path, settings: dict[str, Any]) -> Path:
    """The cell's directory; an older sweep's cell of exactly these settings is renamed to it."""
    cell_dir = sweep_dir / "cells" / cell_slug(settings)
    legacy = sweep_dir / "cells" / _legacy_slug(settings)
    if settings and not cell_dir.exists() and (legacy / "cell.json").is_file() and read_json(legacy / "cell.json").get("settings") == settings:
        legacy.rename(cell_dir)
    return cell_dir


def run_sweep(
    recipe: str | Path | Recipe, grid: str | Path | Grid, *, out_dir: str | Path | None = None, quick: bool = False,
    seeds: list[int] | None = None, stages=None, overrides: dict[str, Any] | None = None,
) -> Path:
    """Run every cell of the grid (cached cells are skipped inside run_recipe) and write the table.

    `seeds` replaces every cell's seeds (after `quick`), e.g. to explore on seeds 0-2 in quick mode.
    `overrides` (`--set`) apply to every cell, after `quick`; a grid axis cannot be one of them.
    """
    base = load_recipe(recipe)
    grid_obj = grid if isinstance(grid, Grid) else load_grid(grid)
    name = grid_obj.name or (Path(grid).stem if not isinstance(grid, Grid) else "grid")
    default_name = f"{base.name}-{name}{'-quick' if quick else ''}{overrides_suffix(overrides)}"
    sweep_dir = Path(out_dir) if out_dir is not None else Path("runs") / "sweeps" / default_name
    cells = grid_cells(grid_obj)
    clash = sorted({k for c in cells for k in c} & set(overrides or {}))
    if clash:
        raise BadInputError(Problem("--set", ", ".join(clash), "is also set by the grid", "drop it from --set or from the grid"))
    if overrides:
        apply_settings(base, overrides, where="--set")  # fails before any cell runs
    planned = [(settings, apply_settings(base, settings, where=str(grid))) for settings in cells]  # validate all first
    with locked_dir(sweep_dir):  # one sweep at a time writes the table and renames cells
        for settings, cell_recipe in planned:
            cell_dir = _cell_dir(sweep_dir, settings)
            siblings = sorted(d for d in (sweep_dir / "cells").glob("*") if d.is_dir() and d != cell_dir)
            t0 = time.perf_counter()
            run_recipe(cell_recipe, out_dir=cell_dir, quick=quick, stages=stages, seeds=seeds, reuse_from=siblings, overrides=overrides)
            write_json(cell_dir / "cell.json", {"settings": settings, "wall_seconds_last_run": round(time.perf_counter() - t0, 3)})
        return write_sweep_table(sweep_dir)


def _diff(h: dict | None) -> dict:
    return {"diff": h.get("diff"), "ci": h.get("ci")} if h else {"diff": None, "ci": [None, None]}


def sweep_row(cell_dir: Path) -> dict:
    """One table row from a finished cell's results.json."""
    res = read_json(cell_dir / "results.json")
    cell = read_json(cell_dir / "cell.json") if (cell_dir / "cell.json").exists() else {"settings": {}}
    arms = res["arms"]
    head = res["headline"]
    did = head.get("likelihood_did") or {}
    return {
        "cell": cell_dir.name,
        "settings": cell["settings"],
        "seeds": res["seeds"],
        "split": res["split"],
        "test_vs_docs_plain": _diff(head.get("test_vs_docs_plain")),  # the out-of-context effect proper (null: a cell without docs-plain)
        "test_vs_docs_plain_novel": _diff(head.get("test_vs_docs_plain_novel")),  # novel hits only
        "test_vs_control": _diff(head.get("test_vs_control")),
        "test_vs_base": _diff(head.get("test_vs_base")),
        "train_vs_control": _diff(head.get("train_vs_control")),
        "likelihood_did_test": _diff(did.get("test")),
        "likelihood_did_train": _diff(did.get("train")),
        "rates": {arm: {role: arms[arm]["roles"][role] for role in ("train", "test")} for arm in arms},
        "knowledge": {arm: arms[arm].get("knowledge") for arm in arms},  # {k, n, rate, ci}
        "fluency": {arm: (arms[arm].get("fluency") or {}).get("mean_logprob_per_token") for arm in arms},
        "stage_seconds": res.get("timing", {}).get("total_stage_seconds"),
    }


def _hit_key(row: dict) -> tuple:
    return (row["cell"], row["arm"], row["seed"], row["behaviour"], row["prompt"], row.get("sample", 0))


@checked
def sample_hits_for_hand_check(sweep_dir: str | Path, per_arm: NonNegInt = 4, seed: int = 0) -> tuple[Path, int]:
    """Add every test-behaviour hit and up to `per_arm` train-behaviour hits per (cell, arm) to
    hand_check.jsonl, unlabelled. Test hits are few and decide the headline, so all are read.

    Rows already in the file (labelled or not) are kept and never drawn again, so the file can be
    labelled by hand, then topped up after the grid grows. Returns the file and the rows added.
    """
    sweep_dir = Path(sweep_dir)
    if not (sweep_dir / "cells").is_dir():  # nothing to draw from: refuse rather than write empty files
        what = "not a sweep directory (it has no cells/)" if sweep_dir.is_dir() else "no such directory"
        raise BadInputError(Problem(str(sweep_dir), "", what, "pass a directory written by `spillover sweep`"))
    path = sweep_dir / HAND_CHECK_FILE
    existing = read_jsonl(path) if path.exists() else []
    seen = {_hit_key(r) for r in existing}
    added = []
    for cell_dir in sorted(d for d in (sweep_dir / "cells").glob("*") if (d / "results.json").exists()):
        for arm_dir in sorted((cell_dir / "eval").glob("*")):
            hits = [
                {"cell": cell_dir.name, **{k: s.get(k) for k in ("arm", "seed", "behaviour", "role", "prompt", "sample", "response", "span")}, "label": None}
                for seed_dir in sorted(arm_dir.glob("seed-*")) for s in read_jsonl(seed_dir / "samples.jsonl") if s["exhibited"]
            ]
            fresh = [h for h in hits if _hit_key(h) not in seen]
            added += [h for h in fresh if h["role"] == "test"]
            fresh_train = [h for h in fresh if h["role"] != "test"]
            have = sum(1 for r in existing + added if r["cell"] == cell_dir.name and r["arm"] == arm_dir.name and r["role"] != "test")
            rng = random.Random(f"{seed}:{cell_dir.name}:{arm_dir.name}")
            added += rng.sample(fresh_train, min(len(fresh_train), max(0, per_arm - have)))
    write_jsonl(path, existing + added)
    return path, len(added)


def hand_check_precision(sweep_dir: Path) -> dict[str, dict]:
    """Per cell: detector precision on the hand-labelled hits, {k: real, n: labelled, rate}."""
    path = sweep_dir / HAND_CHECK_FILE
    out: dict[str, dict] = {}
    for r in read_jsonl(path) if path.exists() else []:
        if r.get("label") is None:
            continue
        c = out.setdefault(r["cell"], {"k": 0, "n": 0})
        c["k"] += bool(r["label"])
        c["n"] += 1
    for c in out.values():
        c["rate"] = c["k"] / c["n"]
    return out


def _fmt_diff(d: dict, pct: bool = True) -> str:
    if d["diff"] is None:
        return "—"
    scale, digits = (100, 1) if pct else (1, 2)
    lo, hi = d["ci"]
    return f"{d['diff'] * scale:+.{digits}f} [{lo * scale:+.{digits}f}, {hi * scale:+.{digits}f}]"


def _fmt_num(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}"


def _fmt_rate(r: dict | None) -> str:
    return f"{r['k']}/{r['n']} ({100 * r['rate']:.0f}%)" if r and r.get("n") else "—"


def write_sweep_table(sweep_dir: str | Path) -> Path:
    """Rebuild sweep.json, sweep.md and sweep.png from every finished cell on disk."""
    sweep_dir = Path(sweep_dir)
    cell_dirs = sorted(d for d in (sweep_dir / "cells").glob("*") if (d / "results.json").exists())
    rows = [sweep_row(d) for d in cell_dirs]
    precision = hand_check_precision(sweep_dir)
    for r in rows:
        r["detector_precision_hand_checked"] = precision.get(r["cell"])
    write_json(sweep_dir / SWEEP_FILE, {"rows": rows})
    header = (
        "| setting | test − docs-plain (pp) | novel hits: test − docs-plain (pp) | test − control (pp) | test − base (pp) | train − control (pp) | likelihood DiD test (nats) "
        "| likelihood DiD train (nats) | organism train | organism test | control test | base test "
        "| knowledge docs-only / base | fluency organism / base (nats/token) | detector precision (hand-checked hits) | time (s) |"
    )
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for r in rows:
        rates = r["rates"]
        lines.append(
            "| " + " | ".join([
                ", ".join(f"{k}={v}" for k, v in r["settings"].items()) or "(recipe)",
                _fmt_diff(r["test_vs_docs_plain"]), _fmt_diff(r["test_vs_docs_plain_novel"]),
                _fmt_diff(r["test_vs_control"]), _fmt_diff(r["test_vs_base"]), _fmt_diff(r["train_vs_control"]),
                _fmt_diff(r["likelihood_did_test"], pct=False), _fmt_diff(r["likelihood_did_train"], pct=False),
                _fmt_rate(rates.get("organism", {}).get("train")), _fmt_rate(rates.get("organism", {}).get("test")),
                _fmt_rate(rates.get("control", {}).get("test")), _fmt_rate(rates.get("base", {}).get("test")),
                f"{_fmt_rate(r['knowledge'].get('docs-only'))} / {_fmt_rate(r['knowledge'].get('base'))}",
                f"{_fmt_num(r['fluency'].get('organism'))} / {_fmt_num(r['fluency'].get('base'))}",
                _fmt_rate(r["detector_precision_hand_checked"]),
                f"{r['stage_seconds']:.0f}" if r["stage_seconds"] is not None else "—",
            ]) + " |"
        )
    atomic_write_text(sweep_dir / "sweep.md", "\n".join(lines) + "\n")
    if rows:
        _plot(rows, sweep_dir / "sweep.png")
    return sweep_dir


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [", ".join(f"{k.split('.')[-1]}={v}" for k, v in r["settings"].items()) or "(recipe)" for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(12, 1.2 + 0.45 * len(rows)), sharey=True)
    for ax, key, title, scale in ((axes[0], "test_vs_control", "test rate: organism − control (pp)", 100), (axes[1], "likelihood_did_test", "test likelihood DiD (nats)", 1)):
        for i, r in enumerate(rows):
            d = r[key]
            if d["diff"] is None:
                continue
            lo, hi = d["ci"]
            ax.errorbar(d["diff"] * scale, i, xerr=[[max(0.0, (d["diff"] - lo) * scale)], [max(0.0, (hi - d["diff"]) * scale)]], fmt="o", color="C0", capsize=3)
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_title(title, fontsize=10)
    axes[0].set_yticks(range(len(rows)), labels, fontsize=8)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
