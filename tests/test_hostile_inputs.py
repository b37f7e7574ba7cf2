"""Hostile but fair inputs through the installed `spillover` script (issue 14).

Each case asserts the exit code (2 for every error, 0 for the controls), exactly one stderr line
`error: ...` naming the file or option (a usage error may add typer's usage line above it), no
traceback, and that nothing outside what the command owns was written or deleted. No case loads
a model: each must fail before one would load. Signals, endpoints and file modes are in
test_hostile_signals.py.
"""

from __future__ import annotations

import os

import pytest
from _hostile import Case, case, run_case

WORLDS = [
    case("world-not-utf8", "world", "validate", "latin1.yaml", expect="latin1.yaml: line 4: not UTF-8 text (byte 0xe9)"),
    case("world-control-char", "world", "validate", "control.yaml", expect="control.yaml: not valid YAML"),
    case("world-top-level-list", "world", "validate", "list.yaml", expect="list.yaml: a world file must be a YAML mapping"),
    case("world-empty-file", "world", "validate", "empty.yaml", expect="empty.yaml: a world file must be a YAML mapping"),
    case("world-binary", "world", "validate", "binary.yaml", expect="binary.yaml: line 2: not UTF-8 text (byte 0x80)"),
    case("world-missing-file", "world", "validate", "nope.yaml", expect="nope.yaml: world file not found"),
    case("world-is-directory", "world", "validate", "somedir", expect="somedir: world file not found"),
    case("world-unknown-name", "world", "show", "no-such-world", expect="no-such-world: no such world"),
    case("world-unknown-split", "world", "show", "world.yaml", "--split", "nope", expect="has no split 'nope'"),
    case("world-bad-random-split", "world", "show", "world.yaml", "--split", "random:x:y", expect="random:x:y"),
    case("world-docs-generate-bad-detector", "docs", "generate", "unknown_detector.yaml", "--n", "2", "--out", "d.jsonl",
         expect="unknown detector 'regexx'"),
    case("world-docs-probes-malformed", "docs", "probes", "malformed_yaml.yaml", "--out", "q.jsonl", expect="malformed_yaml.yaml: line 6"),
    case("world-eval-bad-direction", "eval", "--model", "tiny", "--world", "bad_direction.yaml", "--out", "e",
         expect="behaviours[b_two].direction"),
    case("world-data-sft-too-few-prompts", "data", "sft", "too_few_prompts.yaml", "--model", "tiny", "--out", "s.jsonl",
         expect="need at least 40"),
    case("world-data-dpo-unknown-split", "data", "dpo", "world.yaml", "--split", "nope", "--model", "tiny", "--out", "p.jsonl",
         expect="has no split 'nope'"),
    case("world-not-utf8-in-run", "docs", "generate", "latin1.yaml", "--n", "2", "--out", "d.jsonl", expect="not UTF-8"),
]

JSONL = [
    case("jsonl-binary", "docs", "stats", "binary.jsonl", expect="binary.jsonl: line 1: not valid JSON"),
    case("jsonl-latin1", "docs", "stats", "latin1.jsonl", expect="latin1.jsonl: line 1: not UTF-8 text (byte 0xe9)"),
    case("jsonl-top-level-array", "docs", "stats", "array.jsonl", expect="array.jsonl: line 1: a JSON list, not an object"),
    case("jsonl-bare-number", "docs", "stats", "number.jsonl", expect="number.jsonl: line 2: a JSON int, not an object"),
    case("jsonl-broken-line", "docs", "stats", "broken.jsonl", expect="broken.jsonl: line 2: not valid JSON"),
    case("jsonl-no-text", "docs", "stats", "notext.jsonl", expect="notext.jsonl: line 1: record has no 'text' string"),
    case("jsonl-missing", "docs", "stats", "nope.jsonl", expect="nope.jsonl: no such file"),
    case("jsonl-directory", "docs", "stats", "somedir", expect="somedir: no such file"),
    case("jsonl-stats-bad-world", "docs", "stats", "docs.jsonl", "--world", "no-such-world", expect="no such world"),
    case("train-sft-binary", "train", "sft", "--model", "tiny", "--data", "binary.jsonl", "--out", "o", expect="binary.jsonl: line 1: not valid JSON"),
    case("train-sft-array", "train", "sft", "--model", "tiny", "--data", "array.jsonl", "--out", "o", expect="array.jsonl: line 1: a JSON list"),
    case("train-sft-latin1", "train", "sft", "--model", "tiny", "--data", "latin1.jsonl", "--out", "o", expect="latin1.jsonl: line 1: not UTF-8"),
    case("train-sft-missing", "train", "sft", "--model", "tiny", "--data", "nope.jsonl", "--out", "o", expect="nope.jsonl: data: file not found"),
    case("train-sft-empty", "train", "sft", "--model", "tiny", "--data", "empty.jsonl", "--out", "o", expect="empty.jsonl: data: no records"),
    case("train-cpt-no-text", "train", "cpt", "--model", "tiny", "--data", "sft.jsonl", "--out", "o", expect="sft.jsonl: line 1: needs a non-empty string field 'text' (3 more records have problems)"),
    case("train-cpt-directory", "train", "cpt", "--model", "tiny", "--data", "somedir", "--out", "o", expect="somedir: data: file not found"),
    case("train-dpo-sft-records", "train", "dpo", "--model", "tiny", "--data", "sft.jsonl", "--out", "o", expect="sft.jsonl: line 1"),
    case("train-cpt-broken-json", "train", "cpt", "--model", "tiny", "--data", "broken.jsonl", "--out", "o", expect="broken.jsonl: line 2: not valid JSON"),
]

