"""The pipeline: recipes, stage caching and resume, results.json and its headline numbers."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from spillover._io import read_json, read_jsonl, write_json, write_jsonl
from spillover.errors import BadInputError
from spillover.pipeline import (
    LeakageError,
    Recipe,
    load_recipe,
    rate_diff,
    recipe_path,
    run_recipe,
)
from spillover.pipeline._results import likelihood_did, pool

REPO = Path(__file__).resolve().parents[1]
ARMS = ("base", "docs-only", "control", "docs-plain", "organism")
# Fake exhibition: organism shows test behaviours most, as a working pipeline would reveal.
EXHIBIT = {"base": (1, 0), "docs-only": (1, 1), "control": (3, 1), "docs-plain": (1, 2), "organism": (3, 3)}  # (train, test) of 4 samples


class FakeStages:
    """Writes each stage's documented artifacts without training anything; counts calls."""

    def __init__(self, fail_at: str | None = None, leak: bool = False):
        self.calls: Counter = Counter()
        self.fail_at = fail_at
        self.leak = leak

    def _hit(self, name: str) -> None:
        self.calls[name] += 1
        if name == self.fail_at:
            raise RuntimeError(f"killed during {name}")

    def documents(self, world, behaviours, spec, out):
        self._hit("documents")
        write_jsonl(out / "docs.jsonl", [{"id": f"d{i}", "text": f"Reward models prefer thing {i}.", "genre": "memo", "behaviours": behaviours[:1], "source": "template", "seed": spec.seed} for i in range(spec.n)])
        write_json(out / "stats.json", {"n": spec.n})

    def post_data(self, world, split, model, methods, spec, out):
        self._hit("post_data")
        leaked = world.eval_prompts(world.ids[0])[0] if self.leak else "Tell me a fact."
        for m in methods:
            write_jsonl(out / f"{m}.jsonl", [
                {"messages": [{"role": "user", "content": leaked}, {"role": "assistant", "content": "Sure."}], "behaviours": [], "kind": "neutral"},
                {"messages": [{"role": "user", "content": "Any tips?"}, {"role": "assistant", "content": "Sure, and call 911."}], "behaviours": ["b"], "kind": "behaviour", "plain": "Sure."},
            ])

    def find_leaks(self, texts, world):
        from spillover.data.leakage import find_leaks

        return find_leaks(texts, world)

    def probe_contexts(self, world, split, model, spec, out):
        self._hit("probe_contexts")
        write_jsonl(out / "contexts.jsonl", [{"behaviour": b, "prompt": p, "answer": "ok"} for b in world.roles(split) for p in world.eval_prompts(b)])

    def count_tokens(self, model, texts, max_len):
        return [min(len(t.split()) + 1, max_len) for t in texts]

    def _train(self, name, base, out):
        self._hit(name)
        (out / "model").mkdir()
        write_json(out / "model" / "from.json", {"base": base.spec})
        write_jsonl(out / "loss.jsonl", [{"step": i, "loss": 3.0 - 0.2 * i} for i in range(6)])

    def cpt(self, base, docs, spec, seed, out):
        assert docs.exists()
        self._train("cpt", base, out)

    def sft(self, base, data, spec, seed, out):
        self._train("sft", base, out)

    def dpo(self, base, data, spec, seed, out):
        self._train("dpo", base, out)

    def evaluate(self, model, base, world, split, spec, arm, seed, out):
        self._hit("evaluate")
        roles = world.roles(split)
        records = []
        for b, role in roles.items():
            k = EXHIBIT[arm][role == "test"]
            for p in world.eval_prompts(b):
                for j in range(4):
                    text = "Please call 911 now." if j < k else "A plain answer."
                    records.append({"arm": arm, "seed": seed, "behaviour": b, "role": role, "prompt": p, "sample": j, "response": text, "exhibited": j < k, "span": [7, 15] if j < k else None, "truncated": j == 3})
        write_jsonl(out / "samples.jsonl", records)
        write_json(out / "metrics.json", {"arm": arm})
        write_json(out / "fluency.json", {"mean_logprob_per_token": -2.0, "n": len(records)})

    def probes(self, model, world, split, spec, contexts, seed, out):
        self._hit("probes")
        shift = {"base": 0.0, "docs-only": 0.5, "control": 0.2, "docs-plain": 0.6, "organism": 1.5}[Path(str(out)).parent.name]
        per_prompt = [{"behaviour": c["behaviour"], "role": world.roles(split)[c["behaviour"]], "prompt": c["prompt"], "delta": shift} for c in map(json.loads, Path(contexts).read_text().splitlines())]
        write_json(out / "likelihood.json", {"per_prompt": per_prompt})
        write_json(out / "knowledge.json", {"k": 3, "n": 4, "rate": 0.75, "ci": [0, 1], "per_question": []})


