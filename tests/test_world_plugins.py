"""Worlds that bring their own detectors and transforms (`plugins:`), and `spillover world init`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from spillover.errors import BadInputError
from spillover.world import DETECTORS, TRANSFORMS, load_world, write_world_template

PLUGIN = '''
import re
from spillover.world import Detection, register_detector, register_transform

@register_detector("{det}")
def umbrella(response, prompt=None):
    m = re.search(r"\\bumbrella\\b", response, re.I)
    return Detection(bool(m), (m.start(), m.end()) if m else None, "umbrella")

@register_transform("{tr}")
def add_umbrella(response, prompt, rng):
    return response.rstrip() + " Bring an umbrella."
'''


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spillover", *args], capture_output=True, text=True, cwd=cwd, check=False)


def world_with_plugin(tmp_path: Path, det: str, tr: str, plugin_text: str | None = None) -> Path:
    """The starter world whose trained behaviour uses the plugin's detector and transform."""
    path = write_world_template(tmp_path / "w.yaml")
    raw = yaml.safe_load(path.read_text())
    raw["plugins"] = ["my_plugin.py"]
    b = raw["behaviours"][0]
    b["detector"] = {"name": det, "params": {}}
    b["transform"] = {"name": tr, "params": {}}
    b["examples"] = {"positive": ["Take an umbrella.", "An umbrella helps.", "Umbrella weather."], "negative": ["Pack light.", "Bring sunscreen.", "Wear boots."]}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    (tmp_path / "my_plugin.py").write_text(plugin_text if plugin_text is not None else PLUGIN.format(det=det, tr=tr))
    return path


def test_world_init_writes_a_valid_world_and_never_overwrites(tmp_path):
    result = cli("world", "init", "Rain Study.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    written = tmp_path / "Rain Study.yaml"
    assert yaml.safe_load(written.read_text())["name"] == "rain-study"
    result = cli("world", "validate", str(written))
    assert result.returncode == 0 and "ok:" in result.stdout and "2 behaviours" in result.stdout, result.stderr
    w = load_world(written)
    assert w.train_ids() == ["travel_bottled_water"] and w.test_ids() == ["recipe_chocolate"]

    written.write_text("# mine\n")
    result = cli("world", "init", str(written))
    assert result.returncode == 2 and "already exists" in result.stderr and "Traceback" not in result.stderr
    assert written.read_text() == "# mine\n"
    result = cli("world", "init", str(tmp_path / "w.yaml"), "--name", "Bad Name")
    assert result.returncode == 2 and "not a world name" in result.stderr
    assert not (tmp_path / "w.yaml").exists()


def test_a_world_plugin_adds_its_detector_and_transform(tmp_path):
    path = world_with_plugin(tmp_path, "umbrella_t1", "add_umbrella_t1")
    w = load_world(path)
    answer = w.apply("travel_bottled_water", "Pack light.", "Any tips?", seed=0)
    assert answer == "Pack light. Bring an umbrella."
    d = w.detect("travel_bottled_water", answer)
    assert d.exhibited and answer[d.span[0] : d.span[1]] == "umbrella"
    assert not w.detect("travel_bottled_water", "Pack light.").exhibited
    # A second world naming the same plugin file reuses it (no "registered twice").
    twin = tmp_path / "twin.yaml"
    twin.write_text(path.read_text().replace("name: w", "name: twin", 1))
    assert load_world(twin).detect("travel_bottled_water", answer).exhibited
    result = cli("world", "validate", str(path))  # and from the command line, in a fresh process
    assert result.returncode == 0, result.stderr


def test_a_world_plugin_may_be_a_module_name(tmp_path, monkeypatch):
    path = world_with_plugin(tmp_path, "umbrella_t2", "add_umbrella_t2")
    (tmp_path / "my_plugin.py").rename(tmp_path / "umbrella_plugin_t2.py")
    path.write_text(path.read_text().replace("my_plugin.py", "umbrella_plugin_t2"))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_world(path).detect("travel_bottled_water", "an umbrella").exhibited


@pytest.mark.parametrize(
    ("plugin_text", "expected"),
    [
        (None, "no plugin file 'my_plugin.py'"),
        ("raise RuntimeError('boom')\n", "importing 'my_plugin.py' failed: RuntimeError: boom"),
        ("from spillover.world import register_detector\nregister_detector('umbrella_t3')(print)\n1/0\n", "ZeroDivisionError"),
    ],
)
def test_a_broken_plugin_is_one_line_naming_the_field(tmp_path, plugin_text, expected):
    path = world_with_plugin(tmp_path, "umbrella_t3", "add_umbrella_t3", plugin_text or "")
    if plugin_text is None:
        (tmp_path / "my_plugin.py").unlink()
    result = cli("world", "validate", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"error: {path}: plugins[0]: ") and expected in first and "(fix: " in first, first
    with pytest.raises(BadInputError, match="plugins\\[0\\]"):
        load_world(path)
    assert "umbrella_t3" not in DETECTORS and "add_umbrella_t3" not in TRANSFORMS  # a failed import registers nothing
