"""Typed errors. Library code raises these; only the CLI turns them into exit codes."""

from __future__ import annotations

from dataclasses import dataclass


class SpilloverError(Exception):
    """An error meant for people: its message says what is wrong and how to fix it."""

    exit_code = 1


@dataclass(frozen=True)
class Problem:
    """One problem with a user's input: where it is, what is wrong, how to fix it."""

    file: str
    field: str
    message: str
    fix: str = ""

    def __str__(self) -> str:
        fix = f" (fix: {self.fix})" if self.fix else ""
        return ": ".join(part for part in (self.file, self.field, self.message) if part) + fix


class BadInputError(SpilloverError):
    """A user's file, option or spec is wrong. Carries one Problem per thing to fix."""

    exit_code = 2

    def __init__(self, problems: list[Problem] | Problem | str):
        if isinstance(problems, str):
            problems = [Problem(file="", field="", message=problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ModelLoadError(SpilloverError):
    """A model spec could not be resolved to weights on this machine."""

    exit_code = 2


class TrainingDivergedError(SpilloverError):
    """The loss (or the weights) stopped being finite: the run is stopped, and nothing is marked done."""

    exit_code = 2
