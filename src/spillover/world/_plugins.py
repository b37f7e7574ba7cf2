"""A world's `plugins:`: Python modules whose `register_detector` / `register_transform` calls add the
detectors and transforms its behaviours name.

Loading a plugin runs its code, exactly as `python plugin.py` would: it is the user's own file, named
in a world file they chose to load. Each plugin is imported once per process; a second world naming
the same file reuses it instead of registering its detectors twice.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from spillover.errors import Problem

from ._detectors import DETECTORS
from ._transforms import TRANSFORMS

_LOADED: dict[str, ModuleType] = {}  # resolved plugin file -> its module


def load_plugins(plugins: list[str], world_file: Path) -> list[Problem]:
    """Import each plugin: a `.py` path (relative to the world file) or an importable module name."""
    problems = []
    for i, entry in enumerate(plugins):
        field = f"plugins[{i}]"
        try:
            _import(entry, world_file)
        except FileNotFoundError:
            problems.append(Problem(str(world_file), field, f"no plugin file '{entry}'", "give a .py path relative to the world file, or a module name"))
        except ModuleNotFoundError as e:
            problems.append(Problem(str(world_file), field, f"cannot import '{entry}' ({e})", "install the module, or give a .py path relative to the world file"))
        except Exception as e:  # noqa: BLE001 - the plugin's own code failed: name it, never a traceback
            problems.append(Problem(str(world_file), field, f"importing '{entry}' failed: {type(e).__name__}: {e}", "fix the plugin module"))
    return problems


def _import(entry: str, world_file: Path) -> ModuleType:
    if not entry.endswith(".py"):
        return _registering(entry, lambda: importlib.import_module(entry))
    path = (world_file.parent / entry).resolve()
    if not path.is_file():
        raise FileNotFoundError(path)
    if str(path) not in _LOADED:
        name = f"spillover_world_plugin_{path.stem}_{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"
        _LOADED[str(path)] = _registering(name, lambda: _exec_file(name, path))
    return _LOADED[str(path)]


def _exec_file(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _registering(name: str, do_import) -> ModuleType:
    """Run an import; if it fails, undo whatever it registered, so fixing the file and loading again works."""
    before = set(DETECTORS), set(TRANSFORMS)
    try:
        return do_import()
    except BaseException:
        sys.modules.pop(name, None)
        for registry, known in zip((DETECTORS, TRANSFORMS), before):
            for key in set(registry) - known:
                del registry[key]
        raise
