"""A run writes only where it may: its own run directory, one writer at a time, removing only its own temp dirs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest
from test_pipeline import FakeStages, quiet

from spillover._io import LOCK_FILE, locked_dir
from spillover.errors import BadInputError
from spillover.pipeline import run_recipe


def files_of(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def run(out: Path, stages=None, recipe="tiny-smoke"):
    return run_recipe(recipe, out_dir=out, stages=stages or FakeStages(), console=quiet())


def test_a_directory_that_is_not_a_run_is_refused_untouched(tmp_path):
    out = tmp_path / "mine"
    (out / "notes" / ".tmp-draft").mkdir(parents=True)
    (out / "notes" / ".tmp-draft" / "keep.txt").write_text("mine")
    (out / "recipe.yaml").write_text("my own recipe notes\n")
    before = files_of(out)
    stages = FakeStages()
    with pytest.raises(BadInputError, match=r"mine: --out: not empty and not a spillover run \(no recipe.yaml naming a recipe\); nothing was written") as info:
        run(out, stages)
    assert len(info.value.problems) == 1 and "choose a new or empty directory" in str(info.value)
    assert files_of(out) == before and sorted(p.name for p in out.iterdir()) == ["notes", "recipe.yaml"]  # no lock file either
    assert sum(stages.calls.values()) == 0


def test_a_run_of_another_recipe_is_refused_untouched(tmp_path):
    out = tmp_path / "run"
    run(out)
    before = files_of(out)
    other = tmp_path / "other.yaml"
    other.write_text("name: other\nmodel: tiny\nseeds: [0]\n")
    with pytest.raises(BadInputError, match="run: --out: a run of recipe 'tiny-smoke', not of 'other'; nothing was written"):
        run(out, recipe=other)
    assert files_of(out) == before


def test_a_file_as_out_is_refused(tmp_path):
    out = tmp_path / "file"
    out.write_text("x")
    with pytest.raises(BadInputError, match="is a file, not a directory"):
        run(out)
    assert out.read_text() == "x"


def test_an_empty_directory_is_used(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    assert (run(out) / "results.json").exists()


def test_a_rerun_removes_only_temp_dirs_of_its_own_unfinished_stages(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="killed during sft"):
        run(out, FakeStages(fail_at="sft"))
    unfinished = out / "arms/organism/seed-0/sft"  # the organism is evaluated first, so its SFT trains first
    assert (unfinished / "stage.json").exists() and not (unfinished / "DONE").exists()
    # What a SIGKILL leaves: atomic_dir's temp dirs in the unfinished stage (and in its checkpoints).
    (unfinished / ".tmp-model-abc123").mkdir()
    (unfinished / "checkpoints" / ".tmp-step-3-xyz").mkdir(parents=True)
    # Someone's own files elsewhere in the run directory, named like temp dirs.
    theirs = [out / ".tmp-notes", out / "documents" / ".tmp-keep", out / "arms" / ".tmp-mine"]
    for d in theirs:
        d.mkdir()
    resumed = FakeStages()
    run(out, resumed)
    # base and docs-only were evaluated (CPT trained) before the first SFT: the rerun trains and evaluates the three post-trained arms
    assert resumed.calls == Counter(sft=3, evaluate=3, probes=3)
    assert not (unfinished / ".tmp-model-abc123").exists() and not (unfinished / "checkpoints" / ".tmp-step-3-xyz").exists()
    assert all(d.is_dir() for d in theirs)


HOLDER = """
import sys, time
from spillover._io import locked_dir
with locked_dir(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(120)
"""


def test_a_second_run_on_a_locked_directory_gets_a_clear_error(tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(HOLDER), str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        stages = FakeStages()
        with pytest.raises(BadInputError, match=rf"run: --out: another spillover process \(pid {holder.pid}\) is writing to this directory"):
            run(out, stages)
        assert sum(stages.calls.values()) == 0 and sorted(p.name for p in out.iterdir()) == [LOCK_FILE]
    finally:
        holder.kill()
        holder.wait()
    # The holder was killed: its lock went with it.
    assert (run(out) / "results.json").exists()


def test_locked_dir_refuses_a_second_process_and_is_free_again_after(tmp_path):
    with locked_dir(tmp_path / "d"):
        probe = subprocess.run([sys.executable, "-c", textwrap.dedent(HOLDER), str(tmp_path / "d")], capture_output=True, text=True, timeout=120)
        assert probe.returncode != 0 and "another spillover process" in probe.stderr and "locked" not in probe.stdout
    with locked_dir(tmp_path / "d"):  # released when the block ended
        pass


def test_a_directory_locked_into_being_and_left_empty_is_removed_again(tmp_path):
    with pytest.raises(RuntimeError), locked_dir(tmp_path / "new" / "out"):
        raise RuntimeError("failed before writing anything")
    assert not (tmp_path / "new" / "out").exists()
    with locked_dir(tmp_path / "kept") as d:
        (d / "result.txt").write_text("x")
    assert sorted(p.name for p in d.iterdir()) == [LOCK_FILE, "result.txt"]
    existing = tmp_path / "existing"
    existing.mkdir()
    with locked_dir(existing):
        pass
    assert existing.is_dir()  # not ours to remove
