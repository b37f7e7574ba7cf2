"""Numeric settings, declared once: the types every config model and library entry point uses.

Pydantic checks them, so a recipe field, a CLI option and a Python call are refused alike: no
inf, no NaN, no negative or zero token cap. Config models use the types as field annotations;
`checked` applies them to a plain function's annotated keyword arguments.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from pydantic import Field, TypeAdapter, ValidationError

from spillover.errors import BadInputError, Problem

PositiveInt = Annotated[int, Field(ge=1)]
NonNegInt = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
# A share that must stay below 1: x / (1 - x) of something else is mixed in.
FractionBelowOne = Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)]

SETTING_TYPES = (PositiveInt, NonNegInt, PositiveFloat, NonNegFloat, Fraction, FractionBelowOne)

F = TypeVar("F", bound=Callable[..., Any])


def option_name(name: str) -> str:
    """A keyword argument as the CLI option that sets it: max_new_tokens → --max-new-tokens."""
    return "--" + name.replace("_", "-")


def _setting_type(annotation: Any, namespace: dict) -> Any:
    """The annotation if it is one of SETTING_TYPES (or one of them | None), else None."""
    if isinstance(annotation, str):
        try:
            annotation = eval(annotation, namespace)  # noqa: S307 - our own source's annotations
        except (NameError, AttributeError, TypeError):  # e.g. a name imported only for type checkers: not a setting
            return None
    if annotation in SETTING_TYPES or any(a in SETTING_TYPES for a in typing.get_args(annotation)):
        return annotation
    return None


def checked(fn: F) -> F:
    """Check `fn`'s arguments annotated with a setting type on every call; a bad one is a BadInputError.

    The problem names the argument as a CLI option (`--max-new-tokens`), the way users set it.
    """
    signature = inspect.signature(fn)
    adapters = {
        name: TypeAdapter(kind)
        for name, p in signature.parameters.items()
        if (kind := _setting_type(p.annotation, fn.__globals__)) is not None
    }

    @functools.wraps(fn)
    def call(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        problems = []
        for name, adapter in adapters.items():
            if name not in bound.arguments:
                continue
            value = bound.arguments[name]
            try:
                adapter.validate_python(value)
            except ValidationError as e:
                problems.append(Problem("", option_name(name), f"{e.errors()[0]['msg']} (got {value!r})", "use a finite number in range"))
        if problems:
            raise BadInputError(problems)
        return fn(*args, **kwargs)

    return call  # type: ignore[return-value]
