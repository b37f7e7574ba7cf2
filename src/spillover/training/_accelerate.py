"""`accelerate launch` command lines for multi-GPU training with the shipped configs."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from spillover.errors import BadInputError, Problem

STAGES = ("cpt", "sft", "dpo")


def accelerate_configs_dir() -> Path:
    """The accelerate configs shipped inside the package (spillover/recipes/accelerate/)."""
    return Path(str(resources.files("spillover") / "recipes" / "accelerate"))


def accelerate_config(name: str) -> Path:
    """A shipped config by name (`deepspeed_zero3`, `fsdp`, `single_gpu`) or a YAML path."""
    path = Path(name).expanduser()
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path.resolve()
    shipped = accelerate_configs_dir() / f"{name}.yaml"
    if shipped.is_file():
        return shipped
    names = sorted(p.stem for p in accelerate_configs_dir().glob("*.yaml"))
    raise BadInputError(Problem(name, "config", "no such accelerate config", f"use one of {names} or a YAML path"))


def accelerate_command(config_name: str, stage: str, args: list[str], num_processes: int | None = None) -> list[str]:
    """`accelerate launch --config_file <yaml> [--num_processes N] -m spillover train <stage> <args...>`."""
    if stage not in STAGES:
        raise BadInputError(Problem(stage, "stage", "unknown training stage", f"use one of {list(STAGES)}"))
    cmd = ["accelerate", "launch", "--config_file", str(accelerate_config(config_name))]
    if num_processes is not None:
        cmd += ["--num_processes", str(num_processes)]
    return [*cmd, "-m", "spillover", "train", stage, *args]
