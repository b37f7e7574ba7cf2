"""`audit:` in a recipe: `spillover run` audits the organism after eval (a cached stage), writes
audit/audit.json with the training-data search, and the report shows it. The audit and the
documents are real, on the tiny random model; the other stages are the pipeline tests' fakes (the
trained models are the tiny model itself), so the run takes the audit's time only."""

from __future__ import annotations

import json
import os

import pytest
import yaml
from test_pipeline import FakeStages, quiet, small_world, stage_mtimes

from spillover._io import read_json, write_json, write_jsonl
from spillover.errors import BadInputError
from spillover.models import resolve
from spillover.pipeline import load_recipe, recipe_path, run_recipe
from spillover.pipeline._library import LibraryStages


class TinyModels(FakeStages):
    """The fake stages, but every trained model is the tiny model linked in, and the documents and the audit are real."""

    documents = LibraryStages.documents
    audit = LibraryStages.audit

    def _train(self, name, base, out):
        self._hit(name)
        os.symlink(resolve("tiny"), out / "model")
        write_jsonl(out / "loss.jsonl", [{"step": 0, "loss": 3.0}])


class FakeAudit(FakeStages):
    def audit(self, run_dir, config, out):
        self._hit("audit")
        write_json(out / "audit.json", {"layer": 0, "features": [{"index": i} for i in range(config.n_features)]})

AUDIT = {
    "n_docs": 6, "max_tokens": 32, "n_transcripts": 4, "n_prompts": 4, "n_features": 3, "examples_per_feature": 2,
    "arms": ["base"], "strengths": [0.0, 0.5], "steer_feature": False, "samples": 1, "max_new_tokens": 4, "train_behaviours": 0, "n_attribution": 1,
    "sae": {"expansion": 2, "k": 4, "steps": 30},
}


def few_prompts_world(tmp_path) -> str:
    """The pipeline tests' two-behaviour world with a tenth of each behaviour's prompts held out for
    eval (not a quarter), so each of the audit's conditions samples a few answers."""
    path = small_world(tmp_path)
    raw = yaml.safe_load(path.read_text())
    for b in raw["behaviours"]:
        b["prompts"]["eval_fraction"] = 0.1
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return str(path)


def audited_recipe(tmp_path, **audit) -> str:
    """tiny-smoke on a two-behaviour world, with an `audit:` block."""
    raw = yaml.safe_load(recipe_path("tiny-smoke").read_text())
    raw.update(world=few_prompts_world(tmp_path), split="default", audit={**AUDIT, **audit})
    raw["documents"]["n"] = 6
    path = tmp_path / "audited.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


@pytest.fixture(scope="module")
def audited_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("audited")
    return run_recipe(audited_recipe(tmp), out_dir=tmp / "run", stages=TinyModels(), console=quiet())


def test_run_writes_audit_json_with_the_data_search(audited_run):
    run_dir = audited_run
    audit = read_json(run_dir / "audit" / "audit.json")
    assert {"layer", "probe_accuracy", "sae", "features", "steering", "ablation", "attribution"} <= set(audit)
    assert read_json(run_dir / "audit" / "stage.json")["config"]["audit"]["n_docs"] == 6 and (run_dir / "audit" / "DONE").exists()
    search = audit["data_search"]
    assert search["layer"] == audit["layer"] and search["layer_from"] == "audit"
    assert search["n_texts"]["documents"] == 6 and search["n_texts"]["sft"] > 0
    law = [b for b in search["behaviours"] if b["behaviour"] == "law_call_911"]  # the small world's one test behaviour
    assert [b["query"]["kind"] for b in law] == ["description", "answer"] and len(search["behaviours"]) == 2
    docs = [json.loads(line) for line in (run_dir / "documents" / "docs.jsonl").read_text().splitlines()]
    relevant = sum("law_call_911" in d["behaviours"] for d in docs)  # no SFT record exhibits a held-out behaviour
    for b in law:
        assert (b["chance"]["k"], b["chance"]["n"]) == (relevant, search["n_texts"]["documents"] + search["n_texts"]["sft"])
        for r in b["rankings"]:
            p = r["precision_at_k"]
            assert set(p) == {"k", "n", "rate", "ci"} and p["n"] == min(10, b["chance"]["n"])
            assert p["k"] == sum(h["relevant"] for h in r["hits"]) and all(h["relevant"] == ("law_call_911" in h["behaviours"]) for h in r["hits"])
            assert r["first_relevant_rank"] is not None  # some document describes it, so it ranks somewhere
    assert {(p["query"], p["method"]) for p in search["pooled"]} == {(q, m) for q in ("description", "answer") for m in ("lexical", "activation")}