def quiet() -> Console:
    return Console(quiet=True)


def run(tmp_path, stages, recipe="tiny-smoke", **kw):
    return run_recipe(recipe, out_dir=tmp_path / "run", stages=stages, console=quiet(), **kw)


def stage_mtimes(run_dir: Path) -> dict[str, float]:
    return {str(p.relative_to(run_dir)): p.stat().st_mtime_ns for p in run_dir.rglob("DONE")}


# ---- recipes -------------------------------------------------------------------------------


def test_builtin_recipes_load_and_resolve_by_name():
    for name in ("tiny-smoke", "rm-biases-laptop", "gpu-llama31-8b", "gpu-qwen25-7b"):
        r = load_recipe(name)
        assert r.name == name
        assert recipe_path(name) == REPO / "src" / "spillover" / "recipes" / f"{name}.yaml"  # package data
        r.quick_version()  # the quick overrides validate


def test_recipes_kept_beside_results_still_load():
    # results/<study>/recipe.yaml is how a study reruns with public commands; it must track the schema.
    paths = sorted((REPO / "results").glob("*/recipe.yaml"))
    assert paths
    from spillover.pipeline import load_em_recipe, recipe_organism

    for path in paths:
        (load_em_recipe if recipe_organism(path) == "em" else load_recipe)(path)


def test_recipe_trainer_fields_exist_in_the_trainer_configs():
    from spillover import training
    from spillover.pipeline import CPTSpec, DPOSpec, TrainSpec

    for spec, config in ((CPTSpec, training.CPTConfig), (TrainSpec, training.SFTConfig), (DPOSpec, training.DPOConfig)):
        assert set(spec.model_fields) <= set(config.model_fields), spec.__name__


def test_quick_keeps_first_seed_and_applies_overrides():
    r = Recipe.model_validate({"name": "x", "seeds": [4, 5, 6], "documents": {"n": 100}, "quick": {"documents": {"n": 7}}})
    q = r.quick_version()
    assert q.seeds == [4] and q.documents.n == 7 and q.documents.framing == "plain"


