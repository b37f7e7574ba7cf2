"""The `spillover` command line: a thin typer app over the library.

Each command group lives in its own module with a `register(app)` function; this module only
assembles them and turns spillover's typed errors into one-line messages and exit codes.
"""

from __future__ import annotations

import sys

import typer

from spillover.errors import SpilloverError

from . import _audit, _data, _docs, _em, _eval, _model, _run, _serve, _sweep, _train, _world

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Build and audit model organisms of out-of-context generalization.")

# Order is the order of the pipeline, which is the order `spillover --help` lists them in.
for module in (_model, _world, _docs, _data, _em, _train, _eval, _run, _sweep, _audit, _serve):
    module.register(app)


def main() -> None:
    try:
        app(standalone_mode=False)
    except SpilloverError as e:
        for line in str(e).splitlines():
            print(f"error: {line}", file=sys.stderr)
        sys.exit(e.exit_code)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        sys.exit(130)
    except Exception as e:  # click usage errors
        import click

        if isinstance(e, click.ClickException):
            e.show()
            sys.exit(2 if isinstance(e, click.UsageError) else 1)
        raise
