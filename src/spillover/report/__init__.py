"""Reports: report.html (self-contained, charts inlined) and report.md from a run's results.json."""

from pathlib import Path

from spillover._io import atomic_write_text, read_json
from spillover.errors import BadInputError, Problem

from ._audit import load_audit
from ._html import render_html
from ._markdown import render_markdown


def render_report(run_dir: str | Path) -> tuple[Path, Path]:
    """Write run_dir/report.html and run_dir/report.md from run_dir/results.json (and audit/audit.json
    when the run has one); return both paths."""
    run_dir = Path(run_dir)
    results_path = run_dir / "results.json"
    if not results_path.is_file():
        raise BadInputError(Problem(str(run_dir), "results.json", "no results.json in this directory", "pass a run directory written by `spillover run`"))
    results = read_json(results_path)
    if isinstance(results, dict) and results.get("organism") == "em":
        from ._em_markdown import render_em_html, render_em_markdown

        return atomic_write_text(run_dir / "report.html", render_em_html(results)), atomic_write_text(run_dir / "report.md", render_em_markdown(results))
    missing = [k for k in ("arms", "headline") if k not in results] if isinstance(results, dict) else ["arms", "headline"]
    if missing:  # a hand-edited or foreign file: say so rather than fail deep inside the renderers
        raise BadInputError(Problem(str(results_path), missing[0], "missing: not the results.json `spillover run` writes",
                                    "rerun `spillover run` on this directory to rewrite it"))
    audit = load_audit(run_dir)
    html_path = atomic_write_text(run_dir / "report.html", render_html(run_dir, results, audit))
    md_path = atomic_write_text(run_dir / "report.md", render_markdown(results, audit))
    return html_path, md_path


__all__ = ["render_html", "render_markdown", "render_report"]
