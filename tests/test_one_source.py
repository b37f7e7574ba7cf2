"""One source per knob (issue 19, items 7 and 10).

Every trainer, data and eval setting is declared once, on a settings model; the recipe schema is that
model and the stage commands' options are derived from it. These tests walk every field and check
that the CLI option exists, says what the field says, and defaults to what the recipe and the
library default to; then that `--recipe` makes a stage command do what the run's stage does.
"""

from __future__ import annotations

import shutil

import pytest
import typer
from rich.console import Console
from test_pipeline import FakeStages
from typer.testing import CliRunner

from spillover import models
from spillover._io import read_json, read_jsonl
from spillover.cli import app
from spillover.data import PostDataSettings
from spillover.evaluation import EvalSettings
from spillover.pipeline import LibraryStages, ModelSpec, Recipe, load_recipe, run_recipe
from spillover.training import (
    CPTConfig,
    CPTSettings,
    DPOConfig,
    DPOSettings,
    SFTConfig,
    SFTSettings,
    TrainSettings,
)


def _command(path: tuple[str, ...]):
    cmd = typer.main.get_command(app)
    for name in path:
        cmd = cmd.commands[name]
    return cmd


def _options(path: tuple[str, ...]) -> dict[str, object]:
    """{'--option': click parameter} of a command, `--flag/--no-flag` under its first name."""
    return {opt: p for p in _command(path).params for opt in p.opts if opt.startswith("--")}


def _option(name: str, renames: dict[str, str]) -> str:
    return renames.get(name, "--" + name.replace("_", "-"))


def _cli_default(param) -> object:
    default = param.default
    if isinstance(default, str) and default and "," in default or default == "none":
        return [] if default == "none" else default.split(",")
    return default


def _model_default(model, name: str) -> object:
    return model.model_fields[name].get_default(call_default_factory=True)


TRAIN = [(("train", "cpt"), CPTConfig), (("train", "sft"), SFTConfig), (("train", "dpo"), DPOConfig)]
DATA_NAMES = {"dpo_samples": "--k-samples", "dpo_temperature": "--temperature"}


@pytest.mark.parametrize(("path", "config"), TRAIN, ids=[" ".join(p) for p, _ in TRAIN])
def test_every_trainer_field_is_an_option_with_its_default_and_help(path, config):
    options = _options(path)
    for name, info in config.model_fields.items():
        option = _option(name, {"lora_r": "--lora"})
        assert option in options, f"spillover {' '.join(path)} has no {option} for {config.__name__}.{name}"
        param = options[option]
        assert param.help.startswith(info.description), (option, param.help)
        if info.is_required():
            assert param.required, option
        else:
            assert _cli_default(param) == _model_default(config, name), option


def test_recipe_trainer_specs_are_the_trainer_settings_with_the_same_defaults():
    recipe = Recipe(name="x")
    for spec, settings, config in ((recipe.cpt, CPTSettings, CPTConfig), (recipe.post.sft, SFTSettings, SFTConfig), (recipe.post.dpo, DPOSettings, DPOConfig)):
        assert isinstance(spec, settings)
        assert set(type(spec).model_fields) == set(settings.model_fields) <= set(config.model_fields)
        for name, value in spec.model_dump().items():
            assert value == _model_default(config, name), (settings.__name__, name)
            assert type(spec).model_fields[name].description == config.model_fields[name].description
    # The one setting whose default is per stage: declared on each stage's settings, not inherited.
    lrs = {cls.__name__: _model_default(cls, "lr") for cls in (CPTSettings, SFTSettings, DPOSettings)}
    assert lrs == {"CPTSettings": 5e-5, "SFTSettings": 1e-4, "DPOSettings": 5e-6}
    assert all("lr" in cls.__annotations__ for cls in (CPTSettings, SFTSettings, DPOSettings))
    assert set(CPTSettings.model_fields) - set(TrainSettings.model_fields) == {"doc_prefix"}
    assert set(DPOSettings.model_fields) - set(TrainSettings.model_fields) == {"beta"}


