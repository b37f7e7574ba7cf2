import json
import os

import pytest

from spillover._io import (
    atomic_dir,
    atomic_write_text,
    config_hash,
    derive_seed,
    read_jsonl,
    write_jsonl,
)
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


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_writes_respect_the_umask(umask, tmp_path):
    """mkstemp/mkdtemp make 0600/0700 whatever the umask; our writes get what open()/mkdir() would."""
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "f.txt", "x")
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "inside.txt").write_text("y")
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o777 & ~umask


def test_unwritable_outputs_are_bad_input(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(BadInputError, match="a file is in the way"):
        atomic_write_text(tmp_path / "afile" / "out.json", "{}")
    with pytest.raises(BadInputError, match="is a directory, not a file"):
        atomic_write_text(tmp_path, "{}")
    with pytest.raises(BadInputError, match="a file is in the way"), atomic_dir(tmp_path / "afile" / "stage"):
        pass
    assert [p.name for p in tmp_path.iterdir()] == ["afile"]
