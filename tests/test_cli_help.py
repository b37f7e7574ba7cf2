"""Every command's --help: each option and argument says what it is, and flags read as flags."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from spillover.cli import app


def commands(group, path: tuple[str, ...] = ()):
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):  # a command group (typer's own click classes)
            yield from commands(cmd, (*path, name))
        else:
            yield (*path, name), cmd


ALL = list(commands(typer.main.get_command(app)))


def test_the_walk_finds_every_command_group():
    assert {p[0] for p, _ in ALL} >= {"model", "world", "docs", "data", "train", "eval", "run", "sweep", "audit", "serve"}
    assert ("world", "init") in {p for p, _ in ALL}


@pytest.mark.parametrize(("path", "cmd"), ALL, ids=[" ".join(p) for p, _ in ALL])
def test_every_option_has_help_and_flags_take_no_value(path, cmd):
    for param in cmd.params:
        assert (getattr(param, "help", None) or "").strip(), f"spillover {' '.join(path)}: {param.name} has no help text"
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output, result.output  # `--quick`, not `--quick <bool>`
