from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from spillover.world import DEFAULT_SPLIT, list_worlds, load_world, write_world_template

world_app = typer.Typer(no_args_is_help=True, help="List, show, validate and start worlds.")


@world_app.command("list")
def list_cmd() -> None:
    """Built-in worlds."""
    for name in list_worlds():
        w = load_world(name)
        print(f"{name}\t{len(w.behaviours)} behaviours\tsplits: {', '.join(w.split_names)}")


def world_summary(name_or_path: str) -> dict:
    w = load_world(name_or_path)
    return {
        "name": w.name,
        "source": w.source,
        "behaviours": [
            {
                "id": b.id,
                "domain": b.domain,
                "direction": b.direction,
                "detector": b.detector.name,
                "description": b.description,
                "n_train_prompts": len(w.train_prompts(b.id)),
                "n_eval_prompts": len(w.eval_prompts(b.id)),
                "n_positive_examples": len(b.examples.positive),
                "n_negative_examples": len(b.examples.negative),
            }
            for b in w.behaviours
        ],
        "splits": {name: w.test_ids(name) for name in w.split_names},
        "split_behaviours": {name: list(w.roles(name)) for name in w.split_names},
    }


@world_app.command("show")
def show(
    world: str = typer.Argument(..., help="A built-in world name or a YAML path."),
    split: str = typer.Option(DEFAULT_SPLIT, "--split", help="Whose roles to show in the table."),
    as_json: bool = typer.Option(False, "--json", help="Print the world's summary as JSON."),
) -> None:
    """A table of behaviours: id, domain, split role, detector, #train/#eval prompts."""
    data = world_summary(world)
    if as_json:
        print(json.dumps(data, indent=2))
        return
    roles = load_world(world).roles(split)
    table = Table(title=f"world {data['name']} — split '{split}'")
    for col in ("id", "domain", "direction", "role", "detector", "#train", "#eval", "+/- examples"):
        table.add_column(col)
    for b in data["behaviours"]:
        table.add_row(
            b["id"], b["domain"], b["direction"], roles.get(b["id"], "—"), b["detector"],
            str(b["n_train_prompts"]), str(b["n_eval_prompts"]), f"{b['n_positive_examples']}/{b['n_negative_examples']}",
        )
    Console().print(table)


@world_app.command("validate")
def validate(path: str = typer.Argument(..., help="A world YAML path (or a built-in world name).")) -> None:
    """Check a world file; prints one line per problem and exits 2 if any."""
    w = load_world(path)
    print(f"ok: {w.source}: {len(w.behaviours)} behaviours, splits {', '.join(w.split_names)}")


@world_app.command("init")
def init(
    path: str = typer.Argument(..., help="Where to write the new world YAML (must not exist yet)."),
    name: str = typer.Option(None, "--name", help="The world's name (default: from the file name)."),
) -> None:
    """Write a minimal valid world (two behaviours, a default split) to edit into your own."""
    out = write_world_template(Path(path), name)
    print(f"wrote {out}: edit it, then `spillover world validate {out}`")


def register(app: typer.Typer) -> None:
    app.add_typer(world_app, name="world")
