"""Where a result came from: the code, libraries and device, and a hash of the scoring code.

Stage hashes cover config; `detectors_hash` brings the code that decides what a sample exhibits
into the hashes of the stages that call it (post-training data filters, eval, probes), so a
detector fixed after a run reruns them instead of leaving stale scores cached.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import subprocess
from pathlib import Path

from spillover._io import config_hash

LIBRARIES = ("torch", "transformers", "peft")


def detectors_hash() -> str:
    """Hash of the source of every registered detector's module and of `World.detect`."""
    from spillover.world import DETECTORS, World

    sources: set[str] = set()
    for name, fn in DETECTORS.items():
        try:  # the whole module: a detector's helpers change its scores too
            sources.add(inspect.getsource(inspect.getmodule(fn)))
        except (OSError, TypeError):  # defined where no source is kept (an interactive session)
            sources.add(f"{name}: {getattr(fn, '__qualname__', repr(fn))}")
    return config_hash({"detectors": sorted(sources), "detect": inspect.getsource(World.detect)})


PACKAGE = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(PACKAGE), *args], capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def _commit() -> str | None:
    """HEAD of the checkout this package runs from; None when installed (even inside another repo)."""
    top = _git("rev-parse", "--show-toplevel")
    if not top or Path(top).resolve() / "src" / "spillover" != PACKAGE:
        return None
    return _git("rev-parse", "HEAD")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _device() -> str:
    """The device models load on by default (models.load), as this process sees it."""
    import torch

    return f"cuda: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)"


def provenance() -> dict:
    """spillover's version and git commit (None outside a checkout), library versions, device."""
    import spillover

    commit = _commit()
    return {
        "spillover": spillover.__version__,
        "commit": commit,
        "uncommitted_changes": bool(_git("status", "--porcelain", "--untracked-files=no")) if commit else None,
        "libraries": {name: _version(name) for name in LIBRARIES},
        "device": _device(),
        "detectors_hash": detectors_hash(),
    }
