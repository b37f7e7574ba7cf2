"""Sweeps: a grid of recipe settings → one row per setting, cached cells, clear grid errors."""

from __future__ import annotations

import pytest
from test_pipeline import FakeStages

from spillover._io import read_json
from spillover.errors import BadInputError
from spillover.pipeline import Grid, grid_cells, load_grid, run_sweep
from spillover.pipeline._sweep import cell_slug


def write_grid(tmp_path, text: str):
    p = tmp_path / "grid.yaml"
    p.write_text(text)
    return p


def test_grid_cells_are_the_product_of_axes_then_explicit_cells():
    grid = Grid(axes={"cpt.lr": [1e-4, 3e-4], "documents.n": [10, 20]}, cells=[{"post.method": "dpo"}])
    cells = grid_cells(grid)
    assert cells[:4] == [
        {"cpt.lr": 1e-4, "documents.n": 10}, {"cpt.lr": 1e-4, "documents.n": 20},
        {"cpt.lr": 3e-4, "documents.n": 10}, {"cpt.lr": 3e-4, "documents.n": 20},
    ]
    assert cells[4] == {"post.method": "dpo"} and len(cells) == 5


def test_sweep_writes_one_row_per_setting_and_grows_without_rerunning(tmp_path):
    stages = FakeStages()
    grid = write_grid(tmp_path, "axes:\n  eval.temperature: [0.5, 1.0]\n")
    sweep_dir = run_sweep("tiny-smoke", grid, out_dir=tmp_path / "sweep", stages=stages)
    rows = read_json(sweep_dir / "sweep.json")["rows"]
    assert sorted(r["settings"]["eval.temperature"] for r in rows) == [0.5, 1.0]
    # The two cells differ only in eval settings: the second links in the first's trained models.
    assert stages.calls["cpt"] == 1 and stages.calls["sft"] == 3  # control, docs-plain and organism, once
    first, second = sorted((sweep_dir / "cells").iterdir())
    rel = "arms/docs-only/seed-0/cpt/model/from.json"
    assert (first / rel).read_text() == (second / rel).read_text()
    assert (first / rel).stat().st_ino == (second / rel).stat().st_ino  # a hard link, not a copy
    assert not (first / "eval/organism/seed-0/samples.jsonl").samefile(second / "eval/organism/seed-0/samples.jsonl")
    row = rows[0]
    # FakeStages: organism exhibits test behaviours on 3 of 4 samples, control on 1 of 4.
    assert row["test_vs_control"]["diff"] == pytest.approx(0.5)
    assert row["rates"]["organism"]["test"]["k"] * 4 == row["rates"]["organism"]["test"]["n"] * 3
    assert row["likelihood_did_test"]["diff"] == pytest.approx((1.5 - 0.5) - (0.2 - 0.0))
    table = (sweep_dir / "sweep.md").read_text()
    assert "eval.temperature=0.5" in table and "eval.temperature=1.0" in table
    assert "+50.0" in table
    # organism − docs-plain (3 of 4 vs 2 of 4), all hits and novel hits alone (no hit copies training text)
    assert row["test_vs_docs_plain"]["diff"] == pytest.approx(0.25) and None not in row["test_vs_docs_plain"]["ci"]
    assert row["test_vs_docs_plain_novel"]["diff"] == pytest.approx(0.25)
    header, _, first_row = table.splitlines()[:3]
    columns = [c.strip() for c in header.split("|")[1:-1]]
    cells = dict(zip(columns, [c.strip() for c in first_row.split("|")[1:-1]], strict=True))
    assert cells["test − docs-plain (pp)"].startswith("+25.0 [") and cells["novel hits: test − docs-plain (pp)"].startswith("+25.0 [")
    assert (sweep_dir / "sweep.png").stat().st_size > 1000

    # Growing the grid: finished cells are not trained again, and old rows stay in the table.
    grown = write_grid(tmp_path, "axes:\n  eval.temperature: [1.0, 0.7]\n")
    again = FakeStages()
    run_sweep("tiny-smoke", grown, out_dir=tmp_path / "sweep", stages=again)
    assert again.calls["cpt"] == 0 and again.calls["evaluate"] == 5  # only the new cell (0.7) evaluates its 5 arms
    rows = read_json(sweep_dir / "sweep.json")["rows"]
    assert sorted(r["settings"]["eval.temperature"] for r in rows) == [0.5, 0.7, 1.0]


def test_grid_errors_name_the_file_and_field(tmp_path):
    with pytest.raises(BadInputError, match="grid is empty"):
        load_grid(write_grid(tmp_path, "name: x\n"))
    with pytest.raises(BadInputError, match="axes.cpt.lr: no values"):
        load_grid(write_grid(tmp_path, "axes:\n  cpt.lr: []\n"))
    with pytest.raises(BadInputError, match="grid.yaml: line 2: not valid YAML"):
        load_grid(write_grid(tmp_path, "cells: [\n"))
    with pytest.raises(BadInputError, match="a grid must be a YAML mapping"):
        load_grid(write_grid(tmp_path, "- {cpt.lr: 0.1}\n"))
    with pytest.raises(BadInputError, match=r"grid.yaml: cpt.learning_rate"):
        run_sweep("tiny-smoke", write_grid(tmp_path, "axes:\n  cpt.learning_rate: [0.1]\n"), out_dir=tmp_path / "s", stages=FakeStages())
    assert not (tmp_path / "s").exists()  # every cell is validated before anything runs
    with pytest.raises(BadInputError, match="no such grid.*laptop-levers"):
        load_grid("no-such-grid")


