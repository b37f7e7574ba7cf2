"""Training under `accelerate launch`: the shipped configs, command lines, and a stage launched as a subprocess.

`spillover run --accelerate CONFIG` (or a recipe's `accelerate:`) trains each CPT, SFT and DPO stage
as `accelerate launch --config_file CONFIG -m spillover train from-config OUT/launch.json`: the
stage's whole config goes through a file, so every field reaches the launched processes unchanged.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from importlib import resources
from pathlib import Path

from pydantic import ValidationError

from spillover._io import write_json
from spillover.errors import BadInputError, Problem, SpilloverError

STAGES = ("cpt", "sft", "dpo")
LAUNCH_FILE = "launch.json"
# torchrun exits 1 whatever its ranks' codes: a failing rank writes its code to the file this
# variable names (`spillover train from-config` does), so a launch's 2 comes back as 2.
EXIT_FILE_ENV = "SPILLOVER_LAUNCH_EXIT_FILE"


def record_exit_code(code: int) -> None:
    """Under a launch, write a failing rank's exit code where the launcher will look for it."""
    path = os.environ.get(EXIT_FILE_ENV)
    if path:
        Path(path).write_text(f"{code}\n", encoding="utf-8")


def accelerate_configs_dir() -> Path:
    """The accelerate configs shipped inside the package (spillover/recipes/accelerate/)."""
    return Path(str(resources.files("spillover") / "recipes" / "accelerate"))


def accelerate_config(name: str) -> Path:
    """A shipped config by name (`ddp`, `deepspeed_zero3`, `fsdp`, `single_gpu`) or a YAML path."""
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


def launch_identity(name: str | None) -> dict:
    """What an accelerate config changes in a trained model, for a stage's cache key: the number of
    processes (the global batch is batch_size × grad_accum × processes) and the mixed precision it
    imposes. {} for none or one process, which trains as no launch does."""
    import yaml

    if name is None:
        return {}
    path = accelerate_config(name)
    try:
        settings = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        processes = int(settings.get("num_processes", 1))
    except (yaml.YAMLError, AttributeError, TypeError, ValueError):
        raise BadInputError(Problem(str(path), "num_processes", "not an accelerate config with a whole number of processes", "write it with `accelerate config`")) from None
    if processes <= 1:
        return {}
    return {"launch": {"processes": processes, "mixed_precision": str(settings.get("mixed_precision", "no"))}}


def _trainers() -> dict:
    from ._cpt import CPTConfig, train_cpt
    from ._dpo import DPOConfig, train_dpo
    from ._sft import SFTConfig, train_sft

    return {"cpt": (CPTConfig, train_cpt), "sft": (SFTConfig, train_sft), "dpo": (DPOConfig, train_dpo)}


def train_from_config(path: Path) -> Path:
    """Train the stage a JSON file describes: `{"stage": "cpt"|"sft"|"dpo", "config": {...}}`, the
    layout of a stage's own out/config.json (so one reruns, or resumes, that stage). Returns its out dir."""
    path = Path(path)
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadInputError(Problem(str(path), "", f"cannot read a JSON stage config ({type(e).__name__})", "pass a stage's config.json or launch.json")) from None
    stage = spec.get("stage") if isinstance(spec, dict) else None
    if stage not in STAGES:
        raise BadInputError(Problem(str(path), "stage", f"must be one of {list(STAGES)}, got {stage!r}", "pass a stage's config.json or launch.json"))
    config_cls, train = _trainers()[stage]
    try:
        cfg = config_cls.model_validate(spec.get("config"))
    except ValidationError as e:
        raise BadInputError([Problem(str(path), "config." + ".".join(map(str, err["loc"])), err["msg"]) for err in e.errors()]) from None
    return train(cfg)


class LaunchedStageFailed(SpilloverError):
    """A launched training stage exited with an error; its own message is above this one. Exits with its code."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def _free_port() -> int:
    """A loopback port free now, for the launched processes' rendezvous (two runs must not share 29500)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_stage(name: str, stage: str, cfg) -> None:
    """Train `cfg` as `accelerate launch --config_file CONFIG -m spillover train from-config OUT/launch.json`.

    The launch runs in its own session so Ctrl-C reaches it once, from here: it is passed on as
    SIGINT to the whole launch (the launcher and every rank), then re-raised (exit 130). A failed
    launch raises LaunchedStageFailed with the launch's exit code (2 stays 2); its error lines
    were already printed by the launched ranks.
    """
    config = accelerate_config(name)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    spec = write_json(out / LAUNCH_FILE, {"stage": stage, "config": cfg.model_dump(mode="json")})
    exit_file = out / "launch.exit"
    exit_file.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config), "--main_process_port", str(_free_port()),
           "-m", "spillover", "train", "from-config", str(spec)]
    proc = subprocess.Popen(cmd, start_new_session=True, env={**os.environ, EXIT_FILE_ENV: str(exit_file)})
    try:
        code = proc.wait()
    except KeyboardInterrupt:
        _stop(proc)
        raise
    if code in (130, -signal.SIGINT):
        raise KeyboardInterrupt
    if code:
        ranks = exit_file.read_text(encoding="utf-8").strip() if exit_file.exists() else ""
        code = int(ranks) if ranks.isdigit() else code
        raise LaunchedStageFailed(f"{out}: the launched {stage} stage failed (exit {code}; its error is above)", exit_code=2 if code == 2 else 1)


def _stop(proc: subprocess.Popen) -> None:
    """SIGINT to the launch's process group (launcher and ranks), SIGKILL if it has not ended in 30 s."""
    for sig, wait in ((signal.SIGINT, 30), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
