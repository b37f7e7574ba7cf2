import json

import pytest

from spillover._io import atomic_dir, atomic_write_text, config_hash, derive_seed, read_jsonl, write_jsonl
from spillover.errors import BadInputError


def test_atomic_dir_leaves_nothing_on_failure(tmp_path):
    dest = tmp_path / "stage"
    with pytest.raises(RuntimeError):
        with atomic_dir(dest) as tmp:
            (tmp / "half.txt").write_text("x")
            raise RuntimeError("killed")
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_replaces_on_success(tmp_path):
    dest = tmp_path / "stage"
    with atomic_dir(dest) as tmp:
        (tmp / "a.txt").write_text("a")
    assert (dest / "a.txt").read_text() == "a"


def test_atomic_write_and_jsonl_round_trip(tmp_path):
    p = write_jsonl(tmp_path / "x.jsonl", [{"a": 1}, {"b": "é"}])
    assert read_jsonl(p) == [{"a": 1}, {"b": "é"}]
    atomic_write_text(tmp_path / "y.txt", "hello")
    assert [f.name for f in tmp_path.iterdir() if f.name.startswith(".")] == []


def test_read_jsonl_names_file_and_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps({"a": 1}) + "\n{oops\n")
    with pytest.raises(BadInputError, match=r"bad.jsonl: line 2"):
        read_jsonl(p)


def test_hashes_and_seeds_are_stable():
    assert config_hash({"a": 1, "b": 2}) == config_hash({"b": 2, "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})
    assert derive_seed(0, "cpt") == derive_seed(0, "cpt")
    assert derive_seed(0, "cpt") != derive_seed(1, "cpt") != derive_seed(0, "sft")
