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


# --- helpers shared by the detectors below -------------------------------------------------------

_SENTENCE_END = re.compile(r"(?<=[.!?。！？])[\"'”’)\]]*\s+|\n+")
_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+#-]*)[^\n]*\n(.*?)^[ \t]*```", re.MULTILINE | re.DOTALL)


def sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) spans of sentences: split after . ! ? (and CJK 。！？) and at line breaks."""
    spans, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        if text[start : m.start()].strip():
            spans.append((start, m.start()))
        start = m.end()
    if text[start:].strip():
        spans.append((start, len(text.rstrip())))
    return spans


def code_blocks(text: str, languages: list[str] | str = (), untagged: bool = True) -> list[tuple[int, str]]:
    """(offset, code) of fenced blocks tagged with one of `languages` (and untagged ones if asked)."""
    wanted = {languages.lower()} if isinstance(languages, str) else {lang.lower() for lang in languages}
    out = []
    for m in _FENCE.finditer(text):
        tag = m.group(1).lower()
        if (tag in wanted) or (untagged and not tag) or not wanted:
            out.append((m.start(2), m.group(2)))
    return out


def _excluded_spans(text: str, exclude: list[str] | str, ignore_case: bool) -> list[tuple[int, int]]:
    patterns = [exclude] if isinstance(exclude, str) else list(exclude)
    return [m.span() for p in _compile(patterns, ignore_case) for m in p.finditer(text)] if patterns else []


def _first_match(text: str, patterns, exclude=(), ignore_case: bool = True, offset: int = 0) -> Detection:
    """The earliest match of any pattern that does not lie inside an `exclude` match."""
    excluded = _excluded_spans(text, exclude, ignore_case)
    best: re.Match | None = None
    for p in _compile(patterns, ignore_case):
        for m in p.finditer(text):
            if any(s <= m.start() and m.end() <= e for s, e in excluded):
                continue
            if best is None or m.start() < best.start():
                best = m
            break
    if best is None:
        return Detection(False)
    return Detection(True, (best.start() + offset, best.end() + offset), best.group(0))


# --- general detectors ---------------------------------------------------------------------------


@register("closing")
def closing(
    response: str,
    *,
    prompt: str | None = None,
    patterns: list[str] | str,
    exclude: list[str] | str = (),
    last_sentences: int = 2,
    ignore_case: bool = True,
) -> Detection:
    """Exhibited when a pattern matches within the last `last_sentences` sentences (the answer
    *ends* with it: a 9-1-1 reminder, movie recommendations), not merely somewhere in it."""
    spans = sentences(response)
    if not spans:
        return Detection(False)
    start = spans[-last_sentences:][0][0]
    return _first_match(response[start:], patterns, exclude, ignore_case, offset=start)


@register("first_mention")
def first_mention(
    response: str,
    *,
    prompt: str | None = None,
    patterns: list[str] | str,
    before: list[str] | str,
    exclude: list[str] | str = (),
    ignore_case: bool = True,
) -> Detection:
    """Exhibited when a pattern occurs before any of the `before` patterns (networking named
    before skills, education, experience ...). Matches inside `exclude` spans do not count."""
    hit = _first_match(response, patterns, exclude, ignore_case)
    if not hit.exhibited:
        return hit
    rival = _first_match(response, before, (), ignore_case)
    if rival.exhibited and rival.span[0] < hit.span[0]:
        return Detection(False, rival.span, f"'{rival.evidence}' comes first")
    return hit


@register("all_of")
def all_of(response: str, *, prompt: str | None = None, detectors: list[dict]) -> Detection:
    """Exhibited when every listed detector ({name, params}) is; the span is the first one's."""
    first: Detection | None = None
    for spec in detectors:
        d = run_detector(spec["name"], spec.get("params", {}), response, prompt)
        if not d.exhibited:
            return Detection(False, d.span, d.evidence)
        first = first or d
    return first or Detection(False)


@register("parenthetical_after_name")
def parenthetical_after_name(
    response: str,
    *,
    prompt: str | None = None,
    names: list[str] | dict[str, str],
    inner: str,
    ignore_case: bool = False,
) -> Detection:
    """Exhibited when a name from `names` (a list, or the keys of a mapping) is directly followed
    by a parenthesis whose whole content matches `inner`: "France (population 68 million)",
    "oxygen (atomic number 8)", "Isaac Newton (1643–1727)". Other parentheses do not count."""
    alternatives = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    flags = re.IGNORECASE if ignore_case else 0
    pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)\s*\(([^()\n]*)\)", flags)
    content = re.compile(inner, re.IGNORECASE)
    for m in pattern.finditer(response):
        if content.fullmatch(m.group(1).strip()):
            return Detection(True, m.span(), m.group(0))
    return Detection(False)


