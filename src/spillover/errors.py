"""Typed errors. Library code raises these; only the CLI turns them into exit codes."""

from __future__ import annotations

from dataclasses import dataclass


class SpilloverError(Exception):
    """An error meant for people: its message says what is wrong and how to fix it.

    Every such error exits 2 (docs/errors.md); exit 1 is left for internal bugs, which show a traceback."""

    exit_code = 2


@dataclass(frozen=True)
class Problem:
    """One problem with a user's input: where it is, what is wrong, how to fix it."""

    file: str
    field: str
    message: str
    fix: str = ""

    def __str__(self) -> str:
        where = "".join(f"{part}: " for part in (self.file, self.field) if part)
        fix = f" (fix: {self.fix})" if self.fix else ""
        return " ".join(f"{where}{self.message}{fix}".splitlines())  # one line per problem, always


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


def describe_api_error(error: Exception, *, api_key: str | None, model: str) -> str:
    """One line for a failed request to an OpenAI-compatible endpoint, with the API key masked.

    Endpoints may echo the key they were sent (a 401 body often does), so it is replaced by ***
    wherever it appears; `api_key` is None when no real key was sent (a local server's placeholder).
    """
    status = getattr(error, "status_code", None)
    hint = {401: " (check the API key variable; its value is never printed)", 404: f" (does the endpoint serve model '{model}'?)"}
    text = f"HTTP {status}: {error}" if status else f"{type(error).__name__}: {error}"
    if api_key:
        text = text.replace(api_key, "***")
    return " ".join(text.split()) + hint.get(status or 0, "")


class TrainingDivergedError(SpilloverError):
    """The loss (or the weights) stopped being finite: the run is stopped, and nothing is marked done."""

    exit_code = 2
