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
