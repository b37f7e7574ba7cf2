"""The audit section of report.md and report.html, from audit/audit.json as the audit wrote it.

Generic on purpose: every top-level list of records (features, steering, attribution, and whatever
the audit gains), and every list of records inside a top-level record (ablation's conditions and
gap_removed), becomes a table of its fields, and every top-level record of numbers (sae, ...) a line, so a new audit field shows up without a change here. Rates print as
k/n with their interval, differences with theirs. The probe accuracy and the data search, whose
shape is known, get tables of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from spillover._io import read_json

from ._markdown import fmt_diff, fmt_rate

# Said in the section's header line, or tabulated on their own.
_HEADER_KEYS = {"run_dir", "world", "split", "seed", "models", "config", "layer", "layer_chosen_by", "probe_accuracy", "data_search"}
TEXT_CHARS = 60


@dataclass(frozen=True)
class AuditTable:
    id: str
    title: str
    columns: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class AuditSection:
    header: str
    lines: list[str]  # "name: field value · field value" for each record of numbers
    tables: list[AuditTable]


def load_audit(run_dir: Path) -> dict | None:
    path = Path(run_dir) / "audit" / "audit.json"
    return read_json(path) if path.is_file() else None


def _is_rate(v) -> bool:
    return isinstance(v, dict) and {"k", "n", "rate", "ci"} <= set(v)


def _is_records(v) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(r, dict) for r in v)


def cell(v) -> str | None:
    """A value as table text; None for what does not fit a cell (lists of records, long lists)."""
    if v is None:
        return "—"
    if _is_rate(v):
        return fmt_rate(v)
    if isinstance(v, dict) and {"diff", "ci"} <= set(v):
        return fmt_diff(v)
    if isinstance(v, dict) and "mean_logprob_per_token" in v:  # fluency
        return cell(v["mean_logprob_per_token"])
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 1000 else f"{v:.4g}"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return v if len(v) <= TEXT_CHARS else v[: TEXT_CHARS - 1] + "…"
    if isinstance(v, list) and len(v) <= 8 and all(isinstance(x, (int, float, str)) for x in v):
        return ", ".join(cell(x) for x in v)
    return None


def records_table(key: str, records: list[dict]) -> AuditTable:
    columns = [c for c in dict.fromkeys(k for r in records for k in r) if any(cell(r.get(c)) is not None for r in records if c in r)]
    rows = [[cell(r.get(c)) or "" for c in columns] for r in records]
    return AuditTable(f"audit-{key}", key.replace("_", " "), columns, rows)


def _probe_table(probe: dict) -> AuditTable | None:
    per_layer = probe.get("per_layer") or []
    return records_table("probe_accuracy", per_layer) if per_layer else None


def data_search_tables(search: dict) -> list[AuditTable]:
    """Per behaviour, query and method: precision@k, the first relevant rank and chance; then pooled."""
    k = search.get("k")
    rows = []
    for b in search.get("behaviours", []):
        for r in b["rankings"]:
            top = " ".join(f"{h['id']}{'✓' if h.get('relevant') else '✗'}" for h in r["hits"][:5])
            rows.append([b["behaviour"], b["role"], f"{b['query']['kind']} ({b['query']['source']})", r["method"], fmt_rate(r.get("precision_at_k")),
                         cell(r.get("first_relevant_rank")), fmt_rate(b["chance"]), top])
    layer = f"layer {search['layer']} ({search['layer_from']})" if search.get("layer") is not None else "lexical only"
    texts = ", ".join(f"{n} {source}" for source, n in search.get("n_texts", {}).items())
    tables = [AuditTable("audit-data-search", f"training-data search, top {k} of {texts}; activations at {layer} (✓ = tagged with the behaviour)",
                         ["behaviour", "role", "query", "method", f"precision@{k}", "first relevant rank", "chance", "top 5"], rows)]
    pooled = [[p["query"], p["method"], fmt_rate(p["precision_at_k"]), fmt_rate(p["chance"])] for p in search.get("pooled", [])]
    if pooled:
        tables.append(AuditTable("audit-data-search-pooled", "training-data search, pooled over behaviours", ["query", "method", f"precision@{k}", "chance"], pooled))
    return tables


def firing_table(audit: dict) -> AuditTable | None:
    """Where the concept direction and each top SAE feature fire: prompts active of those asked, per
    condition (the Assistant turn with the chat format vs the same text plain, organism and base)."""
    rows = [("concept direction", (audit.get("concept") or {}).get("firing") or {})]
    rows += [(f"feature {f.get('index')}", f.get("firing") or {}) for f in audit.get("features") or []]
    rows = [(name, {c: v for c, v in firing.items() if _is_rate(v)}) for name, firing in rows]
    conditions = list(dict.fromkeys(c for _, firing in rows for c in firing))
    if not conditions:
        return None
    return AuditTable("audit-firing", "where it fires: prompts on which it is active (chat = Assistant turn with the chat format, plain = the same text without)",
                      ["", *(c.replace("_", " ") for c in conditions)],
                      [[name, *(fmt_rate(firing[c]) if c in firing else "—" for c in conditions)] for name, firing in rows if firing])


def audit_section(audit: dict) -> AuditSection:
    probe = audit.get("probe_accuracy") or {}
    header = f"layer {audit.get('layer')} (chosen by {audit.get('layer_chosen_by', '?')})"
    if "best" in probe:
        header += f"; best probe layer {probe.get('best_layer')}, held-out accuracy {cell(probe['best'])}"
    lines, tables = [], []
    probe_table = _probe_table(probe)
    if probe_table:
        tables.append(probe_table)
    firing = firing_table(audit)
    if firing:
        tables.append(firing)
    for key, value in audit.items():
        if key in _HEADER_KEYS:
            continue
        if isinstance(value, dict):
            fields = [f"{k} {c}" for k, v in value.items() if (c := cell(v)) is not None]
            if fields:
                lines.append(f"{key.replace('_', ' ')}: " + " · ".join(fields))
            # A record holding lists of records (ablation: conditions, gap_removed): the first list is
            # the record's own table, the others are named after their field.
            nested = [(sub, v) for sub, v in value.items() if _is_records(v)]
            tables += [records_table(key if i == 0 else f"{key}_{sub}", v) for i, (sub, v) in enumerate(nested)]
        elif _is_records(value):
            tables.append(records_table(key, value))
    if audit.get("data_search"):
        tables += data_search_tables(audit["data_search"])
    return AuditSection(header, lines, tables)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def audit_markdown(audit: dict) -> list[str]:
    section = audit_section(audit)
    lines = ["", "## Audit of the organism (audit/audit.json)", "", section.header]
    lines += ["", *[f"- {line}" for line in section.lines]] if section.lines else []
    for t in section.tables:
        lines += ["", f"**{t.title}**", "", "| " + " | ".join(map(_md_cell, t.columns)) + " |", "|" + "---|" * len(t.columns)]
        lines += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in t.rows]
    return lines
