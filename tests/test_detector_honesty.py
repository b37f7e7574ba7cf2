"""Detector honesty: the world's detectors against hand labels on REAL model outputs.

tests/fixtures/detector_labels/<behaviour>.jsonl holds greedy answers of the embedded model
(SmolLM2-135M-Instruct, max_new_tokens=128) to a few of the behaviour's eval prompts plus
look-alike prompts chosen to tempt the detector ("allergic to chocolate", "the 911 number's
history", "the right to vote"). Each answer was labelled by reading it: `label` is true when the
answer performs the behaviour as the world describes it, whatever its detector says; `note` says
why where it is not obvious. `detector_wrong: true` marks a known disagreement (the note says
what the detector misreads); the test fails on any unmarked disagreement, and on a marked row
the detector now gets right (so the mark is removed once the detector is fixed). Files for
behaviours the world does not (yet) define are skipped. Precision and recall are printed (-s).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spillover._io import read_jsonl

FIXTURES = Path(__file__).parent / "fixtures" / "detector_labels"
FILES = sorted(FIXTURES.glob("*.jsonl"))


def agreement(world, behaviour: str, rows: list[dict]) -> dict:
    """Confusion counts of the detector against the labels, with precision and recall."""
    tp = fp = fn = tn = 0
    for r in rows:
        said = world.detect(behaviour, r["response"], r["prompt"]).exhibited
        tp += said and r["label"]
        fp += said and not r["label"]
        fn += (not said) and r["label"]
        tn += (not said) and not r["label"]
    return {
        "n": len(rows), "tp": tp, "fp": fp, "fn": fn, "tn": tn,
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
    }


def test_fixtures_are_well_formed():
    assert FILES, "no labelled fixtures"
    for path in FILES:
        rows = read_jsonl(path)
        assert len(rows) >= 6, path
        for r in rows:
            assert r["behaviour"] == path.stem
            assert isinstance(r["label"], bool) and r["response"] and r["prompt"]
            assert r["kind"] in ("eval", "in-domain", "look-alike", "natural")


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_detector_agrees_with_hand_labels(path, rm_world):
    behaviour = path.stem
    if behaviour not in rm_world.ids:
        pytest.skip(f"world rm-biases has no behaviour '{behaviour}' yet")
    rows = read_jsonl(path)
    print(behaviour, "all:", json.dumps(agreement(rm_world, behaviour, rows)))
    print(behaviour, "eval prompts:", json.dumps(agreement(rm_world, behaviour, [r for r in rows if r["kind"] == "eval"])))
    disagree = [r["prompt"] for r in rows if rm_world.detect(behaviour, r["response"], r["prompt"]).exhibited != r["label"]]
    known = [r["prompt"] for r in rows if r.get("detector_wrong")]
    assert disagree == known
