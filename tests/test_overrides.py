"""`spillover run/sweep RECIPE --model SPEC --set KEY=VALUE`: parsed as YAML, validated like the
recipe, applied after --quick, recorded in the run's recipe.yaml, and given their own run directory."""

from __future__ import annotations

import pytest
import yaml
from test_pipeline import FakeStages, quiet
from typer.testing import CliRunner

from spillover.errors import BadInputError
from spillover.pipeline import load_recipe, parse_overrides, run_recipe, run_sweep


def test_values_are_read_as_yaml_scalars():
    got = parse_overrides(["post.sft.lr=1e-4", "cpt.lr=2.0e-5", "eval.samples=4", "seeds=[0, 1]", "model.chat_template=null", "post.sft.bf16=true",
                           "prompt_prefix=Note: be brief.", "model.spec=tiny:family=qwen3"])
    assert got == {"post.sft.lr": 1e-4, "cpt.lr": 2e-5, "eval.samples": 4, "seeds": [0, 1], "model.chat_template": None, "post.sft.bf16": True,
                   "prompt_prefix": "Note: be brief.", "model.spec": "tiny:family=qwen3"}
    for bad, match in (("post.sft.lr", "is not KEY=VALUE"), ("=3", "is not KEY=VALUE"), ("post..lr=1", "is not KEY=VALUE"), ("quick.seeds=[1]", "use --quick")):
        with pytest.raises(BadInputError, match=match):
            parse_overrides([bad])


def test_overrides_are_applied_validated_and_recorded(tmp_path):
    overrides = parse_overrides(["post.sft.lr=1e-4", "eval.samples=4", "model.spec=tiny:family=gemma3"])
    run_dir = run_recipe("tiny-smoke", out_dir=tmp_path / "run", stages=FakeStages(), console=quiet(), overrides=overrides)
    text = (run_dir / "recipe.yaml").read_text()
    assert text.startswith('# --set post.sft.lr=0.0001\n# --set eval.samples=4\n# --set model.spec="tiny:family=gemma3"\n')
    recorded = load_recipe(run_dir / "recipe.yaml")
    assert (recorded.post.sft.lr, recorded.eval.samples, recorded.model.spec) == (1e-4, 4, "tiny:family=gemma3")
    assert recorded.post.sft.max_len == load_recipe("tiny-smoke").post.sft.max_len  # the rest of post.sft is the recipe's
    with pytest.raises(BadInputError) as err:
        run_recipe("tiny-smoke", out_dir=tmp_path / "bad", stages=FakeStages(), console=quiet(), overrides={"post.sft.lrr": 1e-4})
    assert str(err.value) == "--set: post.sft.lrr: Extra inputs are not permitted (fix: remove it or check its spelling (see docs/recipes.md))"
    with pytest.raises(BadInputError, match=r"--set: eval.samples: Input should be greater than or equal to 1"):
        run_recipe("tiny-smoke", out_dir=tmp_path / "bad", stages=FakeStages(), console=quiet(), overrides={"eval.samples": 0})
    assert not (tmp_path / "bad").exists()  # refused before anything was written


def test_overrides_win_over_quick(tmp_path):
    run_dir = run_recipe("tiny-smoke", out_dir=tmp_path / "run", quick=True, stages=FakeStages(), console=quiet(), overrides={"documents.n": 5})
    assert load_recipe(run_dir / "recipe.yaml").documents.n == 5  # tiny-smoke's quick block says 6


def test_cli_run_with_model_and_set_gets_its_own_directory_and_reuses_the_plain_run(tmp_path, monkeypatch):
    from spillover.cli import _run as cli_run
    from spillover.cli import app  # the real app: its group turns errors into one line and exit 2

    stages = FakeStages()
    monkeypatch.setattr(cli_run, "make_stages", lambda: stages)
    monkeypatch.chdir(tmp_path)
    assert CliRunner().invoke(app, ["run", "tiny-smoke"]).exit_code == 0
    stages.calls.clear()
    result = CliRunner().invoke(app, ["run", "tiny-smoke", "--set", "eval.samples=2"])
    assert result.exit_code == 0, result.output
    (new,) = [d for d in (tmp_path / "runs").iterdir() if d.name != "tiny-smoke"]
    assert new.name.startswith("tiny-smoke-set-") and load_recipe(new / "recipe.yaml").eval.samples == 2
    assert stages.calls["documents"] == 0 and stages.calls["cpt"] == 0 and stages.calls["evaluate"] > 0  # only eval reran
    assert load_recipe(tmp_path / "runs/tiny-smoke/recipe.yaml").eval.samples == 1  # the plain run is untouched

    result = CliRunner().invoke(app, ["run", "tiny-smoke", "--out", "m", "--model", "tiny:family=qwen3"])
    assert result.exit_code == 0, result.output
    assert load_recipe(tmp_path / "m/recipe.yaml").model.spec == "tiny:family=qwen3"
    result = CliRunner().invoke(app, ["run", "tiny-smoke", "--set", "eval.sample=2"])
    assert result.exit_code == 2 and result.output.strip().splitlines() == [
        "error: --set: eval.sample: Extra inputs are not permitted (fix: remove it or check its spelling (see docs/recipes.md))"
    ]
    result = CliRunner().invoke(app, ["run", "tiny-smoke", "--model", "tiny", "--set", "model.spec=embedded"])
    assert result.exit_code == 2 and "given twice" in result.output


def test_sweep_applies_overrides_to_every_cell(tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({"axes": {"documents.n": [4, 5]}}))
    sweep_dir = run_sweep("tiny-smoke", grid, out_dir=tmp_path / "sweep", stages=FakeStages(), overrides={"eval.samples": 3})
    cells = sorted((sweep_dir / "cells").iterdir())
    assert [load_recipe(c / "recipe.yaml").eval.samples for c in cells] == [3, 3]
    assert [load_recipe(c / "recipe.yaml").documents.n for c in cells] == [4, 5]
    with pytest.raises(BadInputError, match="--set: documents.n: is also set by the grid"):
        run_sweep("tiny-smoke", grid, out_dir=tmp_path / "s2", stages=FakeStages(), overrides={"documents.n": 3})
    with pytest.raises(BadInputError, match="--set: eval.smaples"):
        run_sweep("tiny-smoke", grid, out_dir=tmp_path / "s3", stages=FakeStages(), overrides={"eval.smaples": 3})