def test_report_shows_the_audit_section(audited_run):
    run_dir = audited_run
    md = (run_dir / "report.md").read_text()
    assert "## Audit of the organism" in md and "training-data search" in md and "precision@10" in md
    for table in ("**features**", "**steering**", "**ablation**", "**probe accuracy**"):
        assert table in md
    html = (run_dir / "report.html").read_text()
    assert 'id="audit"' in html and 'id="table-audit-data-search"' in html and 'id="table-audit-steering"' in html
    assert "law_call_911" in html.split('id="audit"')[1]


def test_a_second_run_keeps_the_audit_and_a_new_audit_config_or_organism_reruns_it(tmp_path):
    stages = FakeAudit()
    run_dir = run_recipe(audited_recipe(tmp_path), out_dir=tmp_path / "run", stages=stages, console=quiet())
    before = stage_mtimes(run_dir)
    run_recipe(audited_recipe(tmp_path), out_dir=run_dir, stages=stages, console=quiet())
    assert stage_mtimes(run_dir) == before and stages.calls["audit"] == 1
    run_recipe(audited_recipe(tmp_path, n_features=2), out_dir=run_dir, stages=stages, console=quiet())
    after = stage_mtimes(run_dir)
    assert [s for s in after if after[s] != before[s]] == ["audit/DONE"]
    assert len(read_json(run_dir / "audit" / "audit.json")["features"]) == 2
    raw = yaml.safe_load((tmp_path / "audited.yaml").read_text())
    raw["post"]["sft"]["lr"] = 2e-3  # a new organism (and control): audited again
    (tmp_path / "audited.yaml").write_text(yaml.safe_dump(raw))
    run_recipe(tmp_path / "audited.yaml", out_dir=run_dir, stages=stages, console=quiet())
    assert stages.calls["audit"] == 3


def test_audit_field_errors_name_the_field(tmp_path):
    raw = yaml.safe_load(recipe_path("tiny-smoke").read_text())
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**raw, "audit": {"n_docs": 1, "nope": 2}}))
    with pytest.raises(BadInputError) as e:
        load_recipe(path)
    assert str(e.value).splitlines() == [
        f"{path}: audit.n_docs: Input should be greater than or equal to 2 (fix: use a number in range, see docs/recipes.md)",
        f"{path}: audit.nope: Extra inputs are not permitted (fix: remove it or check its spelling (see docs/recipes.md))",
    ]
    assert load_recipe("tiny-smoke").audit is None


def _recipe_with_audit(tmp_path, audit, **more) -> str:
    raw = yaml.safe_load(recipe_path("tiny-smoke").read_text())
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({**raw, "audit": audit, **more}))
    return path


def test_audit_takes_a_preset_by_name_or_with_fields_over_it(tmp_path):
    from spillover.interp import AuditConfig

    bare = load_recipe(_recipe_with_audit(tmp_path, "laptop")).audit
    assert bare == AuditConfig.laptop() and bare.arms == ["base"] and bare.sae.steps == 600
    given = load_recipe(_recipe_with_audit(tmp_path, {"preset": "laptop", "seed": 0, "n_docs": 5, "arms": ["base", "control"]})).audit
    assert (given.n_docs, given.arms, given.max_new_tokens, given.temperature) == (5, ["base", "control"], 96, 0.0)
    assert load_recipe(_recipe_with_audit(tmp_path, {"n_docs": 7})).audit == AuditConfig(n_docs=7)  # today's mapping


