"""The `spillover` command line: a thin typer app over the library.

Each command group lives in its own module with a `register(app)` function; this module only
assembles them and turns errors into exit codes (docs/errors.md): 0 success, 2 any error a person
can fix (one line each: `error: FILE: FIELD: message (fix: ...)`), 130 Ctrl-C, 1 an internal bug
(a traceback).
"""

from __future__ import annotations

import sys

import typer
from typer.core import TyperGroup

from spillover.errors import SpilloverError

from . import (
    _audit,
    _data,
    _docs,
    _em,
    _eval,
    _hits,
    _model,
    _run,
    _serve,
    _sweep,
    _train,
    _world,
)

INTERRUPTED = 130  # the shell's code for a process stopped by SIGINT


class _Group(TyperGroup):
    """The top-level group: every command runs inside its `invoke`, so this is where spillover's
    typed errors become one line each and an exit code, for the installed script and CliRunner alike."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SpilloverError as e:
            for line in str(e).splitlines():
                typer.echo(f"error: {line}", err=True)
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("error: interrupted (Ctrl-C); finished files are kept, and `run` and `train` resume where they stopped when rerun", err=True)
            raise typer.Exit(INTERRUPTED) from None


# Plain click help: typer's rich panels print every flag as `--quick <bool>`, as if it took a value.
app = typer.Typer(cls=_Group, no_args_is_help=True, add_completion=False, rich_markup_mode=None, help="Build and audit model organisms of out-of-context generalization.")

# Order is the order of the pipeline, which is the order `spillover --help` lists them in.
for module in (_model, _world, _docs, _data, _em, _train, _eval, _run, _hits, _sweep, _audit, _serve):
    module.register(app)


def _usage_error(e: typer.TyperException) -> int:
    """Click's errors (typer ships its own copy of click, whose exceptions derive from
    typer.TyperException): the command's usage line, then one `error:` line. Exit 2."""
    ctx = getattr(e, "ctx", None)
    if type(e).__name__ == "NoArgsIsHelpError":  # its message is the help text
        e.show()
        return 2
    if ctx is not None:
        typer.echo(ctx.get_usage(), err=True)
    message = " ".join(e.format_message().split())
    fix = f" (fix: see '{ctx.command_path} --help')" if ctx is not None else ""
    typer.echo(f"error: {message}{fix}", err=True)
    return 2


def main() -> None:
    """The `spillover` script. `standalone_mode=False` hands click's errors to us instead of
    typer's boxed panel, and returns the code of any `typer.Exit` (Ctrl-C arrives as Exit(130))."""
    try:
        code = app(standalone_mode=False)
    except typer.TyperException as e:
        code = _usage_error(e)
    except typer.Abort:
        typer.echo("error: aborted", err=True)
        code = INTERRUPTED
    except KeyboardInterrupt:  # while parsing, before any command runs
        typer.echo("error: interrupted (Ctrl-C)", err=True)
        code = INTERRUPTED
    sys.exit(code if isinstance(code, int) else 0)