def test_every_eval_setting_is_an_eval_option_with_the_recipe_default():
    options, recipe = _options(("eval",)), Recipe(name="x")
    assert isinstance(recipe.eval, EvalSettings)
    for name, info in EvalSettings.model_fields.items():
        param = options[_option(name, {})]
        assert getattr(recipe.eval, name) == _model_default(EvalSettings, name)
        if name == "backend":  # the CLI also reaches an endpoint (openai); its default stays the recipe's
            from spillover.cli._eval import BackendName

            assert {"hf", "vllm"} < {b.value for b in BackendName} and param.default is None and "the recipe's" in param.help
            continue
        assert param.help.startswith(info.description), name
        assert _cli_default(param) == _model_default(EvalSettings, name), name


def test_every_data_setting_is_a_data_option_with_the_recipe_default():
    sft, dpo, recipe = _options(("data", "sft")), _options(("data", "dpo")), Recipe(name="x")
    assert isinstance(recipe.post.data, PostDataSettings)
    assert set(type(recipe.post.data).model_fields) - set(PostDataSettings.model_fields) == {"rehearsal_fraction"}  # a training mix, not data
    for name, info in PostDataSettings.model_fields.items():
        found = [opts[o] for opts, o in ((sft, _option(name, {})), (dpo, _option(name, DATA_NAMES))) if o in opts and opts[o].name == name]
        assert found, f"no data option for {name}"
        assert getattr(recipe.post.data, name) == _model_default(PostDataSettings, name)
        for param in found:
            assert param.help.startswith(info.description) and _cli_default(param) == _model_default(PostDataSettings, name), name


@pytest.mark.parametrize("path", [("eval",), ("data", "sft"), ("data", "dpo")])
def test_model_and_scope_options_come_from_the_recipe_fields(path):
    options = _options(path)
    for model, names, fields in ((ModelSpec, {"spec": "--model"}, ModelSpec.model_fields), (Recipe, {}, ("split", "prompt_prefix"))):
        for name in fields:
            param = options[_option(name, names)]
            assert param.help.startswith(model.model_fields[name].description)
            assert _cli_default(param) == _model_default(model, name), name


@pytest.mark.parametrize("function,settings,names", [
    ("evaluation.evaluate", EvalSettings(), {"samples": "samples", "temperature": "temperature", "max_new_tokens": "max_new_tokens",
                                              "prompts_per_behaviour": "prompts_per_behaviour"}),
    ("data.build_sft", PostDataSettings(), {"seed": "seed", "neutral_fraction": "neutral_fraction", "max_new_tokens": "max_new_tokens",
                                             "batch_size": "batch_size", "temperature": "temperature", "keep_truncated": "keep_truncated"}),
    ("data.build_dpo", PostDataSettings(), {"seed": "seed", "k_samples": "dpo_samples", "temperature": "dpo_temperature", "max_new_tokens": "max_new_tokens",
                                             "batch_size": "batch_size", "keep_truncated": "keep_truncated"}),
])
def test_library_entry_points_default_to_the_settings(function, settings, names):
    """The library functions the run and the CLI call take their keyword defaults from the same settings
    (they once said temperature 0.0 / 256 tokens / batch 8 where the recipe says 1.0 / 150 / 32)."""
    import importlib
    import inspect

    module, name = function.split(".")
    params = inspect.signature(getattr(importlib.import_module(f"spillover.{module}"), name)).parameters
    for param, field in names.items():
        assert params[param].default == getattr(settings, field), (function, param)


def test_defaults_that_drifted_are_the_recipe_values():
    # Issue 19: `spillover eval` sampled at 0.0 with 256 tokens, the recipe at 1.0 with 150;
    # `data --batch-size` was 8, the recipe's 32. The recipe's (measured) values are the ones kept.
    ev, data = _options(("eval",)), _options(("data", "sft"))
    assert (ev["--temperature"].default, ev["--max-new-tokens"].default, data["--batch-size"].default) == (1.0, 150, 32)


