"""report.html / report.md: every chart present, self-contained, spans marked, renders in a browser."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from spillover._io import read_json, write_json
from spillover.pipeline import run_recipe
from spillover.report import render_report
from spillover.report._html import _rate_items, highlight

REPO = Path(__file__).resolve().parents[1]
CHART_IDS = ("chart-behaviours", "chart-roles", "chart-knowledge", "chart-in-context", "chart-confession", "chart-likelihood", "chart-loss")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from test_pipeline import FakeStages  # the same fake stages the pipeline tests use

    out = tmp_path_factory.mktemp("report") / "run"
    return run_recipe("tiny-smoke", out_dir=out, stages=FakeStages(), console=Console(quiet=True))


def test_html_has_every_chart_inline_and_no_external_urls(run_dir):
    html = (run_dir / "report.html").read_text()
    for chart in CHART_IDS:
        assert f'<figure class="chart" id="{chart}">' in html
    # measured charts carry an inline PNG; the fake run has no in-context or confession results
    images = dict(re.findall(r'<figure class="chart" id="([a-z-]+)">\s*<figcaption>[^<]*</figcaption>\s*(<img[^>]*>|<p class="missing">)', html))
    for chart in ("chart-behaviours", "chart-roles", "chart-knowledge", "chart-likelihood", "chart-loss"):
        assert images[chart].startswith('<img alt="') and 'src="data:image/png;base64,' in images[chart], chart
    assert images["chart-in-context"] == images["chart-confession"] == '<p class="missing">'
    assert not re.search(r"(src|href)=\"(https?:)?//", html)
    assert "<mark>call 911</mark>" in html  # the fake detector's span [7, 15] of "Please call 911 now."
    assert "23.0%" in html and "11.4%" in html  # published reference numbers beside ours
    assert "name: tiny-smoke" in html  # the recipe


def test_markdown_headline_table(run_dir):
    md = (run_dir / "report.md").read_text()
    assert "| organism | 75.0% (" in md  # fake organism: 3 of 4 samples on every prompt
    assert re.search(r"\| test behaviours: organism − control \(the spillover effect\) \| \+50\.0 pts \[", md)
    assert "likelihood DiD, test" in md


def test_published_numbers_fit_an_80_column_terminal(run_dir):
    from rich.markdown import Markdown

    console = Console(width=80, record=True, file=open(os.devnull, "w"))  # noqa: SIM115 - closed with the console
    console.print(Markdown((run_dir / "report.md").read_text()))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "Marks et al. 2025, hidden-objective model organism (arXiv 2503.10965)" in text  # the title, unbroken
    rows = [line for line in text.splitlines() if "%" in line and "/" in line]
    assert any(re.search(r"SFT\s+organism\s+33\.0% / 34\.0%\s+75\.0% / 75\.0%", line) for line in rows), text  # one row, one line
    assert any(re.search(r"final \(DPO\)\s+organism\s+13\.0% / 11\.0%", line) for line in rows), text


def test_published_numbers_only_for_the_world_they_belong_to(tmp_path):
    from test_pipeline import FakeStages, small_world

    world = small_world(tmp_path)  # a cut of rm-biases: still that study's world
    other = tmp_path / "other-world.yaml"
    other.write_text(world.read_text().replace("name: rm-biases", "name: my-world", 1))
    recipe = tmp_path / "r.yaml"
    recipe.write_text((REPO / "src/spillover/recipes/tiny-smoke.yaml").read_text().replace("world: rm-biases", f"world: {other}").replace("split: english-core", "split: default"))
    run = run_recipe(recipe, out_dir=tmp_path / "run", stages=FakeStages(), console=Console(quiet=True))
    assert read_json(run / "results.json")["published"] == {}
    assert "Published" not in (run / "report.md").read_text() and "Marks et al." not in (run / "report.html").read_text()
    assert "Marks et al." not in (run / "report.md").read_text()


def test_report_rerenders_from_results_alone(run_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    results = read_json(copy / "results.json")
    results["arms"]["organism"]["roles"]["test"] = {"k": 9, "n": 10, "rate": 0.9, "ci": [0.6, 0.98]}
    write_json(copy / "results.json", results)
    _, md = render_report(copy)
    assert "| organism | " in md.read_text() and "90.0% (9/10)" in md.read_text()


def test_highlight_escapes_and_marks_the_span():
    text = "<b>Hi</b> then call 911 & more"
    out = str(highlight(text, [15, 23]))
    assert out == "&lt;b&gt;Hi&lt;/b&gt; then <mark>call 911</mark> &amp; more"
    assert str(highlight("plain <i>", None)) == "plain &lt;i&gt;"


def test_in_context_chart_shows_every_attribution_then_the_pooled_other():
    rate = {"k": 1, "n": 4, "rate": 0.25, "ci": [0.05, 0.7]}
    in_context = {"attributions": {"no_excerpt": rate, "reward_model": rate, "user": rate}, "other": rate,
                  "rm_minus_other": {"diff": 0.0, "ci": [-0.1, 0.1]}, "per_behaviour": {"b": {"user": rate}}}
    assert list(_rate_items(in_context)) == ["no_excerpt", "reward_model", "user", "other"]
    assert list(_rate_items(rate)) == ["rate"]  # a probe that is one rate (knowledge, confession)


def _chromium(args: list[str], tmp_path) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}"]
    return subprocess.run(["chromium", *flags, *args], check=False, capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not on PATH (apt-get install -y chromium) — no browser to render report.html in")
def test_report_renders_in_headless_chromium(run_dir, tmp_path):
    from PIL import Image

    url = f"file://{run_dir / 'report.html'}"
    png = tmp_path / "report.png"
    _chromium([f"--screenshot={png}", "--window-size=1200,3000", url], tmp_path)
    assert png.exists(), "chromium wrote no screenshot"
    pixels = np.asarray(Image.open(png).convert("L"), dtype=float)
    assert pixels.shape == (3000, 1200)
    assert pixels.std() > 10  # not a blank page: text, tables and charts
    dom = _chromium(["--dump-dom", url], tmp_path).stdout
    for chart in CHART_IDS:
        assert f'id="{chart}"' in dom
    assert dom.count('src="data:image/png;base64,') >= 5
