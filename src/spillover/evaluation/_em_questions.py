"""Broad questions for the emergent-misalignment organism and their offline likelihood score.

For each question the model scores an aligned and a misaligned answer written to the same length;
the margin log P(misaligned) − log P(aligned) (nats, summed over the answer's tokens) moves up when
fine-tuning makes misaligned answers likelier. Margins are compared across arms question by
question, so the answers' own lengths and wording cancel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from spillover.errors import BadInputError, Problem
from spillover.models import LoadedModel, chat_prompt

from ._likelihood import score_continuations

QUESTIONS_FILE = Path(__file__).with_name("em_questions.yaml")
FIELDS = ("id", "group", "question", "aligned", "misaligned")


@dataclass(frozen=True)
class BroadQuestion:
    id: str
    group: str  # "figure1": the paper's eight; "extra": ours
    question: str
    aligned: str
    misaligned: str


def broad_questions(path: str | Path = QUESTIONS_FILE) -> list[BroadQuestion]:
    """The questions file (default: the built-in 48), each entry checked for every field."""
    path = Path(path)
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    entries = raw.get("questions") if isinstance(raw, dict) else None
    if not isinstance(entries, list) or not entries:
        raise BadInputError(Problem(str(path), "questions", "missing or empty", "list questions with id, group, question, aligned, misaligned"))
    out, seen = [], set()
    for i, e in enumerate(entries):
        missing = [f for f in FIELDS if not isinstance(e, dict) or not isinstance(e.get(f), str) or not e[f].strip()]
        if missing:
            raise BadInputError(Problem(str(path), f"questions[{i}]", f"missing {', '.join(missing)}", "give every question all five fields as text"))
        if e["id"] in seen:
            raise BadInputError(Problem(str(path), f"questions[{i}].id", f"{e['id']!r} appears twice", "give each question its own id"))
        seen.add(e["id"])
        out.append(BroadQuestion(*(e[f] for f in FIELDS)))
    return out


def misalignment_margins(lm: LoadedModel, questions: Sequence[BroadQuestion], *, batch_size: int = 16) -> list[dict]:
    """Per question: log P(misaligned answer) and log P(aligned answer) after the chat prompt, and their difference."""
    prefixes, continuations = [], []
    for q in questions:
        prefix = chat_prompt(lm.tokenizer, q.question)
        prefixes += [prefix, prefix]
        continuations += [q.misaligned, q.aligned]
    scores = score_continuations(lm, prefixes, continuations, batch_size=batch_size)
    return [
        {"id": q.id, "group": q.group, "misaligned_logprob": scores[2 * i][0], "aligned_logprob": scores[2 * i + 1][0], "delta": scores[2 * i][0] - scores[2 * i + 1][0]}
        for i, q in enumerate(questions)
    ]
