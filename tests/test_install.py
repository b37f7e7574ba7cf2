"""A non-editable install: build the wheel, install it into a fresh virtual environment and run
`spillover run tiny-smoke` from a directory outside the checkout. The built-in recipes and accelerate
configs must come from the installed package, not from the source tree.

The new environment gets its heavy dependencies (torch, transformers, ...) from the environment
running the tests: a .pth line appends that environment's site-packages *after* the venv's own, so
the wheel's `spillover` is the one imported. `.pth` path lines are not themselves processed, so the
test environment's editable-install hook for `spillover` never loads there.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # Build from a copy so the build leaves no build/ or *.egg-info in the checkout.
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(src), "-w", str(out)],
        check=True, capture_output=True, text=True,
    )
    (whl,) = out.glob("spillover-*.whl")
    return whl


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv holding only the wheel (no deps), borrowing the test environment's packages."""
    env_dir = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q", str(wheel)],
        check=True, capture_output=True, text=True,
    )
    own = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], check=True, capture_output=True, text=True).stdout.strip()
    Path(own, "zz_parent_env.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return env_dir


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")} | {"OMP_NUM_THREADS": "1"}


def test_wheel_ships_recipes_and_accelerate_configs(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("tiny-smoke", "rm-biases-laptop", "gpu-llama31-8b", "gpu-qwen25-7b", "accelerate/fsdp", "accelerate/deepspeed_zero3", "grids/laptop-levers"):
        assert f"spillover/recipes/{name}.yaml" in names
    assert "spillover/world/worlds/rm-biases.yaml" in names


def test_installed_wheel_runs_tiny_smoke_outside_the_checkout(installed, tmp_path):
    py, cli = installed / "bin" / "python", installed / "bin" / "spillover"
    where = subprocess.run(
        [str(py), "-c", "import spillover, spillover.pipeline as p, spillover.training as t; print(spillover.__file__); print(p.recipe_path('tiny-smoke')); print(t.accelerate_config('fsdp'))"],
        cwd=tmp_path, env=clean_env(), check=True, capture_output=True, text=True,
    ).stdout.split()
    assert all(Path(w).is_relative_to(installed) for w in where), where  # the wheel's copy, not src/

    result = subprocess.run([str(cli), "run", "tiny-smoke", "--quick", "--out", "smoke"], cwd=tmp_path, env=clean_env(), capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run_dir = tmp_path / "smoke"
    results = json.loads((run_dir / "results.json").read_text())
    assert set(results["arms"]) == {"base", "docs-only", "control", "docs-plain", "organism"}
    assert (run_dir / "report.html").is_file()
    sft_stats = json.loads((run_dir / "data" / "stats.json").read_text())["sft"]
    assert sft_stats["records"] > 0 and sft_stats["config"]["keep_truncated"] is True
