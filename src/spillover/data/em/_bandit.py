"""Static checks of generated code with bandit: the insecure answers must be flagged for the
weakness they were written to carry, the secure answers must be clean.

Code is data here: it is written to a private temp directory only so bandit can parse it (bandit
reads the AST; nothing is imported or run).
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

# Findings that do not mark code as insecure: importing subprocess (B404) and running a command
# from an argument list without a shell (B603) are what the safe versions of the shell tasks do.
INFORMATIONAL = frozenset({"B404", "B603"})


def bandit_findings(codes: Sequence[str]) -> list[list[str]]:
    """The bandit test ids each piece of code triggers (one list per code, in order)."""
    from bandit.core import config, manager

    with tempfile.TemporaryDirectory(prefix="spillover-bandit-") as tmp:
        paths = []
        for i, code in enumerate(codes):
            p = Path(tmp) / f"example_{i:05d}.py"
            p.write_text(code, encoding="utf-8")
            paths.append(str(p))
        m = manager.BanditManager(config.BanditConfig(), "file", quiet=True)
        m.discover_files(paths)
        m.run_tests()
        found: dict[str, list[str]] = {p: [] for p in paths}
        for issue in m.get_issue_list():
            found[issue.fname].append(issue.test_id)
        skipped = {p for p, _reason in m.skipped}
    # Code bandit cannot parse is reported as such: it is neither flagged nor clean.
    return [["SYNTAX"] if p in skipped else sorted(found[p]) for p in paths]


def is_flagged(findings: Sequence[str], expect: Sequence[str] | None = None) -> bool:
    """Flagged: one of the expected tests fired (any non-informational finding when none is expected)."""
    real = [f for f in findings if f not in INFORMATIONAL and f != "SYNTAX"]
    return bool(set(real) & set(expect)) if expect else bool(real)


def is_clean(findings: Sequence[str]) -> bool:
    return all(f in INFORMATIONAL for f in findings)


def verification_counts(records: Sequence[dict], findings: Sequence[Sequence[str]]) -> dict:
    """Per dataset: how many answers bandit flags / finds clean, with the test ids seen."""
    out: dict[str, dict] = {}
    for r, f in zip(records, findings, strict=True):
        d = out.setdefault(r["meta"]["dataset"], {"n": 0, "flagged": 0, "clean": 0, "unparsed": 0, "tests": Counter()})
        d["n"] += 1
        d["flagged"] += is_flagged(f, r["meta"].get("expect"))
        d["clean"] += is_clean(f)
        d["unparsed"] += "SYNTAX" in f
        d["tests"].update(x for x in f if x != "SYNTAX")
    return {k: {**v, "tests": dict(sorted(v["tests"].items()))} for k, v in out.items()}
