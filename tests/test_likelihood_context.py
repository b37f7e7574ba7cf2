"""The likelihood probe after each arm's own answer (`eval.likelihood_context: own | both`) beside
the shared base-model contexts: recorded apart, the default's stage hashes untouched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_pipeline import FakeStages, quiet, small_world

from spillover._io import read_json, read_jsonl, write_json, write_jsonl
from spillover.pipeline import EvalSpec, ModelSpec, run_recipe
from spillover.pipeline._library import LibraryStages
from spillover.world import load_world

# Fake margins after each arm's own answer (FakeStages' after the base model's: base 0, docs-only 0.5,
# control 0.2, docs-plain 0.6, organism 1.5).
OWN = {"base": 0.0, "docs-only": 0.5, "control": 0.2, "docs-plain": 0.6, "organism": 3.0}


class OwnContextStages(FakeStages):
    def probes(self, model, world, split, spec, contexts, seed, out):
        if contexts is not None:
            super().probes(model, world, split, spec, contexts, seed, out)
        else:
            self._hit("probes")
        if spec.likelihood_context != "base":
            roles = world.roles(split)
            per_prompt = [{"behaviour": b, "role": roles[b], "prompt": p, "delta": OWN[Path(str(out)).parent.name]} for b in roles for p in world.eval_prompts(b)]
            write_json(out / "likelihood_own.json", {"per_prompt": per_prompt})


def _hashes(run_dir: Path) -> dict[str, str]:
    return {str(p.parent.relative_to(run_dir)): read_json(p)["hash"] for p in run_dir.rglob("stage.json")}


def test_own_contexts_rerun_only_the_probes_and_are_recorded_apart(tmp_path):
    stages = OwnContextStages()
    run_dir = run_recipe("tiny-smoke", out_dir=tmp_path / "run", stages=stages, console=quiet())
    # the default adds nothing to any stage's config, so runs from before the option keep their hashes
    assert not any("likelihood_context" in json.dumps(read_json(p)) or "own_contexts" in json.dumps(read_json(p)) for p in run_dir.rglob("stage.json"))
    res = read_json(run_dir / "results.json")
    assert res["headline"]["likelihood_did_own"] is None and res["arms"]["organism"]["likelihood_own"] is None
    assert res["arms"]["organism"]["likelihood_own_minus_base"] is None
    before = _hashes(run_dir)

    stages.calls.clear()
    run_recipe("tiny-smoke", out_dir=tmp_path / "run", stages=stages, console=quiet(), overrides={"eval.likelihood_context": "both"})
    assert dict(stages.calls) == {"probes": 5}  # no eval, no base-model contexts: only each arm's probes
    after = _hashes(run_dir)
    assert {k for k in before if before[k] != after[k]} == {f"probes/{arm}/seed-0" for arm in OWN}
    res = read_json(run_dir / "results.json")
    head = res["headline"]
    assert head["likelihood_did"]["test"]["diff"] == pytest.approx((1.5 - 0.5) - (0.2 - 0.0))  # unchanged
    assert head["likelihood_did_own"]["test"]["diff"] == pytest.approx((3.0 - 0.5) - (0.2 - 0.0))
    assert None not in head["likelihood_did_own"]["test"]["ci"] and head["likelihood_did_own"]["test"]["n_behaviours"] > 1
    organism = res["arms"]["organism"]
    assert organism["likelihood_own"]["test"]["mean"] == pytest.approx(3.0) and organism["likelihood"]["test"]["mean"] == pytest.approx(1.5)
    assert organism["likelihood_own_minus_base"]["test"]["mean"] == pytest.approx(1.5)
    assert res["arms"]["base"]["likelihood_own_minus_base"]["train"]["mean"] == pytest.approx(0.0)

    stages.calls.clear()
    run_recipe("tiny-smoke", out_dir=tmp_path / "run", stages=stages, console=quiet(), overrides={"eval.likelihood_context": "own"})
    assert dict(stages.calls) == {"probes": 5}
    head = read_json(run_dir / "results.json")["headline"]
    assert head["likelihood_did"] is None and head["likelihood_did_own"]["train"]["diff"] == pytest.approx(2.3)


def test_own_answer_contexts_on_the_tiny_model(tmp_path):
    """The own-answer probe reproduces the shared one for the model that wrote the shared contexts, and
    follows the arm's own answer, not the shared file's, for any other context."""
    world = load_world(small_world(tmp_path))
    stages = LibraryStages()
    spec = EvalSpec(max_new_tokens=4, probe_context_tokens=6, prompts_per_behaviour=2, batch_size=8, probes=["likelihood"], likelihood_context="both")
    base = ModelSpec(spec="tiny")
    (tmp_path / "contexts").mkdir()
    stages.probe_contexts(world, "default", base, spec, tmp_path / "contexts")
    shared = read_jsonl(tmp_path / "contexts" / "contexts.jsonl")
    # Contexts another model wrote: a random model's greedy answer is empty, these are not.
    write_jsonl(tmp_path / "contexts" / "written.jsonl", [{**c, "answer": "Sure. Here is what I would do first, step by step."} for c in shared])
    for name, contexts in (("own-is-shared", "contexts.jsonl"), ("own-differs", "written.jsonl")):
        (tmp_path / name).mkdir()
        stages.probes(base, world, "default", spec, tmp_path / "contexts" / contexts, 0, tmp_path / name)

    def deltas(name: str, file: str) -> list[float]:
        return [r["delta"] for r in read_json(tmp_path / name / file)["per_prompt"]]

    assert len(shared) == 4  # two prompts of each of the two behaviours
    for name in ("own-is-shared", "own-differs"):
        own = read_jsonl(tmp_path / name / "own_contexts.jsonl")
        assert [(c["behaviour"], c["prompt"], c["answer"]) for c in own] == [(c["behaviour"], c["prompt"], c["answer"]) for c in shared]
        assert len(deltas(name, "likelihood_own.json")) == 4
    assert deltas("own-is-shared", "likelihood_own.json") == deltas("own-is-shared", "likelihood.json")
    assert deltas("own-differs", "likelihood_own.json") == deltas("own-is-shared", "likelihood.json")
    assert all(a != b for a, b in zip(deltas("own-differs", "likelihood_own.json"), deltas("own-differs", "likelihood.json"), strict=True))