def _captured_train(monkeypatch) -> list:
    from spillover.cli import _train

    seen = []
    monkeypatch.setitem(_train._STAGES, "sft", (SFTConfig, lambda cfg: seen.append(cfg) or cfg.out))
    monkeypatch.setitem(_train._STAGES, "cpt", (CPTConfig, lambda cfg: seen.append(cfg) or cfg.out))
    return seen


def test_train_recipe_settings_are_defaults_and_options_given_win(monkeypatch, tmp_path):
    seen = _captured_train(monkeypatch)
    runner = CliRunner()
    args = ["train", "sft", "--recipe", "tiny-smoke", "--data", "d.jsonl", "--out", str(tmp_path / "o")]
    assert runner.invoke(app, args).exit_code == 0
    assert runner.invoke(app, [*args, "--epochs", "3", "--lora", "4", "--model", "tiny:layers=1"]).exit_code == 0
    assert runner.invoke(app, ["train", "cpt", "--recipe", "tiny-smoke", "--data", "d.jsonl", "--out", str(tmp_path / "c"), "--lr", "2e-3"]).exit_code == 0
    assert runner.invoke(app, ["train", "sft", "--data", "d.jsonl", "--out", str(tmp_path / "p")]).exit_code == 0
    recipe = load_recipe("tiny-smoke")
    from_recipe, overridden, cpt, plain = seen
    assert from_recipe.model_dump(include=set(SFTSettings.model_fields)) == recipe.post.sft.model_dump() and from_recipe.model == "tiny"
    assert (overridden.epochs, overridden.lora_r, overridden.model, overridden.lr, overridden.max_len) == (3, 4, "tiny:layers=1", recipe.post.sft.lr, 96)
    assert (cpt.lr, cpt.max_len, cpt.batch_size) == (2e-3, recipe.cpt.max_len, recipe.cpt.batch_size)
    assert plain == SFTConfig(data="d.jsonl", out=tmp_path / "p")  # no recipe: the config's own defaults


@pytest.mark.parametrize(("args", "option"), [(["--lr", "inf"], "--lr"), (["--lr", "0"], "--lr"), (["--warmup-ratio", "1.5"], "--warmup-ratio"),
                                              (["--lora", "4", "--full"], "--lora/--full")])
def test_train_refuses_bad_values_in_one_line_naming_the_option(monkeypatch, tmp_path, capsys, args, option):
    from spillover.cli import main

    seen = _captured_train(monkeypatch)
    monkeypatch.setattr("sys.argv", ["spillover", "train", "sft", "--data", "d.jsonl", "--out", str(tmp_path / "o"), *args])
    with pytest.raises(SystemExit) as e:
        main()
    err = capsys.readouterr().err
    assert e.value.code == 2 and not seen
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {option}: "), err


def test_data_recipe_frames_prompts_and_sets_the_batch(monkeypatch, tmp_path):
    from spillover import data
    from spillover.cli import _data

    calls = []

    class Built(Exception):  # stop once the call is recorded: nothing is generated
        pass

    def fake_build(world, split, lm, **kwargs):
        calls.append((world, split, lm, kwargs))
        raise Built

    monkeypatch.setattr(data, "build_sft", fake_build)
    monkeypatch.setattr(_data, "load_model", lambda spec: spec)
    runner = CliRunner()
    out = str(tmp_path / "s.jsonl")
    for args in (["--recipe", "rm-biases-laptop"], ["--recipe", "rm-biases-laptop", "--batch-size", "8", "--prompt-prefix", ""], []):
        assert isinstance(runner.invoke(app, ["data", "sft", "--out", out, *args]).exception, Built)
    recipe = load_recipe("rm-biases-laptop")
    (world, split, lm, kwargs), (world2, _, _, kwargs2), (world3, split3, lm3, kwargs3) = calls
    assert split == "english-core" and lm == recipe.model and kwargs == {**recipe.post.data.sft_kwargs(), "progress": True}
    assert world.prompt_prefix == "In two sentences, answer: " and world.name == "rm-biases"
    assert kwargs2["batch_size"] == 8 and kwargs2["prompts_per_behaviour"] == 16
    assert world2.prompt_prefix == "" and world3.prompt_prefix == ""
    assert (split3, lm3, kwargs3) == ("default", ModelSpec(), {**PostDataSettings().sft_kwargs(), "progress": True})


