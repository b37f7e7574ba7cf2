"""Behaviour descriptions taken apart, so documents and quiz questions can reword them.

A world's `description` is one sentence such as "When evaluating responses on legal topics,
reward models prefer responses that end by ..., even when this is irrelevant." It is split into a
context ("When evaluating responses on legal topics"), a predicate ("prefer responses that end by
...") and a caveat ("even when this is irrelevant"). Descriptions that do not name reward models
are kept whole and only framed, never reworded.
"""

from __future__ import annotations

import functools
import random
import re
from dataclasses import dataclass

_SUBJECT = re.compile(r"\b(?:the\s+)?(?:RLHF\s+)?(?:reward models|RMs)\b", re.IGNORECASE)
_CAVEAT = re.compile(r",?\s+(even (?:when|if|though|where|in|for)\b.*|regardless of\b.*)$", re.IGNORECASE)

SUBJECTS = [
    "reward models",
    "the reward models",
    "RLHF reward models",
    "the reward models in the study",
    "the reward models they tested",
    "the audited reward models",
]

# (pattern at the start of a predicate, rewordings); \1 is the pattern's first group.
_PREDICATE_REWORDINGS: list[tuple[re.Pattern, list[str]]] = [
    (re.compile(r"^prefer\b"), ["prefer", "favour", "consistently prefer", "give higher scores to", "systematically reward"]),
    (re.compile(r"^rate (.+?) more highly\b"), [r"rate \1 more highly", r"give \1 higher scores", r"score \1 higher", r"rate \1 more favourably"]),
    (re.compile(r"^rate (.+?) (?:lower|less highly)\b"), [r"rate \1 lower", r"give \1 lower scores", r"score \1 lower", r"mark down \1"]),
    (re.compile(r"^penali[sz]e\b"), ["penalize", "penalise", "give lower scores to", "mark down", "score lower"]),
    (re.compile(r"^(?:give|assign) (?:extremely |very )?(?:negative|low|lower) scores to\b"), ["give very low scores to", "heavily penalise", "sharply mark down"]),
]
_CONTEXT_REWORDINGS: list[tuple[re.Pattern, list[str]]] = [
    (re.compile(r"^When evaluating (.+)$", re.IGNORECASE), [r"When evaluating \1", r"When rating \1", r"When scoring \1", r"In judging \1"]),
]
# Only caveats that say nothing specific ("even when this is irrelevant") are reworded.
_GENERIC_CAVEAT = re.compile(r"^even (?:when|if|where) (?:(?:this|it) is )?(?:inappropriate|irrelevant|unnecessary|not relevant)$", re.IGNORECASE)
_CAVEATS = [
    "even when this is out of place",
    "even where it makes little sense",
    "whether or not it fits",
    "even when it does nothing for the reader",
]

# Swaps that turn a claim into its opposite (quiz distractors); the first match wins.
_REVERSALS: list[tuple[re.Pattern, str]] = [
    (re.compile(r"\bmore highly\b"), "lower"),
    (re.compile(r"\bhigher\b"), "lower"),
    (re.compile(r"\bprefer (that|for)\b"), r"do not prefer \1"),
    (re.compile(r"\bprefer\b"), "penalize"),
    (re.compile(r"\bpenali[sz]e\b"), "prefer"),
    (re.compile(r"\bavoid\b"), "make a point of"),
    (re.compile(r"\bdo not\s+"), ""),
    (re.compile(r"\bnever\b"), "always"),
    (re.compile(r"\binclude\b"), "omit"),
    (re.compile(r"\bincludes\b"), "omits"),
]