def test_builtin_grids_load_by_name():
    for name in ("laptop-levers", "laptop-confirm"):
        assert load_grid(name).cells  # shipped in the package beside the recipes


def test_sweep_seeds_override_quick_and_reuse_only_matching_stages(tmp_path):
    stages = FakeStages()
    grid = write_grid(tmp_path, "cells:\n  - {}\n  - {post.sft.lr: 0.002}\n")
    sweep_dir = run_sweep("tiny-smoke", grid, out_dir=tmp_path / "sweep", quick=True, seeds=[3, 4], stages=stages)
    rows = read_json(sweep_dir / "sweep.json")["rows"]
    assert all(r["seeds"] == [3, 4] for r in rows)
    # CPT per seed runs once (shared); SFT differs between cells: 3 arms x 2 seeds x 2 cells.
    assert stages.calls["cpt"] == 2 and stages.calls["sft"] == 12
    timing = read_json(sweep_dir / "cells" / cell_slug({"post.sft.lr": 0.002}) / "results.json")["timing"]
    assert "arms/docs-only/seed-3/cpt" in timing


def test_hand_check_draws_hits_once_and_the_table_reports_precision(tmp_path):
    import json

    from spillover.cli import app
    from typer.testing import CliRunner

    grid = write_grid(tmp_path, "cells:\n  - {}\n")
    sweep_dir = run_sweep("tiny-smoke", grid, out_dir=tmp_path / "sweep", stages=FakeStages())
    result = CliRunner().invoke(app, ["hand-check", str(sweep_dir), "--per-arm", "2"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (sweep_dir / "hand_check.jsonl").read_text().splitlines()]
    samples = [json.loads(line) for f in sorted((sweep_dir / "cells").glob("*/eval/*/seed-*/samples.jsonl")) for line in f.read_text().splitlines()]
    test_hits = sum(s["exhibited"] and s["role"] == "test" for s in samples)
    assert test_hits > 0
    # every test-behaviour hit, and 2 train-behaviour hits per arm
    assert sum(r["role"] == "test" for r in rows) == test_hits and sum(r["role"] == "train" for r in rows) == 5 * 2
    assert all(r["label"] is None and r["response"] == "Please call 911 now." for r in rows)
    assert "— |" in (sweep_dir / "sweep.md").read_text().splitlines()[-1]  # nothing labelled yet
    # A person labels them: 3 real, the rest misfires.
    for i, r in enumerate(rows):
        r["label"] = i < 3
    (sweep_dir / "hand_check.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert CliRunner().invoke(app, ["hand-check", str(sweep_dir), "--per-arm", "2"]).exit_code == 0
    again = [json.loads(line) for line in (sweep_dir / "hand_check.jsonl").read_text().splitlines()]
    assert again == rows  # labelled rows kept, nothing new drawn (2 per arm already)
    row = read_json(sweep_dir / "sweep.json")["rows"][0]
    n = len(rows)
    assert row["detector_precision_hand_checked"] == {"k": 3, "n": n, "rate": 3 / n}
    assert f"3/{n} (" in (sweep_dir / "sweep.md").read_text()


def test_cell_names_read_like_their_settings_and_never_collide():
    a, b = cell_slug({"prompt_prefix": "Answer: "}), cell_slug({"prompt_prefix": "Answer; "})
    assert a != b and a.startswith("prompt_prefix=Answer__-") and b.startswith("prompt_prefix=Answer__-")
    assert cell_slug({"cpt.lr": 1e-4, "documents.n": 10}) == cell_slug({"documents.n": 10, "cpt.lr": 1e-4})  # key order
    long = {"prompt_prefix": "x" * 300}
    assert len(cell_slug(long)) < 140 and cell_slug(long) != cell_slug({"prompt_prefix": "x" * 301})
    assert cell_slug({}) == "recipe"


def test_settings_that_read_alike_get_a_row_each(tmp_path):
    grid = write_grid(tmp_path, 'axes:\n  prompt_prefix: ["Answer: ", "Answer; "]\n')
    sweep_dir = run_sweep("tiny-smoke", grid, out_dir=tmp_path / "sweep", stages=FakeStages())
    assert len(list((sweep_dir / "cells").iterdir())) == 2
    rows = read_json(sweep_dir / "sweep.json")["rows"]
    assert sorted(r["settings"]["prompt_prefix"] for r in rows) == ["Answer: ", "Answer; "]


def test_a_cell_from_before_the_hash_resumes_in_place(tmp_path):
    grid = write_grid(tmp_path, "axes:\n  eval.temperature: [0.5]\n")
    sweep_dir = run_sweep("tiny-smoke", grid, out_dir=tmp_path / "sweep", stages=FakeStages())
    (cell,) = (sweep_dir / "cells").iterdir()
    cell.rename(sweep_dir / "cells" / "eval.temperature=0.5")  # the name older versions gave it
    again = FakeStages()
    run_sweep("tiny-smoke", grid, out_dir=tmp_path / "sweep", stages=again)
    assert [d.name for d in (sweep_dir / "cells").iterdir()] == [cell.name]
    assert sum(again.calls.values()) == 0  # nothing rerun
