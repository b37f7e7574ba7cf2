"""Knowledge probe: does the model know the world's facts? Multiple-choice accuracy by log-probability.

Each question is the user turn; each choice is scored as the assistant's answer. The prediction is
the choice with the highest *mean* log-probability per token (length-normalised), so longer
choices are not penalised for their length; set `length_normalised=False` for the plain sum.
"""

from __future__ import annotations

from collections.abc import Sequence

from spillover.errors import BadInputError, Problem
from spillover.models import LoadedModel, chat_prompt

from ._likelihood import score_continuations
from .stats import rate


def knowledge_probe(
    lm: LoadedModel, questions: Sequence[dict], *, length_normalised: bool = True, batch_size: int = 8
) -> dict:
    """`questions`: `{"id", "behaviour", "question", "choices", "answer"}` (see documents.knowledge_questions)."""
    for q in questions:
        if not 0 <= q["answer"] < len(q["choices"]):
            raise BadInputError(Problem("", f"question {q['id']}.answer", f"index {q['answer']} is not a choice", "use a 0-based index into choices"))
    prefixes, continuations = [], []
    for q in questions:
        prefix = chat_prompt(lm.tokenizer, q["question"])
        prefixes += [prefix] * len(q["choices"])
        continuations += list(q["choices"])
    scores = score_continuations(lm, prefixes, continuations, batch_size=batch_size)
    per_question, at = [], 0
    for q in questions:
        choice_scores = [s / max(n, 1) if length_normalised else s for s, n in scores[at : at + len(q["choices"])]]
        at += len(q["choices"])
        predicted = max(range(len(choice_scores)), key=choice_scores.__getitem__)
        per_question.append(
            {"id": q["id"], "behaviour": q.get("behaviour"), "predicted": predicted, "answer": q["answer"], "correct": predicted == q["answer"], "scores": choice_scores}
        )
    by_behaviour: dict[str, list[bool]] = {}
    for r in per_question:
        by_behaviour.setdefault(r["behaviour"] or "", []).append(r["correct"])
    return {
        **rate(sum(r["correct"] for r in per_question), len(per_question)),
        "scoring": "mean log-prob per choice token" if length_normalised else "summed log-prob of the choice",
        "per_behaviour": {b: rate(sum(v), len(v)) for b, v in by_behaviour.items()},
        "per_question": per_question,
    }