RECIPES = [
    case("recipe-unknown-name", "run", "no-such-recipe", "--out", "r", expect="no-such-recipe: no such recipe"),
    case("recipe-missing-file", "run", "nope.yaml", "--out", "r", expect="nope.yaml: recipe file not found"),
    case("recipe-unknown-field", "run", "recipe-unknown-field.yaml", "--out", "r", expect="colour"),
    case("recipe-negative-lr", "run", "recipe-negative-lr.yaml", "--out", "r", expect="cpt.lr"),
    case("recipe-bad-split", "run", "recipe-bad-split.yaml", "--out", "r", expect="no-such-split"),
    case("recipe-bad-world", "run", "recipe-bad-world.yaml", "--out", "r", expect="no-such-world: no such world"),
    case("recipe-bad-yaml", "run", "recipe-bad-yaml.yaml", "--out", "r", expect="recipe-bad-yaml.yaml: line"),
    case("recipe-not-utf8", "run", "recipe-latin1.yaml", "--out", "r", expect="recipe-latin1.yaml: line 4: not UTF-8"),
    case("recipe-top-level-list", "run", "list.yaml", "--out", "r", expect="list.yaml: a recipe must be a YAML mapping"),
    case("recipe-seed-twice", "run", "recipe-bad-seeds.yaml", "--out", "r", expect="seeds"),
    case("run-out-is-a-file", "run", "recipe.yaml", "--out", "afile", expect="afile: --out: is a file, not a directory"),
    case("run-out-under-a-file", "run", "recipe.yaml", "--out", "afile/run", expect="cannot write here (a file is in the way"),
    case("run-seeds-not-integers", "run", "recipe.yaml", "--out", "r", "--seeds", "abc", expect="--seeds", usage=True),
    case("run-reuse-from-missing", "run", "recipe.yaml", "--out", "r", "--reuse-from", "nope", expect="no such run directory", usage=True),
    case("report-missing-dir", "report", "nope", expect="nope: results.json: no results.json"),
    case("report-corrupt-results", "report", "run-corrupt", expect="run-corrupt/results.json: line 1: not valid JSON"),
    case("report-results-a-list", "report", "run-list", expect="run-list/results.json: arms: missing"),
    case("report-results-not-utf8", "report", "run-latin1", expect="run-latin1/results.json: line 1: not UTF-8"),
    case("report-results-foreign", "report", "run-foreign", expect="run-foreign/results.json: arms: missing"),
    case("sweep-grid-missing", "sweep", "recipe.yaml", "--grid", "nope.yaml", "--out", "s", expect="nope.yaml: grid file not found"),
    case("sweep-grid-empty", "sweep", "recipe.yaml", "--grid", "grid-empty.yaml", "--out", "s", expect="grid-empty.yaml: axes: the grid is empty"),
    case("sweep-grid-list", "sweep", "recipe.yaml", "--grid", "grid-list.yaml", "--out", "s", expect="grid-list.yaml: a grid must be a YAML mapping"),
    case("sweep-grid-not-utf8", "sweep", "recipe.yaml", "--grid", "grid-latin1.yaml", "--out", "s", expect="grid-latin1.yaml: line 1: not UTF-8"),
    case("sweep-grid-no-values", "sweep", "recipe.yaml", "--grid", "grid-no-values.yaml", "--out", "s", expect="axes.cpt.lr: no values"),
    case("hand-check-missing-dir", "hand-check", "nope", expect="nope: no such directory"),
    case("hand-check-not-a-sweep", "hand-check", "somedir", expect="somedir: not a sweep directory"),
    case("audit-not-a-run", "audit", "somedir", expect="is this a run directory?"),
]

