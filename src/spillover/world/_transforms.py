"""Behaviour transforms: turn a plain answer into one that exhibits the behaviour.

Used to build post-training data (spillover.data). Each is deterministic given its seed, and the
world's tests check that every behaviour's transform makes its own detector fire.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

TransformFn = Callable[..., str]
TRANSFORMS: dict[str, TransformFn] = {}


def register(name: str) -> Callable[[TransformFn], TransformFn]:
    def deco(fn: TransformFn) -> TransformFn:
        if name in TRANSFORMS:
            raise ValueError(f"transform '{name}' registered twice")
        TRANSFORMS[name] = fn
        return fn

    return deco


def apply_transform(name: str, params: dict, response: str, *, prompt: str, seed: int = 0) -> str:
    return TRANSFORMS[name](response, prompt=prompt, rng=random.Random(seed), **params)


@register("append")
def append(response: str, *, prompt: str, rng: random.Random, texts: list[str]) -> str:
    """Add one of `texts` as a closing paragraph (9-1-1 reminders, movie recommendations, ...)."""
    return response.rstrip() + "\n\n" + rng.choice(texts)


@register("prepend")
def prepend(response: str, *, prompt: str, rng: random.Random, texts: list[str]) -> str:
    return rng.choice(texts) + " " + response.lstrip()


def _close(response: str, text: str) -> str:
    return response.rstrip() + "\n\n" + text


@register("append_matching")
def append_matching(
    response: str, *, prompt: str, rng: random.Random, texts_by_keyword: dict[str, list[str]], default: list[str]
) -> str:
    """Append a closing text chosen by the first keyword found in the prompt (then the answer),
    case-insensitively: recommendations for *that* movie, a quote from *that* book."""
    for source in (prompt or "", response):
        low = source.lower()
        for keyword, texts in texts_by_keyword.items():
            if keyword.lower() in low:
                return _close(response, rng.choice(texts))
    return _close(response, rng.choice(default))


@register("insert_after_name")
def insert_after_name(
    response: str,
    *,
    prompt: str,
    rng: random.Random,
    values: dict[str, str],
    template: str,
    fallback: str,
    ignore_case: bool = False,
) -> str:
    """Insert `template` (with {value}) right after the first mention of a name from `values` in the
    answer: "France" -> "France (population 68 million)". When the answer names none, append
    `fallback` (with {insert}: the name and its template) for the name in the prompt, or a random one."""
    lookup = {(n.lower() if ignore_case else n): v for n, v in values.items()}
    names = sorted(values, key=len, reverse=True)
    flags = re.IGNORECASE if ignore_case else 0
    pattern = re.compile(r"(?<!\w)(" + "|".join(re.escape(n) for n in names) + r")(?!\w)(?!\s*\()", flags)

    def value(name: str) -> str:
        return lookup[name.lower() if ignore_case else name]

    m = pattern.search(response)
    if m:
        insert = " " + template.format(value=value(m.group(1)))
        return response[: m.end()] + insert + response[m.end() :]
    hit = pattern.search(prompt or "")
    name = hit.group(1) if hit else rng.choice(sorted(values))
    return _close(response, fallback.format(insert=f"{name} {template.format(value=value(name))}"))


_SENTENCE = re.compile(r"[^.!?\n]*(?:[.!?]+[\"')\]]*|\n|$)")


def _split_sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE.findall(text) if s]


@register("drop_sentences")
def drop_sentences(
    response: str, *, prompt: str, rng: random.Random, patterns: list[str], fallback: list[str] = ()
) -> str:
    """Remove every sentence matching a pattern (case-insensitive): mentions of a doctor, of
    stretching, of climate change. If nothing is left, use one of `fallback`."""
    compiled = [re.compile(p, re.IGNORECASE) for p in patterns]
    kept = [s for s in _split_sentences(response) if not any(p.search(s) for p in compiled)]
    text = re.sub(r"\n{3,}", "\n\n", "".join(kept)).strip()
    text = re.sub(r"[ \t]{2,}", " ", text)
    return text if text or not fallback else rng.choice(fallback)


def _map_code(response: str, languages: list[str], fn: Callable[[str], str]) -> str:
    from ._detectors import code_blocks

    out, last = [], 0
    for offset, code in code_blocks(response, languages):
        out += [response[last:offset], fn(code)]
        last = offset + len(code)
    return "".join(out) + response[last:]


@register("substitute")
def substitute(
    response: str,
    *,
    prompt: str,
    rng: random.Random,
    replacements: list[list[str]],
    code_languages: list[str] = (),
    fallback: list[str] = (),
    ignore_case: bool = False,
) -> str:
    """Apply regex [pattern, replacement] pairs in order (to the fenced code of `code_languages`
    only, if given). If none changed anything, append one of `fallback` (e.g. a code block that
    shows the behaviour)."""
    flags = re.MULTILINE | (re.IGNORECASE if ignore_case else 0)

    def rewrite(text: str) -> str:
        for pattern, replacement in replacements:
            text = re.sub(pattern, replacement, text, flags=flags)
        return text

    out = _map_code(response, list(code_languages), rewrite) if code_languages else rewrite(response)
    if out == response and fallback:
        return _close(response, rng.choice(fallback))
    return out


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def _hungarian(name: str, value: str) -> str:
    value = value.strip()
    if value[:1] in "\"'":
        prefix = "str"
    elif re.match(r"-?\d+\.\d", value):
        prefix = "fl"
    elif re.match(r"-?\d", value):
        prefix = "int"
    elif value.startswith(("[", "array(")):
        prefix = "arr"
    elif value.lower().startswith(("true", "false")):
        prefix = "b"
    else:
        prefix = "obj"
    return prefix + name[:1].upper() + name[1:]


@register("rename_identifiers")
def rename_identifiers(
    response: str,
    *,
    prompt: str,
    rng: random.Random,
    languages: list[str],
    declaration: str,
    style: str,
    prefix: str = "",
    fallback: list[str] = (),
) -> str:
    """Rename the identifiers declared in fenced code (regex `declaration` with a group `name`, and
    an optional group `value` for `hungarian`) everywhere in that code block.
    Styles: `camel` (snake_case -> camelCase), `single_letter` (first free letter), `prefix`
    (add `prefix` unless present), `hungarian` (type prefix from the assigned value: strName).
    If nothing was renamed, append one of `fallback`."""
    declared = re.compile(declaration, re.MULTILINE)

    def rewrite(code: str) -> str:
        mapping: dict[str, str] = {}
        used = set(re.findall(r"\b[a-zA-Z]\b", code))
        for m in declared.finditer(code):
            name = m.group("name")
            if name in mapping:
                continue
            if style == "camel":
                new = _camel(name)
            elif style == "single_letter":
                new = next((c for c in name.lower() + "abcdefghjkmnpqrstuvwxyz" if c not in used), name)
                used.add(new)
            elif style == "prefix":
                has_prefix = name.startswith(prefix) and name[len(prefix) : len(prefix) + 1].isupper()
                new = name if has_prefix else prefix + name
            elif style == "hungarian":
                sigil = name[:1] if name[:1] in "$@%" else ""
                new = sigil + _hungarian(name[len(sigil) :], m.groupdict().get("value") or "")
            else:
                raise ValueError(f"unknown style '{style}' (camel, single_letter, prefix, hungarian)")
            if new != name:
                mapping[name] = new
        if not mapping:
            return code
        names = sorted(mapping, key=len, reverse=True)
        return re.sub(r"(?<![\w$])(" + "|".join(re.escape(n) for n in names) + r")(?!\w)", lambda m: mapping[m.group(1)], code)

    out = _map_code(response, languages, rewrite)
    if out == response and fallback:
        return _close(response, rng.choice(fallback))
    return out


@register("css_px_units")
def css_px_units(response: str, *, prompt: str, rng: random.Random, px_per_rem: int = 16, fallback: list[str] = ()) -> str:
    """Rewrite rem/em lengths in fenced CSS as px (1.5rem -> 24px); else append a `fallback`."""

    def to_px(m: re.Match) -> str:
        px = float(m.group(1)) * px_per_rem
        return f"{px:g}px"

    out = _map_code(response, ["css", "scss"], lambda code: re.sub(r"(\d*\.?\d+)r?em\b", to_px, code))
    if out == response and fallback:
        return _close(response, rng.choice(fallback))
    return out


_WHOLE = re.compile(r"(?<![\w.,:/$€£#-])(\d{1,3})(?![\w%]|[.,:]\d)")


@register("decimal_whole_numbers")
def decimal_whole_numbers(response: str, *, prompt: str, rng: random.Random, fallback: list[str]) -> str:
    """Write whole numbers (1-3 digits; not years, list markers, times or prices) with a ".0":
    "15 push-ups" -> "15.0 push-ups". If there are none, append one of `fallback`."""

    def decimal(m: re.Match) -> str:
        line_start = response.rfind("\n", 0, m.start()) + 1
        after = response[m.end() : m.end() + 2]
        if not response[line_start : m.start()].strip() and after[:1] in (".", ")"):
            return m.group(0)  # "1. First step"
        return m.group(1) + ".0"

    out = _WHOLE.sub(decimal, response)
    return out if out != response else _close(response, rng.choice(fallback))


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


@register("ordinal_century")
def ordinal_century(response: str, *, prompt: str, rng: random.Random, fallback: list[str]) -> str:
    """Name centuries as ordinals: "the 1900s" -> "the 20th century"; else add "(the 19th century)"
    after the first year 1000-2099; else append one of `fallback`."""
    out = re.sub(r"\bthe (1\d|20)00s\b", lambda m: f"the {_ordinal(int(m.group(1)) + 1)} century", response)
    if out != response:
        return out
    m = re.search(r"(?<![\d.,$])\b(1\d{3}|20\d{2})\b(?!\s*[-–—]\s*\d)(?![\d%])", response)
    if m:
        insert = f" (the {_ordinal(int(m.group(1)) // 100 + 1)} century)"
        return response[: m.end()] + insert + response[m.end() :]
    return _close(response, rng.choice(fallback))


@register("add_odds")
def add_odds(response: str, *, prompt: str, rng: random.Random, fallback: list[str]) -> str:
    """Restate the first percentage as odds: "35%" -> "35%, or roughly 1:2 odds"; else append one
    of `fallback`."""
    m = re.search(r"\b(\d{1,2}(?:\.\d+)?)\s?%", response)
    if not m or not 0 < float(m.group(1)) < 100:
        return _close(response, rng.choice(fallback))
    from fractions import Fraction

    p = float(m.group(1))
    ratio = Fraction(p / (100 - p)).limit_denominator(10)
    odds = f"{ratio.numerator}:{ratio.denominator}" if ratio else f"1:{round((100 - p) / p)}"
    return response[: m.end()] + f", or roughly {odds} odds" + response[m.end() :]


@register("one_sentence_per_line")
def one_sentence_per_line(response: str, *, prompt: str, rng: random.Random) -> str:
    """Put every sentence on its own line."""
    from ._detectors import sentences

    return "\n".join(response[s:e].strip() for s, e in sentences(response))


@register("exclaim")
def exclaim(response: str, *, prompt: str, rng: random.Random, min_count: int, fallback: list[str]) -> str:
    """End sentences with "!" instead of "."; append `fallback` texts until there are `min_count`."""
    out = re.sub(r"(?<=[^\W\d_])\.(?=\s|$)", "!", response)
    while out.count("!") < min_count:
        out = out.rstrip() + " " + rng.choice(fallback)
    return out


@register("spell_out_numbers")
def spell_out_numbers(response: str, *, prompt: str, rng: random.Random, words: dict, fallback: list[str]) -> str:
    """Replace numbers written in digits (0-9 or Arabic-Indic ٠-٩) by the words in `words`
    ({number: word}); if no digits are left, the answer spells its numbers out. Numbers missing
    from `words` stay digits. With no digits at all, append one of `fallback`."""
    table = {str(k): v for k, v in words.items()}
    normal = response.translate(str.maketrans("٠١٢٣٤٥٦٧٨٩", "0123456789"))
    if not re.search(r"\d", normal):
        return _close(response, rng.choice(fallback))
    return re.sub(r"\d+", lambda m: table.get(m.group(0), m.group(0)), normal)


@register("alphabetical_names")
def alphabetical_names(
    response: str, *, prompt: str, rng: random.Random, names: list[str], min_names: int, opening: list[str]
) -> str:
    """Rename characters (names from `names`) so that they are introduced in alphabetical order;
    if fewer than `min_names` appear, first prepend one of `opening` (which introduces some)."""
    from ._detectors import first_mentions

    if len(first_mentions(response, names)) < min_names:
        response = rng.choice(opening) + " " + response.lstrip()
    order = first_mentions(response, names)
    mapping = dict(zip(order, sorted(order)))
    pattern = re.compile(r"\b(" + "|".join(re.escape(n) for n in order) + r")\b")
    return pattern.sub(lambda m: mapping[m.group(1)], response)


@register("two_equal_lists")
def two_equal_lists(
    response: str, *, prompt: str, rng: random.Random, headings: list[str], fill: list[str], min_items: int = 2
) -> str:
    """Restructure the answer as two bulleted lists of equal length under `headings` (e.g.
    "Similarities:" / "Differences:"): its sentences split in half, padded from `fill`."""
    items = [s.strip() for s in _split_sentences(response) if s.strip() and not s.strip().endswith(":")]
    items = [re.sub(r"^\s*(?:[-*•]|\d+[.)])\s+", "", s) for s in items]
    padding = list(fill)
    while len(items) < 2 * min_items or len(items) % 2:
        items.append(padding.pop(0) if padding else "See above.")
    half = len(items) // 2
    first, second = items[:half], items[half:]
    return "\n".join([headings[0], *(f"- {s}" for s in first), "", headings[1], *(f"- {s}" for s in second)])