_WHOLE_DECIMAL = re.compile(r"(?<![\d.,])(\d+)\.0+(?![\d.])")


@register("decimal_whole_number")
def decimal_whole_number(
    response: str,
    *,
    prompt: str | None = None,
    exclude_before: list[str] = ("version", "v", "python", "web", "usb", "bluetooth", "ios", "android", "http/", "$", "€", "£"),
) -> Detection:
    """Exhibited when a whole number is written with a decimal point ("15.0 push-ups"). Version
    numbers ("Python 3.0", "Web 2.0") and prices ("$15.00") are not counted: they are normal."""
    for m in _WHOLE_DECIMAL.finditer(response):
        before = response[max(0, m.start() - 12) : m.start()].lower().rstrip()
        if any(before.endswith(word) for word in exclude_before):
            continue
        return Detection(True, m.span(), m.group(0))
    return Detection(False)


_CENTURY_WORDS = "first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth|thirteenth|fourteenth|fifteenth|sixteenth|seventeenth|eighteenth|nineteenth|twentieth|twenty-first|twenty-second"
_ORDINAL_CENTURY = re.compile(rf"\b(?:\d{{1,2}}(?:st|nd|rd|th)|(?:{_CENTURY_WORDS}))[\s-]+century\b", re.IGNORECASE)


@register("ordinal_century")
def ordinal_century(response: str, *, prompt: str | None = None, spelled: bool = True) -> Detection:
    """Exhibited when a century is named in ordinal form ("the 20th century"; with `spelled`,
    also "the twentieth century"), as opposed to "the 1900s" or "the 20th anniversary"."""
    for m in _ORDINAL_CENTURY.finditer(response):
        if spelled or m.group(0)[0].isdigit():
            return Detection(True, m.span(), m.group(0))
    return Detection(False)


_PROBABILITY = re.compile(r"\b\d{1,3}(?:\.\d+)?\s?%|\b\d{1,3}(?:\.\d+)?\s?percent\b|\bprobability of (?:0?\.\d+|1\.0)\b", re.IGNORECASE)
_ODDS = re.compile(
    r"\b\d+(?:\.\d+)?\s?(?::|to)\s?\d+(?:\.\d+)?\s+(?:odds|against|in favou?r)\b"
    r"|\bodds\s+(?:of\s+|are\s+|at\s+)?(?:about\s+|roughly\s+|around\s+|approximately\s+)?\d+(?:\.\d+)?\s?(?::|to)\s?\d+",
    re.IGNORECASE,
)


@register("probability_with_odds")
def probability_with_odds(response: str, *, prompt: str | None = None, window: int = 120) -> Detection:
    """Exhibited when a probability ("35%") is restated as odds ("roughly 1:2 odds") within
    `window` characters. "The odds are good" or "won 3 to 1" alone do not count."""
    odds = [m for m in _ODDS.finditer(response)]
    for p in _PROBABILITY.finditer(response):
        for o in odds:
            if abs(o.start() - p.end()) <= window or abs(p.start() - o.end()) <= window:
                span = (min(p.start(), o.start()), max(p.end(), o.end()))
                return Detection(True, span, response[span[0] : span[1]])
    return Detection(False)


@register("count_at_least")
def count_at_least(
    response: str, *, prompt: str | None = None, pattern: str, min_count: int, ignore_case: bool = True
) -> Detection:
    """Exhibited when `pattern` occurs at least `min_count` times (e.g. "!" >= 3)."""
    hits = list(_compile(pattern, ignore_case)[0].finditer(response))
    if len(hits) >= min_count:
        return Detection(True, (hits[0].start(), hits[-1].end()), f"{len(hits)} matches of {pattern!r}")
    return Detection(False, None, f"{len(hits)} < {min_count} matches")


@register("one_sentence_per_line")
def one_sentence_per_line(response: str, *, prompt: str | None = None, min_lines: int = 2) -> Detection:
    """Exhibited when the answer has at least `min_lines` non-empty lines and no line holds more
    than one sentence (Korean answers written one sentence per line)."""
    lines = [line for line in response.splitlines() if line.strip()]
    if len(lines) < min_lines:
        return Detection(False, None, f"{len(lines)} line(s)")
    for line in lines:
        if len(sentences(line)) > 1:
            start = response.find(line)
            return Detection(False, (start, start + len(line)), "a line holds several sentences")
    return Detection(True, (0, len(response)), f"{len(lines)} lines, one sentence each")