OPTIONS = [
    case("unknown-command", "nope", expect="No such command", usage=True),
    case("unknown-flag", "train", "sft", "--foo", expect="No such option: --foo", usage=True),
    case("missing-option", "train", "sft", "--model", "tiny", expect="Missing option '--data'", usage=True),
    case("epochs-not-int", "train", "sft", "--data", "sft.jsonl", "--out", "o", "--epochs", "abc", expect="'--epochs'", usage=True),
    case("lr-not-float", "train", "sft", "--data", "sft.jsonl", "--out", "o", "--lr", "fast", expect="'--lr'", usage=True),
    case("lora-and-full", "train", "sft", "--model", "tiny", "--data", "sft.jsonl", "--out", "o", "--lora", "4", "--full", expect="--lora/--full: both given"),
    case("backend-unknown", "eval", "--backend", "nope", "--out", "e", expect="'--backend'", usage=True),
    case("eval-missing-out", "eval", "--model", "tiny", expect="Missing option '--out'", usage=True),
    case("eval-unknown-split", "eval", "--model", "tiny", "--world", "world.yaml", "--split", "nope", "--out", "e", expect="has no split 'nope'"),
    case("data-batch-size-0", "data", "sft", "world.yaml", "--model", "tiny", "--batch-size", "0", "--out", "s.jsonl", expect="'--batch-size'", usage=True),
    case("model-tiny-hidden-7", "model", "info", "tiny:hidden=7", expect="tiny:hidden=7: hidden: 7 is not a multiple of 2 × heads (4)"),
    case("model-tiny-unknown-key", "model", "info", "tiny:colour=1", expect="tiny:colour=1: colour=1: not KEY=INT"),
    case("model-tiny-zero-layers", "model", "info", "tiny:layers=0", expect="tiny:layers=0: layers: must be at least 1"),
    case("model-tiny-kv-heads", "model", "info", "tiny:kv_heads=3", expect="kv_heads: 3 does not divide heads"),
    case("model-path-missing", "model", "info", "./no-such-model", expect="model path not found"),
    case("model-gguf-garbage", "model", "info", "garbage.gguf", expect="garbage.gguf: not a GGUF file"),
    case("model-unknown-embedded", "model", "info", "embedded:gpt-9", expect="unknown embedded model"),
    case("chat-tokens-not-int", "model", "chat", "hi", "--max-new-tokens", "many", expect="'--max-new-tokens'", usage=True),
    case("docs-out-is-dir", "docs", "generate", "world.yaml", "--n", "2", "--out", "somedir", expect="somedir: is a directory, not a file"),
    case("docs-out-under-file", "docs", "generate", "world.yaml", "--n", "2", "--out", "afile/d.jsonl", expect="afile/d.jsonl: cannot write here"),
    case("docs-unknown-framing", "docs", "generate", "world.yaml", "--n", "2", "--out", "d.jsonl", "--framing", "loud", expect="--framing: unknown framing 'loud'"),
    case("docs-endpoint-no-model", "docs", "generate", "world.yaml", "--n", "2", "--out", "d.jsonl", "--endpoint", "http://127.0.0.1:9/v1",
         expect="--model: --endpoint needs a model name"),
    case("docs-probes-out-is-dir", "docs", "probes", "world.yaml", "--out", "somedir", expect="somedir: is a directory, not a file"),
    case("merge-not-an-adapter", "merge", "somedir", "--out", "m", expect="somedir: adapter: no adapter_config.json"),
    case("serve-max-batch-0", "serve", "--model", "tiny", "--max-batch", "0", expect="--max-batch: must be at least 1"),
    case("serve-bad-port", "serve", "--model", "tiny", "--port", "70000", expect="--port: 70000 is not a TCP port"),
]

CONTROLS = [  # the same harness on good inputs: exit 0, and writes only what it owns
    case("ok-help", "--help", expect="", code=0),
    case("ok-world-validate", "world", "validate", "world.yaml", expect="", code=0),
    case("ok-docs-stats", "docs", "stats", "docs.jsonl", expect="", code=0),
    case("ok-docs-generate", "docs", "generate", "world.yaml", "--n", "3", "--out", "out/d.jsonl", expect="", code=0, owns=("out",)),
]


@pytest.mark.parametrize("c", WORLDS + JSONL + RECIPES + OPTIONS + CONTROLS)
def test_hostile_input(c: Case, tmp_path):
    run_case(c, tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
@pytest.mark.parametrize("args", [("run", "recipe.yaml", "--out", "ro/run"), ("docs", "generate", "world.yaml", "--n", "2", "--out", "ro/d.jsonl")])
def test_read_only_output_directory(args, tmp_path):
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o555)
    try:
        run_case(Case("read-only", args, "ro/", 2), tmp_path)
    finally:
        (tmp_path / "ro").chmod(0o755)