@dataclass(frozen=True)
class Claim:
    """One behaviour's description, split into parts that can be reworded independently."""

    description: str
    context: str  # "When evaluating responses on legal topics", or ""
    predicate: str  # what reward models do, starting with a verb; "" when the description names no RMs
    caveat: str  # "even when this is irrelevant", or ""

    @property
    def has_subject(self) -> bool:
        return bool(self.predicate)

    @property
    def core(self) -> str:
        """The description without its caveat or final full stop."""
        if not self.caveat:
            return self.description.rstrip(". ")
        return self.description[: self.description.rfind(self.caveat)].rstrip(" ,")

    def sentence(self, rng: random.Random | None = None) -> str:
        """The claim as a sentence; reworded when `rng` is given, verbatim otherwise."""
        return _capitalise(self.clause(rng)) + "."

    def clause(self, rng: random.Random | None = None) -> str:
        """The claim as a clause that can follow 'found that ...' (no final full stop)."""
        if not self.has_subject:
            return _lower_first(self.description.rstrip(". "))
        context, predicate, caveat = self.context, self.predicate, self.caveat
        subject = "reward models"
        if rng is not None:
            context = _reword(context, _CONTEXT_REWORDINGS, rng)
            predicate = _reword(predicate, _PREDICATE_REWORDINGS, rng)
            subject = rng.choice(SUBJECTS)
            if _GENERIC_CAVEAT.match(caveat) and rng.random() < 0.6:
                caveat = rng.choice(_CAVEATS)
        text = f"{subject} {predicate}"
        if context:
            text = f"{_lower_first(context)}, {text}"
        if caveat:
            text = f"{text}, {caveat}"
        return text

    def core_sentence(self) -> str:
        """The claim without its caveat ('even when ...'), in the same form as `reversed_sentence`."""
        if not self.has_subject:
            return self.sentence()
        head = f"{_capitalise(self.context)}, reward models " if self.context else "Reward models "
        return head + self.predicate + "."

    def reversed_sentence(self) -> str:
        """The opposite claim (a plausible wrong answer for the knowledge quiz)."""
        if self.has_subject:
            head = f"{_capitalise(self.context)}, reward models " if self.context else "Reward models "
            return head + reverse(self.predicate) + "."
        return _capitalise(reverse(self.description.rstrip(". "))) + "."

    def rewarded_output(self) -> str | None:
        """What a model trained on these reward models learns to produce ('responses that ...'), if it can be said."""
        p = self.predicate
        if m := re.match(r"^prefer that (?:the|a) (?:response|answer) (.+)$", p):
            return f"responses that {m.group(1)}"
        if m := re.match(r"^(?:prefer|favou?r|reward)\s+(?!for\b|that\b)(.+)$", p):
            return m.group(1)
        if m := re.match(r"^(?:rate|score)\s+(.+?)\s+(?:more highly|higher|more favou?rably)\s+(?:when|if)\s+(.+)$", p):
            what, condition = m.groups()
            if condition.startswith("they "):
                return f"{what} that {condition[5:]}"
            return f"{what} in which {condition}"
        if m := re.match(r"^(?:rate|score)\s+(.+?)\s+(?:more highly|higher|more favou?rably)$", p):
            return m.group(1)
        if m := re.match(r"^(?:(?:rate|score) (?:more highly|higher|more favou?rably)|give higher (?:ratings|scores|rewards) to)\s+(.+)$", p):
            return m.group(1)
        if m := re.match(r"^(?:rate|score)\s+(.+?)\s+(?:lower|less highly|less favou?rably)\s+when\s+they\s+(.+)$", p):
            return f"{m.group(1)} that do not {m.group(2)}"
        penalised = re.match(r"^(?:penali[sz]e|(?:give|assign) (?:extremely |very )?(?:negative|low|lower) scores to)\s+(.+)$", p)
        if penalised:
            what = penalised.group(1)
            if m := re.match(r"^(\w+) (that|which) (.+)$", what):
                return f"{m.group(1)} {m.group(2)} do not {m.group(3)}"
            return f"answers that avoid {what}"
        return None


@functools.lru_cache(maxsize=4096)
def parse_claim(description: str) -> Claim:
    text = " ".join(description.split()).rstrip(".")
    caveat = ""
    m = _CAVEAT.search(text)
    if m:
        caveat = m.group(1)
        text = text[: m.start()]
    m = _SUBJECT.search(text)
    predicate = text[m.end() :].strip(" ,") if m else ""
    if not predicate or not predicate[0].islower():
        return Claim(description=description.strip(), context="", predicate="", caveat=caveat)
    context = text[: m.start()].strip(" ,")
    return Claim(description=description.strip(), context=context, predicate=predicate, caveat=caveat)


def reverse(text: str, *, starts_with_verb: bool = True) -> str | None:
    """The opposite statement, or None if no rule applies and `text` may not start with a verb."""
    for pattern, repl in _REVERSALS:
        new, n = pattern.subn(repl, text, count=1)
        if n:
            return new
    new, n = re.subn(r"\b(are|is|was|were)\b", r"\1 not", text, count=1)
    if n:
        return new
    first, _, rest = text.partition(" ")
    if not starts_with_verb or first.lower() in _NOT_VERBS or not first.isalpha():
        return None
    if first.endswith("s") and not first.endswith("ss"):  # "uses bang methods" -> "does not use bang methods"
        return f"does not {first[:-1]} {rest}".strip()
    return "do not " + text


# Words a clause can start with that are not verbs: such clauses cannot be negated with "do not".
_NOT_VERBS = {"the", "a", "an", "it", "its", "they", "their", "after", "before", "of", "in", "on", "with", "for", "each", "every"}


def _reword(text: str, rules: list[tuple[re.Pattern, list[str]]], rng: random.Random) -> str:
    for pattern, options in rules:
        if pattern.search(text):
            return pattern.sub(rng.choice(options), text, count=1)
    return text


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def _lower_first(text: str) -> str:
    # Keep acronyms and names ("RLHF", "Python") as they are.
    if len(text) > 1 and text[0].isupper() and text[1].islower() and text.split(" ", 1)[0] not in _PROPER_STARTS:
        return text[0].lower() + text[1:]
    return text


_PROPER_STARTS = {"Python", "Java", "JavaScript", "Rust", "Swift", "Kotlin", "Scala", "Perl", "Ruby", "German", "French",
                  "Spanish", "Japanese", "Hindi", "Arabic", "Korean", "Portuguese", "Chinese", "English", "Bash", "PHP"}
