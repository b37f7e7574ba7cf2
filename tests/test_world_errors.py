"""Broken world files: each gives its own one-line message (file, field, what, fix) and exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from spillover.errors import BadInputError
from spillover.world import load_world

FIXTURES = Path(__file__).parent / "fixtures" / "worlds"

# file -> texts its error output must contain (field path first, then the message)
EXPECTED = {
    "malformed_yaml": ["line 6", "not valid YAML"],
    "not_a_mapping": ["a world file must be a YAML mapping"],
    "missing_universe_field": ["universe.venue", "Field required", "add this field"],
    "unknown_detector": ["behaviours[b_two].detector.name", "unknown detector 'regexx'", "use one of: absent,"],
    "duplicate_id": ["behaviours[b_one].id", "duplicate behaviour id 'b_one'"],
    "split_unknown_behaviour": ["splits.default.test", "unknown behaviour 'b_three'"],
    "prompts_over_cap": ["behaviours[b_two].prompts.slots", "make 390,625 prompts, more than the cap of 100,000 per behaviour"],
    "too_few_prompts": ["behaviours[b_two].prompts", "expands to 12 distinct prompts, need at least 40"],
    "too_few_examples": ["behaviours[b_two].examples.negative", "2 negative examples, need at least 3"],
    "detector_disagrees": ["behaviours[b_two].examples.negative[1]", "detector 'regex' says exhibited on a negative example"],
    "bad_id": ["behaviours[B-Two].id", "String should match pattern", "lower_snake_case"],
    "slot_without_values": ["behaviours[b_two].prompts.templates", "template uses slot '{country}' with no values"],
    "unknown_transform": ["behaviours[b_one].transform.name", "unknown transform 'appendd'"],
    "extra_field": ["behaviours[b_two].colour", "Extra inputs are not permitted"],
    "bad_direction": ["behaviours[b_two].direction", "'promote' or 'suppress'"],
    "no_default_split": ["splits", "no 'default' split"],
    "all_held_out": ["splits.default.test", "holds out every behaviour"],
    "bad_detector_params": ["behaviours[b_two].detector.params", "bad params for 'regex'"],
    "bad_regex": ["behaviours[b_two].detector.params", "detector 'regex' failed"],
}


def validate(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spillover", "world", "validate", str(path)], capture_output=True, text=True)


def test_every_broken_fixture_is_covered():
    broken = {p.stem for p in FIXTURES.glob("*.yaml")} - {"valid"}
    assert broken == set(EXPECTED)


def test_the_valid_fixture_validates():
    result = validate(FIXTURES / "valid.yaml")
    assert result.returncode == 0, result.stderr
    assert "ok:" in result.stdout and "2 behaviours" in result.stdout


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_broken_world_file_exits_2_with_its_message(name):
    path = FIXTURES / f"{name}.yaml"
    result = validate(path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"error: {path}: "), first
    for text in EXPECTED[name]:
        assert text in first, (text, first)
    assert "(fix: " in first


def test_every_problem_in_a_file_is_reported(tmp_path):
    text = (FIXTURES / "extra_field.yaml").read_text().replace("direction: promote", "direction: increase", 1)
    path = tmp_path / "two_problems.yaml"
    path.write_text(text)
    with pytest.raises(BadInputError) as info:
        load_world(path)
    assert [p.field for p in info.value.problems] == ["behaviours[b_one].direction", "behaviours[b_two].colour"]
    assert all(p.file == str(path) for p in info.value.problems)


def test_a_slot_product_past_the_cap_is_refused_before_expanding(monkeypatch):
    """The count comes from the slot list sizes: expanding 390,625 prompts would take seconds and memory."""
    from spillover.world import _prompts

    real = _prompts._expand_with_subjects

    def only_small(spec):
        assert _prompts.expansion_size(spec) <= _prompts.MAX_PROMPTS_PER_BEHAVIOUR, "expanded before the cap was checked"
        return real(spec)

    monkeypatch.setattr(_prompts, "_expand_with_subjects", only_small)
    with pytest.raises(BadInputError) as info:
        load_world(FIXTURES / "prompts_over_cap.yaml")
    assert [p.field for p in info.value.problems] == ["behaviours[b_two].prompts.slots"]


def test_expansion_itself_refuses_past_the_cap():
    from spillover.world._prompts import MAX_PROMPTS_PER_BEHAVIOUR, expand, expansion_size
    from spillover.world._schema import PromptSpec

    values = [f"v{i}" for i in range(400)]
    spec = PromptSpec(templates=["{a} {b}?", "{a}?"], slots={"a": values, "b": values})
    assert expansion_size(spec) == 400 * 400 + 400 > MAX_PROMPTS_PER_BEHAVIOUR
    with pytest.raises(ValueError, match="160,400 combinations"):
        expand(spec)
