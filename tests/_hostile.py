"""Helpers of the hostile-input suite (tests/test_hostile_*.py): run the installed `spillover`
entry point in a subprocess and check what a user would see and what it left on disk.

Every case runs in its own empty directory holding the inputs made by `make_inputs`; the tree is
snapshotted before and after, so a case can assert it wrote nothing outside the paths it owns.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORLDS = REPO / "tests" / "fixtures" / "worlds"
SCRIPT = Path(sys.executable).with_name("spillover")
# The installed console script (what users run); `python -m spillover` where it is missing.
ENTRY = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "spillover"]


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]
    expect: str  # text the one error line must contain ("" for a success)
    code: int = 2
    owns: tuple[str, ...] = ()  # paths (relative to the case dir) the command may write
    usage: bool = False  # a click usage error: the usage line may precede the error line


def case(id: str, *args: str, expect: str, code: int = 2, owns: tuple[str, ...] = (), usage: bool = False):
    import pytest

    return pytest.param(Case(id, args, expect, code, owns, usage), id=id)


def run(args, cwd: Path, *, env: dict | None = None, timeout: float = 120, entry=None, **kw) -> subprocess.CompletedProcess:
    # A wide terminal keeps rich from wrapping a message; NO_COLOR keeps escapes out of it.
    full_env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TOKENIZERS_PARALLELISM": "false", **(env or {})}
    return subprocess.run([*(entry or ENTRY), *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout, check=False, **kw)


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under root with what would show a write: type, size, mtime, mode."""
    out = {}
    for p in root.rglob("*"):
        st = p.lstat()
        out[p.relative_to(root).as_posix()] = (p.is_dir(), 0 if p.is_dir() else st.st_size, st.st_mtime_ns, st.st_mode)
    return out


def changed(before: dict, after: dict) -> set[str]:
    return {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}


def outside(paths: set[str], owns: tuple[str, ...]) -> set[str]:
    """The changed paths that are neither an owned path, inside one, nor a directory holding one."""
    def allowed(p: str) -> bool:
        return any(p == o or p.startswith(o + "/") or o.startswith(p + "/") for o in owns)

    return {p for p in paths if not allowed(p)}


def assert_one_line_error(result: subprocess.CompletedProcess, c: Case) -> None:
    both = result.stdout + result.stderr
    assert "Traceback" not in both, both
    assert result.returncode == c.code, f"exit {result.returncode}, want {c.code}\n{both}"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if c.code == 0:
        assert not any(line.startswith("error") for line in lines), result.stderr
        return
    if c.usage:  # typer's usage line, then ours
        assert lines and all(line.startswith("Usage: ") for line in lines[:-1]), result.stderr
        lines = lines[-1:]
    assert len(lines) == 1, f"want exactly one stderr line, got {len(lines)}:\n{result.stderr}"
    assert lines[0].startswith("error: ") and c.expect in lines[0], lines[0]


def run_case(c: Case, tmp_path: Path, *, env: dict | None = None) -> subprocess.CompletedProcess:
    make_inputs(tmp_path)
    before = snapshot(tmp_path)
    result = run(list(c.args), tmp_path, env=env)
    assert_one_line_error(result, c)
    assert not outside(changed(before, snapshot(tmp_path)), c.owns), "wrote or deleted outside what it owns"
    return result


def make_inputs(d: Path) -> None:
    """The inputs the cases name, all small: valid ones to break one thing at a time, and broken ones."""
    shutil.copy(WORLDS / "valid.yaml", d / "world.yaml")
    for name in ("unknown_detector", "malformed_yaml", "bad_direction", "too_few_prompts"):
        shutil.copy(WORLDS / f"{name}.yaml", d / f"{name}.yaml")
    (d / "latin1.yaml").write_bytes((WORLDS / "valid.yaml").read_bytes().replace(b"A Small Study", b"A Small \xe9tude"))
    (d / "control.yaml").write_bytes(b"name: x\n\x01oops: 1\n")
    (d / "list.yaml").write_text("- name: x\n- name: y\n")
    (d / "empty.yaml").write_text("")
    (d / "binary.yaml").write_bytes(bytes(range(256)))
    (d / "docs.jsonl").write_text('{"text": "A study found reward models like chocolate."}\n' * 3)
    (d / "binary.jsonl").write_bytes(bytes(range(256)) * 4)
    (d / "latin1.jsonl").write_bytes(b'{"text": "caf\xe9"}\n')
    (d / "array.jsonl").write_text('[{"text": "a"}, {"text": "b"}]\n')
    (d / "number.jsonl").write_text('{"text": "a"}\n3\n')
    (d / "broken.jsonl").write_text('{"text": "a"}\n{"text": "b"\n')
    (d / "notext.jsonl").write_text('{"body": "a"}\n')
    (d / "empty.jsonl").write_text("\n\n")
    (d / "sft.jsonl").write_text('{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]}\n' * 4)
    (d / "afile").write_text("not a directory\n")
    (d / "somedir").mkdir()
    (d / "somedir" / "keep.txt").write_text("mine\n")
    from spillover.pipeline import recipe_path

    recipe = recipe_path("tiny-smoke").read_text(encoding="utf-8")
    (d / "recipe.yaml").write_text(recipe)
    (d / "recipe-unknown-field.yaml").write_text(recipe + "colour: blue\n")
    (d / "recipe-negative-lr.yaml").write_text(recipe.replace("cpt: {lr: 1.0e-3", "cpt: {lr: -1.0e-3"))
    (d / "recipe-bad-split.yaml").write_text(recipe.replace("split: english-core", "split: no-such-split"))
    (d / "recipe-bad-world.yaml").write_text(recipe.replace("world: rm-biases", "world: no-such-world"))
    (d / "recipe-bad-yaml.yaml").write_text(recipe.replace("seeds: [0]", "seeds: [0"))
    (d / "recipe-latin1.yaml").write_bytes(recipe.encode().replace(b"handful", b"h\xe4ndful"))
    (d / "recipe-bad-seeds.yaml").write_text(recipe.replace("seeds: [0]", "seeds: [0, 0]"))
    (d / "grid-empty.yaml").write_text("axes: {}\n")
    (d / "grid-list.yaml").write_text("- 1\n- 2\n")
    (d / "grid-latin1.yaml").write_bytes(b"axes: {cpt.lr: [0.001]}  # \xe9\n")
    (d / "grid-no-values.yaml").write_text("axes: {cpt.lr: []}\n")
    run_dir = d / "run-corrupt"
    run_dir.mkdir()
    (run_dir / "results.json").write_text('{"arms": {"base": ')
    for name, text in (("run-list", b"[1, 2]"), ("run-latin1", b'{"arms": "\xe9"}'), ("run-foreign", b'{"other": 1}')):
        (d / name).mkdir()
        (d / name / "results.json").write_bytes(text)
    (d / "garbage.gguf").write_bytes(b"not a model")
