"""CLI options derived from the config models, so each setting is declared once (issue 19, item 7).

A field `max_new_tokens: PositiveInt = Field(150, description=...)` becomes `--max-new-tokens`, with
the field's default, its description as help, click's type from the annotation (a bad `--epochs abc`
is a usage error) and the model's constraints checked by the model itself (`--lr inf` and `--lr 0`
are refused with one `error:` line naming the option). `@derived_options(...)` adds the options to a
typer command by rewriting its signature, as typer reads parameters from `inspect.signature`;
the command receives them as one `Given`: each value, and which ones were typed on the command line,
so a recipe's values (`--recipe`) can sit between the model's defaults and the options given.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import annotated_types
import typer
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticUndefined

from spillover._settings import option_name
from spillover.errors import BadInputError, Problem

RecipeOption = Annotated[
    str | None,
    typer.Option("--recipe", help="A recipe (built-in name or YAML; a run's recipe.yaml reproduces that run): its settings become "
                 "this command's defaults, as `spillover run` would use them. Options given here win."),
]


@dataclass(frozen=True)
class Options:
    """The options one config model contributes to a command: its fields (all, or `include`, minus
    `exclude`), each named `--field-name` unless `names` renames it (`lora_r` → `--lora`)."""

    model: type[BaseModel]
    include: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()
    names: dict[str, str] = field(default_factory=dict)

    @property
    def fields(self) -> list[str]:
        return [f for f in self.model.model_fields if (self.include is None or f in self.include) and f not in self.exclude]

    def option(self, name: str) -> str:
        return self.names.get(name, option_name(name))


@dataclass
class Given:
    """What the derived options received: every value (defaults included) and the names typed."""

    values: dict[str, Any]
    explicit: set[str]
    options: dict[str, str]  # field → its option, for error messages

    def over(self, *layers: dict[str, Any]) -> dict[str, Any]:
        """The option values: defaults, then `layers` in order (e.g. a recipe's settings), then the
        options typed on the command line, which always win."""
        merged = dict(self.values)
        for layer in layers:
            merged.update({k: v for k, v in layer.items() if k in merged})
        merged.update({k: self.values[k] for k in self.explicit})
        return merged

    def build(self, model: type[BaseModel], *layers: dict[str, Any], **fixed: Any) -> Any:
        """`model` from the merged values of its own fields (and `fixed` ones); a bad value is one
        problem per field, naming its option (exit 2)."""
        merged = {**self.over(*layers), **fixed}
        try:
            return model(**{k: v for k, v in merged.items() if k in model.model_fields})
        except ValidationError as e:
            problems = []
            for err in e.errors():
                name = str(err["loc"][0]) if err["loc"] else ""
                where = self.options.get(name, option_name(name) if name else "")
                value = f" (got {err['input']!r})" if "input" in err and not isinstance(err["input"], dict) else ""
                problems.append(Problem("", where, err["msg"].removeprefix("Value error, ") + value, "see --help"))
            raise BadInputError(problems) from None


def _optional(annotation: Any) -> tuple[Any, bool]:
    """(X, True) for `X | None`, else (annotation, False)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def _is_list(annotation: Any) -> bool:
    return typing.get_origin(annotation) is list


def _parameter(model: type[BaseModel], name: str, option: str) -> inspect.Parameter:
    info = model.model_fields[name]
    if not info.description:
        raise TypeError(f"{model.__name__}.{name} has no description: every setting needs help text")
    kind, optional = _optional(info.annotation)
    metadata = list(info.metadata)
    if typing.get_origin(kind) is Annotated:  # `PositiveInt | None`: the bounds sit inside
        metadata += [m for extra in kind.__metadata__ for m in getattr(extra, "metadata", [extra])]
        kind = kind.__origin__
    default = info.get_default(call_default_factory=True)
    required = default is PydanticUndefined
    kwargs: dict[str, Any] = {"help": info.description}
    for meta in metadata:  # integer bounds become click ranges: shown in --help, refused as usage errors
        if kind is int and isinstance(meta, annotated_types.Ge):
            kwargs["min"] = meta.ge
        if kind is int and isinstance(meta, annotated_types.Le):
            kwargs["max"] = meta.le
    decls = [option]
    if _is_list(kind):  # typer cannot take a list of choices: one comma-separated value, checked by the model
        allowed = typing.get_args(typing.get_args(kind)[0])
        kwargs["help"] += f"; comma-separated, from {', '.join(allowed)}, or 'none'"
        kind, default = str, ",".join(default) if default else "none"
    elif kind is bool:
        decls = [f"{option}/--no-{option.removeprefix('--')}"]
    elif kind is not Path and kind not in (int, float, str) and typing.get_origin(kind) is not Literal:
        raise TypeError(f"{model.__name__}.{name}: no CLI type for {kind}")
    annotation = kind | None if optional or default is None else kind
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                             default=typer.Option(... if required else default, *decls, **kwargs))


def _list_value(model_field_annotation: Any, value: Any) -> Any:
    if _is_list(_optional(model_field_annotation)[0]) and isinstance(value, str):
        items = [v.strip() for v in value.split(",") if v.strip()]
        return [] if items == ["none"] else items
    return value


def derived_options(*groups: Options) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add `groups`' options to a command `fn(..., given: Given)`; its own parameters stay in front."""
    owners: dict[str, Options] = {}
    for g in groups:
        for name in g.fields:
            if name in owners:
                raise TypeError(f"option for '{name}' derived twice")
            owners[name] = g

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        own = [p for p in inspect.signature(fn, eval_str=True).parameters.values() if p.name != "given"]
        derived = [_parameter(g.model, name, g.option(name)) for name, g in owners.items()]
        ctx = inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)
        params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + derived + [ctx]

        @functools.wraps(fn)
        def command(ctx: typer.Context, **kwargs: Any) -> Any:
            values = {name: _list_value(owners[name].model.model_fields[name].annotation, kwargs.pop(name)) for name in owners}
            explicit = {name for name in owners if getattr(ctx.get_parameter_source(name), "name", "") in ("COMMANDLINE", "ENVIRONMENT", "PROMPT")}
            return fn(**kwargs, given=Given(values, explicit, {n: g.option(n) for n, g in owners.items()}))

        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        del command.__wrapped__  # typer must read the new signature, not fn's
        return command

    return wrap

