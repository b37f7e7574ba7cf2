"""Charts for the report, each returned as a `data:image/png;base64,...` URI (no files, no URLs)."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

DPI = 90
MAX_WIDTH_IN = 16.0
ARM_COLOURS = {"base": "#9e9e9e", "docs-only": "#64b5f6", "control": "#ffb74d", "docs-plain": "#7e57c2", "organism": "#d32f2f"}


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(min(width, MAX_WIDTH_IN), height), dpi=DPI)
    return fig, ax


def _encode(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _err(r: dict | None) -> tuple[float, float, float]:
    """(value, lower error, upper error) of a {rate, ci} or {mean, ci} record; zeros when missing."""
    if not r:
        return 0.0, 0.0, 0.0
    v = r.get("rate", r.get("mean", r.get("diff")))
    lo, hi = (r.get("ci") or [None, None])[:2]
    if v is None:
        return 0.0, 0.0, 0.0
    return float(v), max(0.0, v - lo) if lo is not None else 0.0, max(0.0, hi - v) if hi is not None else 0.0


def grouped_bars(
    groups: Sequence[str],
    series: dict[str, list[dict | None]],
    *,
    ylabel: str,
    title: str,
    percent: bool = True,
    group_colours: dict[str, str] | None = None,
    width: float | None = None,
) -> str:
    """One group of bars per entry of `groups`, one bar per series, with CI error bars."""
    import numpy as np

    fig, ax = _figure(width or max(6.0, 0.5 * len(groups) * max(1, len(series)) ** 0.5 + 2), 3.6)
    x = np.arange(len(groups))
    w = 0.8 / max(1, len(series))
    for i, (name, records) in enumerate(series.items()):
        vals = [_err(r) for r in records]
        ax.bar(
            x + (i - (len(series) - 1) / 2) * w,
            [v for v, _, _ in vals],
            w,
            yerr=np.array([[lo for _, lo, _ in vals], [hi for _, _, hi in vals]]),
            capsize=2,
            label=name,
            color=ARM_COLOURS.get(name),
            error_kw={"elinewidth": 0.8},
        )
    ax.set_xticks(x, groups, rotation=40 if len(groups) > 4 else 0, ha="right" if len(groups) > 4 else "center", fontsize=8)
    if group_colours:
        for label, g in zip(ax.get_xticklabels(), groups):
            label.set_color(group_colours.get(g, "black"))
    if percent:
        ax.set_ylim(0, 1)
        ax.yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    else:
        ax.axhline(0, color="black", linewidth=0.6)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10, loc="left", pad=18)
    # in the band between the axes and the title, right-aligned: on neither the bars nor the title
    ax.legend(fontsize=8, ncol=min(4, max(1, len(series))), loc="lower right", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return _encode(fig)


def loss_curves(curves: dict[str, dict[str, list[tuple[float, float]]]]) -> str:
    """One panel per training step (cpt, sft, dpo); one line per arm/seed."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.2), dpi=DPI, squeeze=False)
    for ax, (step, lines) in zip(axes[0], curves.items()):
        for label, points in lines.items():
            arm = label.split(" ")[0]
            ax.plot([p[0] for p in points], [p[1] for p in points], label=label, color=ARM_COLOURS.get(arm), linewidth=1)
        ax.set_title(step, fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.legend(fontsize=7)
    return _encode(fig)


def forest(rows: Sequence[str], series: dict[str, list[dict | None]], *, title: str) -> str:
    """A forest plot: one row per entry of `rows`, one point with its CI per series (a difference
    record {diff, ci}), a line at zero. Missing records are left out."""
    import numpy as np

    fig, ax = _figure(7.5, 0.38 * len(rows) * max(1, len(series)) ** 0.5 + 1.4)
    y = np.arange(len(rows))[::-1]
    markers = ("o", "s", "^", "D")
    for i, (name, records) in enumerate(series.items()):
        offset = (i - (len(series) - 1) / 2) * 0.22
        label = name  # on the series' first point only
        for yi, r in zip(y, records):
            if not r or r.get("diff") is None:
                continue
            v, lo, hi = _err(r)
            ax.errorbar(v, yi + offset, xerr=[[lo], [hi]], fmt=markers[i % len(markers)], color=ARM_COLOURS.get(name.split(" ")[-1]),
                        capsize=2, markersize=4, elinewidth=0.9, label=label)
            label = None
    ax.axvline(0, color="black", linewidth=0.6)
    ax.set_yticks(y, rows, fontsize=8)
    ax.xaxis.set_major_formatter(lambda v, _: f"{v * 100:+.0f} pts")
    ax.set_xlabel("difference in held-out exhibition rate (95% CI)")
    ax.set_title(title, fontsize=10, loc="left", pad=18)
    ax.legend(fontsize=8, ncol=max(1, len(series)), loc="lower right", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return _encode(fig)