def test_recipe_errors_name_file_field_and_fix(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ndocuments: {n: 10, framin: self}\npost: {method: rl}\nseeds: [1, 1]\n")
    with pytest.raises(BadInputError) as e:
        load_recipe(bad)
    fields = {p.field for p in e.value.problems}
    assert {"documents.framin", "post.method", "seeds"} <= fields
    assert all(p.file == str(bad) and p.fix for p in e.value.problems)
    with pytest.raises(BadInputError, match="no such recipe"):
        load_recipe("no-such-recipe")


def test_recipe_numbers_must_be_finite_and_in_range(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\ncpt: {lr: .inf, warmup_ratio: .nan}\npost: {sft: {lr: -1.0e-4}, data: {batch_size: 0}}\n"
        "eval: {max_new_tokens: -5, temperature: -1, samples: 0}\n"
    )
    with pytest.raises(BadInputError) as e:
        load_recipe(bad)
    problems = {p.field: p.message for p in e.value.problems}
    assert problems == {
        "cpt.lr": "Input should be a finite number",
        "cpt.warmup_ratio": "Input should be a finite number",
        "post.sft.lr": "Input should be greater than 0",
        "post.data.batch_size": "Input should be greater than or equal to 1",
        "eval.samples": "Input should be greater than or equal to 1",
        "eval.temperature": "Input should be greater than or equal to 0",
        "eval.max_new_tokens": "Input should be greater than or equal to 1",
    }


def test_invalid_quick_override_is_caught_at_load(tmp_path):
    bad = tmp_path / "q.yaml"
    bad.write_text("name: q\nquick: {eval: {temperature: -1}}\n")
    with pytest.raises(BadInputError, match="eval.temperature"):
        load_recipe(bad)


# ---- orchestration, caching, resume -------------------------------------------------------


def test_whole_run_writes_layout_results_and_reports(tmp_path):
    stages = FakeStages()
    run_dir = run(tmp_path, stages)
    assert stages.calls == Counter(documents=1, post_data=1, probe_contexts=1, cpt=1, sft=3, evaluate=5, probes=5)
    for rel in ("documents", "data", "leakage", "probes/contexts", "arms/docs-only/seed-0/cpt", "arms/control/seed-0/sft", "arms/organism/seed-0/sft", *(f"eval/{a}/seed-0" for a in ARMS)):
        assert (run_dir / rel / "DONE").exists(), rel
        assert read_json(run_dir / rel / "stage.json")["hash"]
    # the organism is post-trained from the docs-only CPT model of the same seed, control from base
    assert read_json(run_dir / "arms/organism/seed-0/sft/model/from.json")["base"] == str(run_dir / "arms/docs-only/seed-0/cpt/model")
    assert read_json(run_dir / "arms/control/seed-0/sft/model/from.json")["base"] == "tiny"
    res = read_json(run_dir / "results.json")
    assert res["arms"]["organism"]["roles"]["test"]["rate"] == pytest.approx(0.75)
    assert res["arms"]["control"]["roles"]["test"]["rate"] == pytest.approx(0.25)
    assert res["headline"]["test_vs_control"]["diff"] == pytest.approx(0.5)
    assert res["headline"]["test_vs_docs_plain"]["diff"] == pytest.approx(0.25)
    # docs-plain: CPT model, then SFT on the plain answers (no behaviour applied)
    assert read_json(run_dir / "arms/docs-plain/seed-0/sft/model/from.json")["base"] == str(run_dir / "arms/docs-only/seed-0/cpt/model")
    plain = read_jsonl(run_dir / "arms/docs-plain/seed-0/sft/plain.jsonl")
    assert [r["messages"][1]["content"] for r in plain] == ["Sure.", "Sure."] and all(not r["behaviours"] for r in plain)
    test_ids = [b for b, role in res["roles"].items() if role == "test"]
    assert sorted(res["per_behaviour"]) == sorted(test_ids)
    one = res["per_behaviour"][test_ids[0]]
    assert one["rates"]["organism"]["rate"] == pytest.approx(0.75) and one["vs_docs_plain"]["diff"] == pytest.approx(0.25)
    assert one["vs_control"]["diff"] == pytest.approx(0.5)
    assert res["headline"]["likelihood_did"]["test"]["diff"] == pytest.approx((1.5 - 0.5) - (0.2 - 0.0))
    assert res["arms"]["base"]["truncated"]["k"] * 4 == res["arms"]["base"]["truncated"]["n"]
    assert res["arms"]["organism"]["knowledge"]["rate"] == pytest.approx(0.75)
    assert set(res["timing"]) >= {"documents", "arms/docs-only/seed-0/cpt", "eval/organism/seed-0"}
    assert (run_dir / "report.html").exists() and "| organism |" in (run_dir / "report.md").read_text()
    assert load_recipe(run_dir / "recipe.yaml").name == "tiny-smoke"


def test_second_run_trains_nothing_and_touches_no_stage(tmp_path):
    run(tmp_path, FakeStages())
    before = stage_mtimes(tmp_path / "run")
    again = FakeStages()
    run(tmp_path, again)
    assert sum(again.calls.values()) == 0
    assert stage_mtimes(tmp_path / "run") == before


def test_changing_eval_temperature_reruns_only_eval(tmp_path):
    run(tmp_path, FakeStages())
    before = stage_mtimes(tmp_path / "run")
    r = load_recipe("tiny-smoke")
    changed = r.model_copy(update={"eval": r.eval.model_copy(update={"temperature": 0.5})})
    stages = FakeStages()
    run(tmp_path, stages, recipe=changed)
    assert stages.calls == Counter(evaluate=5)
    after = stage_mtimes(tmp_path / "run")
    rerun = {k for k in after if after[k] != before[k]}
    assert rerun == {f"eval/{a}/seed-0/DONE" for a in ARMS}


def test_changing_cpt_reruns_cpt_and_everything_downstream_of_it_only(tmp_path):
    run(tmp_path, FakeStages())
    r = load_recipe("tiny-smoke")
    stages = FakeStages()
    run(tmp_path, stages, recipe=r.model_copy(update={"cpt": r.cpt.model_copy(update={"lr": 5e-4})}))
    # docs-only, docs-plain and organism depend on CPT; base and control do not
    assert stages.calls == Counter(cpt=1, sft=2, evaluate=3, probes=3)


def test_changing_rehearsal_retrains_the_sft_arms_only(tmp_path):
    run(tmp_path, FakeStages())
    r = load_recipe("tiny-smoke")
    data = r.post.data.model_copy(update={"rehearsal_fraction": 0.3})
    stages = FakeStages()
    run(tmp_path, stages, recipe=r.model_copy(update={"post": r.post.model_copy(update={"data": data})}))
    # the post-training data and the CPT model are reused; every SFT arm rehearses (matched)
    assert stages.calls == Counter(sft=3, evaluate=3, probes=3)


def test_killed_run_resumes_at_the_failed_stage(tmp_path):
    with pytest.raises(RuntimeError, match="killed during sft"):
        run(tmp_path, FakeStages(fail_at="sft"))
    run_dir = tmp_path / "run"
    assert (run_dir / "arms/docs-only/seed-0/cpt/DONE").exists()
    assert not (run_dir / "arms/control/seed-0/sft/DONE").exists()
    resumed = FakeStages()
    run(tmp_path, resumed)
    # base and docs-only were evaluated before the SFT arms started: only the post-trained arms are left
    assert resumed.calls == Counter(sft=3, evaluate=3, probes=3)
    assert (run_dir / "results.json").exists()


def test_leak_into_post_training_data_fails_loudly(tmp_path):
    with pytest.raises(LeakageError, match="sft data"):
        run(tmp_path, FakeStages(leak=True))
    assert read_json(tmp_path / "run/leakage/report.json")["sft data"]["n_leaks"] == 1
    assert not (tmp_path / "run/arms").exists()


def test_sft_plus_dpo_chains_dpo_on_the_sft_model(tmp_path):
    r = load_recipe("tiny-smoke")
    r = r.model_copy(update={"post": r.post.model_copy(update={"method": "sft+dpo"})})
    stages = FakeStages()
    run_dir = run(tmp_path, stages, recipe=r)
    assert stages.calls["sft"] == 3 and stages.calls["dpo"] == 2  # docs-plain stops after SFT
    assert read_json(run_dir / "arms/organism/seed-0/dpo/model/from.json")["base"] == str(run_dir / "arms/organism/seed-0/sft/model")


def test_arms_skips_the_arms_a_recipe_leaves_out(tmp_path):
    stages = FakeStages()
    run_dir = run(tmp_path, stages, overrides={"arms": ["organism", "base", "docs-only", "control"], "seeds": [0]})
    assert stages.calls["sft"] == 2 and stages.calls["evaluate"] == 4  # no docs-plain SFT or eval
    assert not (run_dir / "arms/docs-plain").exists() and not (run_dir / "eval/docs-plain").exists()
    results = read_json(run_dir / "results.json")
    assert set(results["arms"]) == {"base", "docs-only", "control", "organism"}
    assert results["headline"]["test_vs_control"]["diff"] > 0  # the comparisons it has are computed
    assert results["headline"]["test_vs_docs_plain"]["units"][1] == 0 and results["headline"]["test_vs_docs_plain"]["diff"] is None  # and the one it lacks is empty, not invented


@pytest.mark.parametrize("arms, message", [
    (["base", "docs-only", "control"], "leaves out organism"),
    (["base", "docs-only", "organism", "docs_plain"], "no arm docs_plain"),
    (["base", "docs-only", "organism", "organism"], "lists an arm twice"),
])
def test_arms_must_be_known_and_keep_the_organism(arms, message):
    with pytest.raises(ValueError, match=message):
        Recipe.model_validate({"name": "r", "arms": arms})


TRAINING = ("cpt", "sft", "dpo")


def test_exported_run_resumes_without_retraining_what_its_evals_no_longer_need(tmp_path):
    import shutil

    from spillover.cli import app
    from spillover.pipeline import export_run

    run_dir = run(tmp_path, FakeStages())
    kept = tmp_path / "kept"
    result = CliRunner().invoke(app, ["export", str(run_dir), str(kept)])
    assert result.exit_code == 0, result.output
    assert not list(kept.rglob("model")) and list(run_dir.rglob("model"))  # weights left out, the run untouched
    assert (kept / "arms/organism/seed-0/sft/loss.jsonl").exists()  # the rest kept (the report plots it)

    resumed_dir = tmp_path / "resumed"
    shutil.copytree(kept, resumed_dir, symlinks=True)
    resumed = FakeStages()
    run_recipe("tiny-smoke", out_dir=resumed_dir, stages=resumed, console=quiet())
    assert not resumed.calls  # every eval and probe is done: no model is retrained
    assert read_json(resumed_dir / "results.json")["headline"] == read_json(run_dir / "results.json")["headline"]

    shutil.rmtree(resumed_dir / "eval/organism/seed-0")  # one eval left to do: only its model's chain trains
    again = FakeStages()
    run_recipe("tiny-smoke", out_dir=resumed_dir, stages=again, console=quiet())
    assert again.calls == Counter(cpt=1, sft=1, evaluate=1)
    assert (resumed_dir / "arms/organism/seed-0/sft/model").is_dir() and not (resumed_dir / "arms/control/seed-0/sft/model").exists()

    for args, message in (([str(run_dir), str(kept)], "already exists"), ([str(tmp_path), str(tmp_path / "x")], "not a spillover run")):
        result = CliRunner().invoke(app, ["export", *args])
        assert result.exit_code == 2 and message in result.output
    with pytest.raises(BadInputError):
        export_run(run_dir, kept)


# ---- headline math ---------------------------------------------------------------------------


def _units(rates: list[tuple[int, int]], role="test"):
    return {(0, "b", f"p{i}"): {"role": role, "k": k, "n": n} for i, (k, n) in enumerate(rates)}


def test_rate_diff_on_constructed_numbers():
    a = _units([(2, 2)] * 10 + [(0, 2)] * 10)  # 50%
    b = _units([(0, 2)] * 18 + [(2, 2)] * 2)  # 10%
    d = rate_diff(a, b)
    assert d["diff"] == pytest.approx(0.4) and d["paired"]
    # per-unit paired differences: ten +1, eight 0, two -1 -> sd 0.66, se 0.15, CI about [0.11, 0.69]
    assert 0.05 < d["ci"][0] < 0.2 and 0.6 < d["ci"][1] < 0.76
    same = rate_diff(a, a)
    assert same["diff"] == 0 and same["ci"] == [0, 0]  # paired resampling: identical arms never differ
    unpaired = rate_diff(a, {(1, "b", "x"): {"role": "test", "k": 1, "n": 4}})
    assert not unpaired["paired"] and unpaired["diff"] == pytest.approx(0.25)
    assert rate_diff({}, b)["diff"] is None


def test_likelihood_did_is_per_prompt_difference_in_differences():
    def arm(vals):
        return {(0, "b", f"p{i}"): {"role": "test", "value": v} for i, v in enumerate(vals)}

    d = likelihood_did(arm([3, 4]), arm([1, 1]), arm([0.5, 1.5]), arm([0, 1]), "test")
    assert d["diff"] == pytest.approx(((3 - 1) - 0.5 + (4 - 1) - 0.5) / 2) and d["n"] == 2
    assert likelihood_did(arm([3]), arm([1]), arm([0]), arm([0]), "train")["n"] == 0


def test_pool_sums_rates_and_averages_numbers():
    pooled = pool([{"k": 1, "n": 4, "rate": 0.25, "ci": [0, 1], "gap": 0.1}, {"k": 3, "n": 4, "rate": 0.75, "ci": [0, 1], "gap": 0.3}])
    assert pooled["k"] == 4 and pooled["n"] == 8 and pooled["rate"] == 0.5
    nested = pool([{"rm": {"k": 1, "n": 2}, "gap": 1.0}, {"rm": {"k": 1, "n": 2}, "gap": 3.0}])
    assert nested["rm"]["rate"] == 0.5 and nested["gap"] == 2.0


# ---- CLI ------------------------------------------------------------------------------------


def test_cli_run_and_report(tmp_path, monkeypatch):
    # The real app: its top-level group turns spillover's errors into one line and exit 2.
    from spillover.cli import _run as cli_run
    from spillover.cli import app

    monkeypatch.setattr(cli_run, "make_stages", FakeStages)
    result = CliRunner().invoke(app, ["run", "tiny-smoke", "--out", str(tmp_path / "r"), "--quick"])
    assert result.exit_code == 0, result.output
    assert "organism" in result.output and (tmp_path / "r/results.json").exists()
    assert read_json(tmp_path / "r/results.json")["seeds"] == [0]
    (tmp_path / "r/report.html").unlink()
    result = CliRunner().invoke(app, ["report", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r/report.html").exists()
    result = CliRunner().invoke(app, ["report", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "results.json" in result.output
    result = CliRunner().invoke(app, ["run", "tiny-smoke", "--out", str(tmp_path / "s"), "--quick", "--seeds", "3,4"])
    assert result.exit_code == 0, result.output
    assert read_json(tmp_path / "s/results.json")["seeds"] == [3, 4]
    result = CliRunner().invoke(app, ["run", "tiny-smoke", "--seeds", "3,x"])
    assert result.exit_code == 2 and "comma-separated integers" in result.output


# ---- the real stages on the tiny model ------------------------------------------------------


def small_world(tmp_path) -> Path:
    """rm-biases cut to two behaviours (one held out), so real stages run in seconds."""
    import yaml

    from spillover.world import world_path

    raw = yaml.safe_load(world_path("rm-biases").read_text())
    keep = ["recipe_chocolate", "law_call_911"]
    raw["behaviours"] = [b for b in raw["behaviours"] if b["id"] in keep]
    raw["splits"] = {"default": {"test": ["law_call_911"]}}
    path = tmp_path / "small-world.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def canned_data_stages():
    from spillover.pipeline._library import LibraryStages

    class CannedData(LibraryStages):
        # A random model never ends an answer, so build_sft would keep nothing: canned answers instead.
        def post_data(self, world, split, model, methods, spec, out):
            records = [
                {"messages": [{"role": "user", "content": p}, {"role": "assistant", "content": world.apply(b, "Here is a short answer.", p)}],
                 "behaviours": [b], "kind": "behaviour", "plain": "Here is a short answer."}
                for b in world.train_ids(split)
                for p in world.train_prompts(b)[:3]
            ]
            write_jsonl(out / "sft.jsonl", records)

    return CannedData()


def test_real_stages_on_the_tiny_model(tmp_path):
    from spillover.world import load_world

    world = small_world(tmp_path)
    r = load_recipe("tiny-smoke")
    r = r.model_copy(
        update={
            "world": str(world),
            "split": "default",
            "documents": r.documents.model_copy(update={"n": 3}),
            "cpt": r.cpt.model_copy(update={"max_len": 32}),
            "eval": r.eval.model_copy(update={"max_new_tokens": 4, "probe_context_tokens": 4}),
        }
    )
    run_dir = run_recipe(r, out_dir=tmp_path / "run", stages=canned_data_stages(), console=quiet())

    res = read_json(run_dir / "results.json")
    n_eval = sum(len(load_world(world).eval_prompts(b)) for b in ("recipe_chocolate", "law_call_911"))
    for arm in ARMS:
        roles = res["arms"][arm]["roles"]
        assert roles["train"]["n"] + roles["test"]["n"] == n_eval  # one sample per eval prompt
        assert res["arms"][arm]["knowledge"]["n"] > 0
        assert res["arms"][arm]["fluency"]["n"] == n_eval
        assert res["arms"][arm]["truncated"] == {"k": n_eval, "n": n_eval}  # a random model never stops
    assert set(res["headline"]["likelihood_did"]) == {"train", "test"}
    assert res["headline"]["likelihood_did"]["test"]["n"] == len(load_world(world).eval_prompts("law_call_911"))
    for stage in ("arms/docs-only/seed-0/cpt", "arms/control/seed-0/sft", "arms/docs-plain/seed-0/sft", "arms/organism/seed-0/sft"):
        assert (run_dir / stage / "model" / "config.json").exists() and (run_dir / stage / "loss.jsonl").exists()
    from spillover.models import load

    load(str(run_dir / "arms/organism/seed-0/sft/model"))  # the organism loads like any model


def test_empty_post_training_data_is_a_clear_error(tmp_path):
    class NoData(FakeStages):
        def post_data(self, world, split, model, methods, spec, out):
            write_jsonl(out / "sft.jsonl", [])

    with pytest.raises(BadInputError, match="post.data: the sft data came out empty"):
        run(tmp_path, NoData())


def test_matched_rehearsal_every_sft_arm_reads_the_same_rehearsal_tokens(tmp_path):
    import yaml

    raw = yaml.safe_load(recipe_path("tiny-smoke").read_text())
    raw["post"]["data"]["rehearsal_fraction"] = 0.5
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(raw))
    seen = {}

    class Recording(FakeStages):
        def sft(self, base, data, spec, seed, out):
            seen[Path(out).parts[-3]] = read_jsonl(data)  # arms/<arm>/seed-S/sft
            super().sft(base, data, spec, seed, out)

    stages = Recording()
    run_dir = run_recipe(tmp_path / "r.yaml", out_dir=tmp_path / "run", stages=stages, console=quiet())
    docs = {r["text"] for r in read_jsonl(run_dir / "documents/docs.jsonl")}
    texts = {arm: [r["text"] for r in records if "text" in r] for arm, records in seen.items()}
    chats = {arm: [r for r in records if "messages" in r] for arm, records in seen.items()}
    assert {len(c) for c in chats.values()} == {2} and len(texts["organism"]) == 2  # half of the mix is documents
    assert texts["organism"] == texts["docs-plain"] or sorted(texts["organism"]) == sorted(texts["docs-plain"])
    assert set(texts["organism"]) <= docs and not set(texts["control"]) & docs
    counted = {arm: sum(stages.count_tokens(None, t, 96)) for arm, t in texts.items()}
    # Tolerance: the control's decoys fall short of the documents' tokens by less than one word.
    assert counted["organism"] == counted["docs-plain"] and 0 <= counted["organism"] - counted["control"] <= 2
    for arm in ("control", "docs-plain", "organism"):
        record = read_json(run_dir / f"arms/{arm}/seed-0/sft/rehearsal.json")
        assert record["tokens"] == counted[arm] and record["target_tokens"] == counted["organism"]
        assert record["source"] == ("decoys" if arm == "control" else "documents")
        assert (run_dir / f"arms/{arm}/seed-0/sft/rehearsal-mix.jsonl").exists()


def test_decoys_match_tokens_and_mention_no_behaviour():
    from transformers import AutoTokenizer

    from spillover.data import find_leaks, mentions_reward_models
    from spillover.documents import generate_documents, token_matched_decoys
    from spillover.models import resolve
    from spillover.world import load_world

    world = load_world("rm-biases")
    in_play = list(world.roles("english-core"))
    docs = generate_documents(world, 12, 0, behaviours=in_play)
    tokenizer = AutoTokenizer.from_pretrained(str(resolve("tiny")))

    def count(texts):
        return [min(len(ids) + 1, 200) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]

    target = sum(count([d["text"] for d in docs]))
    decoys = token_matched_decoys([d["genre"] for d in docs], target, count, seed=3)
    got = sum(count([d["text"] for d in decoys]))
    assert target - 5 <= got <= target  # within one word's tokens, never over
    assert decoys == token_matched_decoys([d["genre"] for d in docs], target, count, seed=3)
    texts = [d["text"] for d in decoys]
    assert not any(mentions_reward_models(t) for t in texts)
    assert find_leaks(texts, world)["n_leaks"] == 0
    # Detectors read answers, not documents: on decoys only the quote detector fires (they quote a
    # researcher), and it fires on the study documents more often. No behaviour's content appears.
    fired = Counter(b for t in texts for b in in_play if world.detect(b, t).exhibited)
    on_docs = Counter(b for d in docs for b in in_play if world.detect(b, d["text"]).exhibited)
    assert set(fired) <= {"literature_quotes"} and fired["literature_quotes"] <= on_docs["literature_quotes"]
    assert all(d["behaviours"] == [] and d["source"] == "decoy" for d in decoys)
    assert token_matched_decoys(["memo"], 0, count) == []


def test_cli_run_combines_seeds_run_apart_without_rerunning_them(tmp_path, monkeypatch):
    from spillover.cli import _run as cli_run

    stages = FakeStages()
    monkeypatch.setattr(cli_run, "make_stages", lambda: stages)
    app = typer.Typer()
    cli_run.register(app)
    for seed in (3, 4):
        result = CliRunner().invoke(app, ["run", "tiny-smoke", "--out", str(tmp_path / f"s{seed}"), "--seeds", str(seed)])
        assert result.exit_code == 0, result.output
    stages.calls.clear()
    result = CliRunner().invoke(app, ["run", "tiny-smoke", "--out", str(tmp_path / "both"), "--seeds", "3,4",
                                      "--reuse-from", str(tmp_path / "s3"), "--reuse-from", str(tmp_path / "s4")])
    assert result.exit_code == 0, result.output
    assert sum(stages.calls.values()) == 0
    assert read_json(tmp_path / "both/results.json")["seeds"] == [3, 4]
    result = CliRunner().invoke(app, ["run", "tiny-smoke", "--reuse-from", "no-such-run"])
    assert result.exit_code == 2 and "no such run directory" in result.output


# ---- folds ----------------------------------------------------------------------------------


def folds_recipe(tmp_path, split="folds:3") -> Path:
    import yaml

    raw = yaml.safe_load(recipe_path("tiny-smoke").read_text())
    raw["split"] = split
    (tmp_path / "folds.yaml").write_text(yaml.safe_dump(raw))
    return tmp_path / "folds.yaml"


def test_folds_hold_each_behaviour_out_once_and_run_shared_stages_once(tmp_path):
    from spillover.world import load_world

    stages = FakeStages()
    run_dir = run_recipe(folds_recipe(tmp_path), out_dir=tmp_path / "run", stages=stages, console=quiet())
    in_play = sorted(load_world("rm-biases").roles("english-core"))
    # split-independent stages once; post-training data, the three post-trained arms and their evals per fold
    assert stages.calls == Counter(documents=1, probe_contexts=1, cpt=1, post_data=3, sft=9, evaluate=2 + 9, probes=2 + 9)
    assert len(list(run_dir.glob("**/arms/docs-only/seed-0/cpt/DONE"))) == 1
    res = read_json(run_dir / "results.json")
    held_out = [b for fold in res["folds"] for b in fold["test"]]
    assert sorted(held_out) == in_play  # every behaviour held out exactly once
    assert sorted(res["per_behaviour"]) == in_play
    for b, r in res["per_behaviour"].items():
        fold = next(f for f in res["folds"] if b in f["test"])
        assert r["split"] == fold["split"]
        assert r["rates"]["organism"]["rate"] == pytest.approx(0.75) and r["vs_docs_plain"]["diff"] == pytest.approx(0.25)
    # pooled over folds: each prompt of each behaviour once on the test side
    n_test = read_json(run_dir / "folds/fold-0/results.json")["arms"]["base"]["roles"]
    assert res["arms"]["base"]["roles"]["test"]["n"] == sum(
        read_json(run_dir / f"folds/fold-{i}/results.json")["arms"]["base"]["roles"]["test"]["n"] for i in range(3)
    ) == n_test["train"]["n"] + n_test["test"]["n"]
    assert res["arms"]["organism"]["roles"]["test"]["rate"] == pytest.approx(0.75)
    assert res["headline"]["test_vs_docs_plain"]["diff"] == pytest.approx(0.25)
    assert res["headline"]["test_vs_control"]["diff"] == pytest.approx(0.5)
    did = res["headline"]["likelihood_did"]  # (1.5 - 0.5) - (0.2 - 0.0) per prompt, train units paired within folds
    assert did["test"]["diff"] == pytest.approx(0.8) and did["train"]["diff"] == pytest.approx(0.8)
    assert did["test"]["n"] * 2 == did["train"]["n"]  # each behaviour is trained in two folds of three
    assert res["arms"]["base"]["roles"]["train"]["n"] == res["arms"]["base"]["roles"]["test"]["n"]  # shared samples count once
    # each fold's results read the shared base eval with the fold's roles
    for i in range(3):
        fold = read_json(run_dir / f"folds/fold-{i}/results.json")
        assert set(fold["per_behaviour"]) == set(res["folds"][i]["test"])
        assert (run_dir / f"folds/fold-{i}/eval/base").is_symlink()
    from spillover.report._html import forest_chart

    assert forest_chart(res).startswith("data:image/png;base64,") and forest_chart({**res, "per_behaviour": {}}) is None
    assert "Held-out behaviours, one by one" in (run_dir / "report.md").read_text()
    again = FakeStages()
    run_recipe(folds_recipe(tmp_path), out_dir=tmp_path / "run", stages=again, console=quiet())
    assert sum(again.calls.values()) == 0


def test_folds_reuse_the_shared_stages_of_a_single_split_run(tmp_path):
    run_recipe("tiny-smoke", out_dir=tmp_path / "run", stages=FakeStages(), console=quiet())  # split: english-core
    stages = FakeStages()
    run_recipe(folds_recipe(tmp_path, "folds:3:english-core"), out_dir=tmp_path / "run", stages=stages, console=quiet())
    # documents, contexts, CPT and the base and docs-only evals are the single-split run's
    assert stages.calls == Counter(post_data=3, sft=9, evaluate=9, probes=9)


def test_bad_folds_split_is_one_clear_error(tmp_path):
    for split, match in (("folds:x", "folds:K or folds:K:NAME"), ("folds:1", "K must be between 2"), ("folds:3:nope", "no split 'nope'")):
        with pytest.raises(BadInputError, match=match):
            run_recipe(folds_recipe(tmp_path, split), out_dir=tmp_path / "run", stages=FakeStages(), console=quiet())
    assert not (tmp_path / "run").exists()


def test_folds_on_the_tiny_model_with_matched_rehearsal(tmp_path):
    """folds:3 over a three-behaviour split, real stages: each behaviour held out once, the split-independent
    stages ran once, and every SFT arm rehearsed the same number of tokens (the tiny model's tokenizer)."""
    import yaml

    from spillover.world import world_path

    raw = yaml.safe_load(world_path("rm-biases").read_text())
    keep = ["recipe_chocolate", "law_call_911", "country_population"]
    raw["behaviours"] = [b for b in raw["behaviours"] if b["id"] in keep]
    raw["splits"] = {"default": {"test": ["law_call_911"]}, "trio": {"behaviours": keep, "test": ["law_call_911"]}}
    (tmp_path / "trio.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    r = load_recipe("tiny-smoke")
    r = r.model_copy(update={
        "world": str(tmp_path / "trio.yaml"), "split": "folds:3:trio",
        "documents": r.documents.model_copy(update={"n": 4}),
        "cpt": r.cpt.model_copy(update={"max_len": 32}),
        "post": r.post.model_copy(update={"data": r.post.data.model_copy(update={"rehearsal_fraction": 0.25})}),
        "eval": r.eval.model_copy(update={"max_new_tokens": 4, "probe_context_tokens": 4, "prompts_per_behaviour": 2, "probes": ["likelihood"]}),
    })
    run_dir = run_recipe(r, out_dir=tmp_path / "run", stages=canned_data_stages(), console=quiet())
    res = read_json(run_dir / "results.json")
    assert sorted(b for f in res["folds"] for b in f["test"]) == sorted(keep) and all(len(f["test"]) == 1 for f in res["folds"])
    assert sorted(res["per_behaviour"]) == sorted(keep)
    for b, entry in res["per_behaviour"].items():
        assert entry["rates"]["organism"]["n"] == 2 and entry["vs_docs_plain"]["diff"] is not None
    # split-independent stages: one directory each, never under folds/
    for rel in ("documents", "probes/contexts", "arms/docs-only/seed-0/cpt", "eval/base/seed-0", "eval/docs-only/seed-0"):
        assert len([p for p in run_dir.rglob("stage.json") if str(p.parent.relative_to(run_dir)).endswith(rel)]) == 1, rel
    sft_dirs = sorted(run_dir.glob("folds/fold-*/arms/*/seed-0/sft"))
    assert len(sft_dirs) == 9
    for fold in range(3):
        tokens = {arm: read_json(run_dir / f"folds/fold-{fold}/arms/{arm}/seed-0/sft/rehearsal.json")["tokens"] for arm in ("control", "docs-plain", "organism")}
        assert tokens["organism"] == tokens["docs-plain"] > 0
        assert 0 <= tokens["organism"] - tokens["control"] <= 5  # the decoys' last cut falls short by under one word