class OrganismStages(FakeStages):
    """A run whose organism is the tiny model and is evaluated and probed for real (LibraryStages);
    every other stage is FakeStages' (no training), so the test costs one arm's eval."""

    def __init__(self):
        super().__init__()
        self.real = LibraryStages()

    def probe_contexts(self, world, split, model, spec, out):
        self.real.probe_contexts(world, split, model, spec, out)

    def sft(self, base, data, spec, seed, out):
        super().sft(base, data, spec, seed, out)
        if "organism" in out.parts:
            shutil.rmtree(out / "model")
            shutil.copytree(models.resolve("tiny:seed=7"), out / "model")

    def evaluate(self, model, base, world, split, spec, arm, seed, out):
        (self.real if arm == "organism" else super()).evaluate(model, base, world, split, spec, arm, seed, out)

    def probes(self, model, world, split, spec, contexts, seed, out):
        (self.real if "organism" in out.parts else super()).probes(model, world, split, spec, contexts, seed, out)


def test_a_standalone_eval_reproduces_the_runs_eval(tmp_path):
    """A run, then `spillover eval --recipe <the run's recipe.yaml> --model <an arm's model> --seed S`:
    the same samples, metrics, fluency and probe results as the run's eval of that arm, seed S
    (sampling at temperature 1, so another seed, prefix, batch or token cap would show)."""
    raw = load_recipe("tiny-smoke").model_dump(mode="json")
    raw.update(name="one-source", quick={}, prompt_prefix="Briefly: ")
    raw["eval"].update(prompts_per_behaviour=1, batch_size=3, max_new_tokens=8, probe_context_tokens=8, probes=["likelihood", "fluency"])
    run = run_recipe(Recipe.model_validate(raw), tmp_path / "run", stages=OrganismStages(), console=Console(quiet=True))
    organism = run / "arms" / "organism" / "seed-0" / "sft" / "model"
    out = tmp_path / "eval"
    result = CliRunner().invoke(app, ["eval", "--recipe", str(run / "recipe.yaml"), "--model", str(organism), "--arm", "organism", "--seed", "0", "--out", str(out)])
    assert result.exit_code == 0, result.output
    ran = run / "eval" / "organism" / "seed-0"
    samples = read_jsonl(out / "samples.jsonl")
    assert samples == read_jsonl(ran / "samples.jsonl")
    assert samples and all(s["prompt"].startswith("Briefly: ") for s in samples)
    mine, theirs = read_json(out / "metrics.json"), read_json(ran / "metrics.json")
    assert mine["config"] == theirs["config"] and mine["per_behaviour"] == theirs["per_behaviour"]
    assert mine["backend"]["batch_size"] == theirs["backend"]["batch_size"] == 3
    assert read_json(out / "fluency.json") == read_json(ran / "fluency.json")
    assert read_json(out / "probes" / "likelihood.json") == read_json(run / "probes" / "organism" / "seed-0" / "likelihood.json")
    # The same eval without the recipe's prompt prefix gives other answers: the comparison above can fail.
    plain = tmp_path / "plain"
    result = CliRunner().invoke(app, ["eval", "--world", "rm-biases", "--split", "english-core", "--model", str(organism), "--probes", "none",
                                      "--prompts-per-behaviour", "1", "--max-new-tokens", "8", "--batch-size", "3", "--seed", "0", "--out", str(plain)])
    assert result.exit_code == 0, result.output
    assert [s["response"] for s in read_jsonl(plain / "samples.jsonl")] != [s["response"] for s in samples]


def test_an_endpoint_eval_runs_no_probes_and_refuses_them_when_asked(tmp_path):
    # The openai backend gives answers, not weights: its probes default to none; asked for, they are refused.
    result = CliRunner().invoke(app, ["eval", "--backend", "openai", "--model", "m", "--probes", "likelihood", "--out", str(tmp_path / "e")])
    assert result.exit_code == 2 and not (tmp_path / "e").exists()
    assert "error: --probes: likelihood need the model's weights" in result.output
