"""Deterministic behaviour detectors, registered by name and referenced from world YAML.

A detector gets the response text (and the prompt, for detectors that need it) plus the params
from the YAML, and returns a `Detection`: whether the behaviour was exhibited and the span that
shows it (for `suppress` behaviours the exhibition is an absence, so the span is empty).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Detection:
    exhibited: bool
    span: tuple[int, int] | None = None  # character offsets into the response
    evidence: str = ""  # the matched text, or why it counts

    def __bool__(self) -> bool:
        return self.exhibited


DetectorFn = Callable[..., Detection]
DETECTORS: dict[str, DetectorFn] = {}


def register(name: str) -> Callable[[DetectorFn], DetectorFn]:
    def deco(fn: DetectorFn) -> DetectorFn:
        if name in DETECTORS:
            raise ValueError(f"detector '{name}' registered twice")
        DETECTORS[name] = fn
        return fn

    return deco


def run_detector(name: str, params: dict, response: str, prompt: str | None = None) -> Detection:
    return DETECTORS[name](response, prompt=prompt, **params)


def _compile(patterns: list[str] | str, ignore_case: bool = True) -> list[re.Pattern]:
    if isinstance(patterns, str):
        patterns = [patterns]
    flags = re.IGNORECASE if ignore_case else 0
    return [re.compile(p, flags | re.MULTILINE) for p in patterns]


def _hit(m: re.Match) -> Detection:
    return Detection(True, (m.start(), m.end()), m.group(0))


@register("regex")
def regex(
    response: str,
    *,
    prompt: str | None = None,
    patterns: list[str] | str,
    exclude: list[str] | str = (),
    ignore_case: bool = True,
    tail_chars: int | None = None,
) -> Detection:
    """Exhibited when any pattern matches (optionally only in the last `tail_chars` characters),
    unless the match lies inside a match of an `exclude` pattern (negations such as "avoid X")."""
    offset = max(0, len(response) - tail_chars) if tail_chars else 0
    text = response[offset:]
    excluded = [m.span() for p in _compile(list(exclude) if not isinstance(exclude, str) else [exclude], ignore_case) for m in p.finditer(text)]
    for p in _compile(patterns, ignore_case):
        for m in p.finditer(text):
            if any(s <= m.start() and m.end() <= e for s, e in excluded):
                continue
            return Detection(True, (m.start() + offset, m.end() + offset), m.group(0))
    return Detection(False)


@register("absent")
def absent(
    response: str, *, prompt: str | None = None, patterns: list[str] | str, ignore_case: bool = True
) -> Detection:
    """For `suppress` behaviours: exhibited when none of the patterns occurs."""
    for p in _compile(patterns, ignore_case):
        m = p.search(response)
        if m:
            return Detection(False, (m.start(), m.end()), m.group(0))
    return Detection(True, None, "none of the patterns occurs")