def test_a_quick_block_or_a_set_naming_a_preset_replaces_the_audit_block(tmp_path):
    from spillover.interp import AuditConfig
    from spillover.pipeline._recipe import apply_settings

    recipe = load_recipe(_recipe_with_audit(tmp_path, "laptop", quick={"audit": {"preset": "quick", "seed": 0}}))
    assert recipe.audit == AuditConfig.laptop() and recipe.quick_version().audit == AuditConfig.quick()
    assert apply_settings(recipe, {"audit.preset": "quick", "audit.n_docs": 9}, "--set").audit == AuditConfig.quick(n_docs=9)
    assert apply_settings(recipe, {"audit.n_docs": 9}, "--set").audit == AuditConfig.laptop(n_docs=9)  # no preset: merged


@pytest.mark.parametrize("audit", ["lapotp", {"preset": "lapotp", "seed": 0}])
def test_an_unknown_audit_preset_is_one_line_naming_the_file_and_field(tmp_path, monkeypatch, capsys, audit):
    from spillover.cli import main

    path = _recipe_with_audit(tmp_path, audit)
    monkeypatch.setattr("sys.argv", ["spillover", "run", str(path), "--out", str(tmp_path / "run")])
    with pytest.raises(SystemExit) as e:
        main()
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert e.value.code == 2 and not (tmp_path / "run").exists()
    assert lines == [f"error: {path}: audit.preset: Input should be 'default', 'quick' or 'laptop' (fix: use one of the allowed values)"]


@pytest.mark.parametrize(("change", "expect"), [
    ({"split": "folds:2"}, "one organism per fold"),
    ({"seeds": [1]}, "audit.seed: seed 0 is not one the run trains"),
    ({"audit": {"arms": ["base", "contrl"]}}, "audit.arms: no arm contrl"),
])
def test_an_audit_the_run_cannot_do_is_refused_before_anything_is_written(tmp_path, change, expect):
    raw = yaml.safe_load(recipe_path("tiny-smoke").read_text())
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({**raw, "audit": {}} | change))
    with pytest.raises(BadInputError, match=expect):
        run_recipe(path, out_dir=tmp_path / "run", stages=FakeAudit(), console=quiet())
    assert not (tmp_path / "run").exists()


def test_audit_section_renders_fields_it_does_not_know():
    from spillover.evaluation import rate
    from spillover.report._audit import audit_markdown

    audit = {
        "layer": 3, "layer_chosen_by": "probe", "probe_accuracy": {"best": 0.9, "best_layer": 3, "per_layer": [{"layer": 3, "mean_diff": 0.9}]},
        "sae": {"fvu": 0.2, "dead_fraction": 0.1, "saved": "audit/sae.safetensors"},
        "random_controls": [{"target": "random-1", "test_rate": rate(2, 10), "test_change": {"diff": -0.1, "ci": [-0.3, 0.1]}, "per_prompt": [{"x": 1}]}],
    }
    md = "\n".join(audit_markdown(audit))
    assert "layer 3 (chosen by probe); best probe layer 3, held-out accuracy 0.900" in md
    assert "- sae: fvu 0.200 · dead_fraction 0.100 · saved audit/sae.safetensors" in md
    assert "**random controls**" in md and "| target | test_rate | test_change |" in md  # per_prompt (records) left out
    assert "| random-1 | 20.0% (2/10) [5.7%, 51.0%] | -10.0 pts [-30.0, +10.0] |" in md


def test_audit_section_says_where_the_concept_and_each_feature_fire():
    from spillover.evaluation import rate
    from spillover.report._audit import audit_markdown

    firing = {"organism_chat": rate(40, 40), "organism_plain": rate(4, 40), "base_chat": rate(0, 40), "base_plain": rate(3, 40)}
    audit = {"layer": 3, "concept": {"cosine": 0.1, "firing": {**firing, "mean_projection": {"organism_chat": 1.0}}},
             "features": [{"index": 7, "selectivity": 0.2, "firing": {**firing, "organism_chat": rate(5, 40)}}]}
    md = "\n".join(audit_markdown(audit))
    assert "**where it fires" in md and "|  | organism chat | organism plain | base chat | base plain |" in md
    assert "| concept direction | 100.0% (40/40) [91.2%, 100.0%] | 10.0% (4/40)" in md
    assert "| feature 7 | 12.5% (5/40)" in md