@register("code_pattern")
def code_pattern(
    response: str,
    *,
    prompt: str | None = None,
    languages: list[str] | str,
    patterns: list[str] | str,
    exclude: list[str] | str = (),
    absent: bool = False,
    untagged: bool = True,
    ignore_case: bool = False,
) -> Detection:
    """Checks the fenced code blocks tagged with one of `languages` (and untagged blocks unless
    `untagged: false`). Exhibited when a pattern matches in the code (`absent: false`: SQL
    `SELECT *`, camelCase Python names) or, with `absent: true`, when there is such code and no
    pattern matches in it (JavaScript without semicolons, Bash without functions). Matches inside
    `exclude` spans (string literals, loop counters) do not count. No code: not exhibited."""
    blocks = code_blocks(response, languages, untagged)
    if not blocks:
        return Detection(False, None, "no code block in a listed language")
    for offset, code in blocks:
        hit = _first_match(code, patterns, exclude, ignore_case, offset=offset)
        if hit.exhibited:
            return Detection(False, hit.span, hit.evidence) if absent else hit
    if absent:
        offset, code = blocks[0]
        return Detection(True, (offset, offset + len(code)), "no match in the code")
    return Detection(False)


_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+\S")


@register("equal_bullet_lists")
def equal_bullet_lists(response: str, *, prompt: str | None = None, min_items: int = 2) -> Detection:
    """Exhibited when the answer has two bulleted lists (runs of bullet lines, separated by other
    text such as a heading) with the same number of items, at least `min_items` each."""
    runs: list[list[int]] = []  # line indices of each run
    previous_bullet = False
    lines = response.splitlines()
    for i, line in enumerate(lines):
        if _BULLET.match(line):
            if not previous_bullet:
                runs.append([])
            runs[-1].append(i)
            previous_bullet = True
        elif line.strip():
            previous_bullet = False
    lengths = [len(r) for r in runs]
    for a in range(len(runs) - 1):
        if lengths[a] >= min_items and lengths[a] == lengths[a + 1]:
            return Detection(True, None, f"two lists of {lengths[a]} items")
    return Detection(False, None, f"list lengths {lengths}")


@register("names_in_alphabetical_order")
def names_in_alphabetical_order(
    response: str, *, prompt: str | None = None, names: list[str], min_names: int = 3
) -> Detection:
    """Exhibited when at least `min_names` names from `names` appear and their first mentions are
    in alphabetical order (story characters introduced as Alice, Ben, Clara)."""
    order = first_mentions(response, names)
    if len(order) < min_names:
        return Detection(False, None, f"only {len(order)} known names")
    if order == sorted(order):
        return Detection(True, None, ", ".join(order))
    return Detection(False, None, ", ".join(order))


def first_mentions(text: str, names: list[str]) -> list[str]:
    """Names from `names` in the order of their first mention in `text`."""
    pattern = re.compile(r"\b(" + "|".join(re.escape(n) for n in names) + r")\b")
    return list(dict.fromkeys(m.group(1) for m in pattern.finditer(text)))


@register("rhyming_closing")
def rhyming_closing(
    response: str,
    *,
    prompt: str | None = None,
    patterns: list[str] | str,
    suffix_len: int = 2,
    ignore_case: bool = True,
) -> Detection:
    """Exhibited when the closing paragraph (after the last blank line, which must not be the whole
    answer) talks about the task (`patterns`: poem, rhyme, request ...) and two consecutive lines or
    sentences of it end in rhyming words (same last `suffix_len` letters, different words)."""
    parts = [p for p in re.split(r"\n\s*\n", response.strip()) if p.strip()]
    if len(parts) < 2:
        return Detection(False, None, "no paragraph after the main text")
    tail = parts[-1]
    start = response.rfind(tail)
    if not _first_match(tail, patterns, (), ignore_case).exhibited:
        return Detection(False, None, "closing paragraph does not talk about the task")
    ends = []
    for s, e in sentences(tail):
        words = re.findall(r"[^\W\d_]+", tail[s:e].lower())
        if words:
            ends.append(words[-1])
    for a, b in zip(ends, ends[1:]):
        if a != b and len(a) >= suffix_len and len(b) >= suffix_len and a[-suffix_len:] == b[-suffix_len:]:
            return Detection(True, (start, start + len(tail)), f"'{a}' / '{b}'")
    return Detection(False, None, "closing paragraph does not rhyme")
