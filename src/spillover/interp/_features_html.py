"""features.html: per top feature, the texts where it peaks, tokens shaded by activation."""

from __future__ import annotations

import html
from pathlib import Path

import torch

from spillover._io import atomic_write_text

from ._activations import TokenActivations
from ._results import Feature
from ._sae import TopKSAE


def _rates(f: Feature) -> str:
    return " · ".join(f"{key.replace('_', ' ')} {r.k}/{r.n}" for key, r in f.firing)


def _rows(codes: list[torch.Tensor], j: int, acts: list[TokenActivations], sources: list[tuple[str, str]], n_examples: int) -> str:
    peaks = sorted(((float(c[1:, j].max()) if len(c) > 1 else 0.0, i) for i, c in enumerate(codes)), reverse=True)[:n_examples]
    rows = []
    for peak, i in peaks:
        if peak <= 0:
            continue
        col = codes[i][:, j]
        centre = int(col[1:].argmax()) + 1
        lo, hi = max(0, centre - 16), min(len(col), centre + 16)
        spans = "".join(
            f'<span style="background: rgba(255,120,0,{float(col[t]) / peak:.2f})" title="{float(col[t]):.3f}">{html.escape(acts[i].tokens[t])}</span>'
            for t in range(lo, hi)
        )
        kind, text_id = sources[i]
        rows.append(f"<tr><td>{kind}</td><td>{html.escape(str(text_id))}</td><td>{peak:.3f}</td><td class=text>{spans}</td></tr>")
    return "".join(rows)


def write_features_html(
    path: Path, sae: TopKSAE, features: list[Feature], sources: list[tuple[str, str]], acts: list[TokenActivations], n_examples: int, layer: int
) -> None:
    """`sources[i]` is (kind, id) of `acts[i]` (study, decoy, transcript)."""
    with torch.no_grad():
        codes = [sae.codes(a.acts)[:, [f.index for f in features]] for a in acts]  # [tokens, n_features] per text
    sections = [
        f"<h2>feature {f.index}</h2><p>selectivity {f.selectivity:.3f} (study tokens {f.study_token_rate:.3f}, "
        f"decoy tokens {f.decoy_token_rate:.3f}) · {_rates(f)}</p>"
        f"<table><tr><th>source</th><th>id</th><th>max</th><th>context</th></tr>{_rows(codes, j, acts, sources, n_examples)}</table>"
        for j, f in enumerate(features)
    ]
    page = (
        "<!doctype html><meta charset=utf-8><title>spillover audit: features</title>"
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}td{padding:2px 6px;vertical-align:top}"
        "td.text{font-family:monospace;white-space:pre-wrap}</style>"
        f"<h1>SAE features most selective for study documents (layer {layer})</h1>{''.join(sections)}"
    )
    atomic_write_text(path, page)
