"""Plain artifacts, written atomically: a killed process never leaves a half-written file.

Every stage writes through these helpers, so a reader (and resume) can tell finished from
unfinished: files appear complete or not at all, and a stage's `DONE` marker is written last.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

DONE_MARKER = "DONE"
LOCK_FILE = ".lock"


def atomic_write_text(path: str | Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_jsonl(path: str | Path, records: Iterable[dict]) -> Path:
    lines = [json.dumps(r, ensure_ascii=False, default=_json_default) for r in records]
    return atomic_write_text(path, "".join(line + "\n" for line in lines))


def read_jsonl(path: str | Path) -> list[dict]:
    path = Path(path)
    out = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as e:
                from spillover.errors import BadInputError, Problem

                raise BadInputError(
                    Problem(str(path), f"line {lineno}", f"not valid JSON ({e.msg})", "one JSON object per line")
                ) from None
    return out


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Build a directory under a temporary name and rename it into place when the block ends.

    If the block raises (or the process dies), `path` is untouched and the temp dir is removed
    (or left as an ignorable `.tmp-*` sibling after SIGKILL).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".tmp-{path.name}-"))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def locked_dir(path: str | Path, option: str = "--out") -> Iterator[Path]:
    """Hold `path` (created if missing) for one writer: a second process gets a BadInputError.

    An advisory `fcntl.flock` on `path/.lock`, which the kernel drops when its holder exits, so a
    killed run never leaves a stale lock behind. The holder's pid is written into the file for the
    message. A directory it created and that holds nothing else when the block ends is removed
    again (a command that failed early leaves nothing behind). Not re-entrant across file
    descriptors: lock a directory once per process.
    """
    from spillover.errors import BadInputError, Problem

    path = Path(path)
    created = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    held = False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise BadInputError(
                Problem(str(path), option, f"another spillover process (pid {holder}) is writing to this directory",
                        f"wait for it to finish, or choose another {option}")
            ) from None
        held = True
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        if held and created and path.is_dir() and [p.name for p in path.iterdir()] == [LOCK_FILE]:  # we made it and wrote nothing
            (path / LOCK_FILE).unlink()
            path.rmdir()
        os.close(fd)  # closing the descriptor releases the lock


def named_yaml(name_or_path: str | Path, builtin_dir: Path, kind: str) -> Path:
    """A YAML path as given, or the built-in `<builtin_dir>/<name>.yaml` (worlds, recipes)."""
    from spillover.errors import BadInputError, Problem

    p = Path(name_or_path).expanduser()
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise BadInputError(Problem(str(p), "", f"{kind} file not found", f"pass a built-in {kind} name or a YAML path"))
        return p
    candidate = builtin_dir / f"{name_or_path}.yaml"
    if candidate.is_file():
        return candidate
    known = ", ".join(sorted(q.stem for q in builtin_dir.glob("*.yaml"))) or "none found"
    raise BadInputError(Problem(str(name_or_path), "", f"no such {kind}", f"use a built-in {kind} ({known}) or a path to a YAML file"))


def read_yaml_mapping(path: Path, kind: str, start_hint: str) -> dict:
    """A YAML file that must hold a mapping; syntax errors name the file and line."""
    import yaml

    from spillover.errors import BadInputError, Problem

    file = str(path)
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else ""
        raise BadInputError(Problem(file, where, f"not valid YAML ({getattr(e, 'problem', e)})", "fix the YAML syntax")) from None
    if not isinstance(raw, dict):
        raise BadInputError(Problem(file, "", f"a {kind} must be a YAML mapping", f"start with {start_hint}"))
    return raw


def mark_done(stage_dir: str | Path, info: dict | None = None) -> None:
    write_json(Path(stage_dir) / DONE_MARKER, info or {})


def is_done(stage_dir: str | Path) -> bool:
    return (Path(stage_dir) / DONE_MARKER).exists()


def config_hash(obj: Any, length: int = 12) -> str:
    """A stable short hash of a JSON-able config (key order does not matter)."""
    blob = json.dumps(obj, sort_keys=True, default=_json_default, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def file_hash(path: str | Path, length: int = 12) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:length]


def derive_seed(run_seed: int, *names: str | int) -> int:
    """One seed per stage, derived from the run seed and the stage's name (stable across runs)."""
    blob = ":".join([str(run_seed), *map(str, names)])
    return int.from_bytes(hashlib.sha256(blob.encode()).digest()[:4], "little")


def _json_default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "model_dump"):
        return o.model_dump(mode="json")
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def write_jsonl_gz(path: str | Path, records: Iterable[dict]) -> Path:
    """Records as gzip-compressed JSONL (mtime 0: the same records give the same bytes), written to
    a temp file and renamed into place like every artifact here."""
    path = Path(path)
    text = "".join(json.dumps(r, ensure_ascii=False, default=_json_default) + "\n" for r in records)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(gzip.compress(text.encode("utf-8"), mtime=0))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def read_jsonl_gz(path: str | Path) -> list[dict]:
    """Records of a gzip-compressed JSONL file; a damaged one is a one-line error naming it."""
    from spillover.errors import BadInputError, Problem

    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadInputError(Problem(str(path), "", f"not gzip-compressed JSONL ({e})", "restore the file, or rerun `spillover run` to write it again")) from None
