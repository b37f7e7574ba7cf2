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

from spillover.errors import BadInputError, Problem

DONE_MARKER = "DONE"
LOCK_FILE = ".lock"


def atomic_write_text(path: str | Path, text: str) -> Path:
    path = Path(path)
    if path.is_dir():
        raise BadInputError(Problem(str(path), "", "is a directory, not a file", f"pass a file path, e.g. {path / 'out.jsonl'}"))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise _unwritable(path, e) from None
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the mode open() would
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError):  # a full disk, a file that became a directory...
            raise _unwritable(path, e) from None
        raise
    return path


def make_dirs(path: str | Path) -> Path:
    """`mkdir -p`, with a one-line error naming the path when a file is in the way or permission is missing."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _unwritable(path, e) from None
    return path


def _unwritable(path: Path, e: OSError) -> BadInputError:
    why = "a file is in the way" if isinstance(e, (FileExistsError, NotADirectoryError)) else e.strerror or str(e)
    return BadInputError(Problem(str(path), "", f"cannot write here ({why}: {e.filename or path})",
                                 "choose another output path: a writable directory, with no file in the way"))


def _umask() -> int:
    """The process umask. Read from /proc where it can be: os.umask only reads it by setting it,
    and while it is set to something else another thread's files get the wrong mode."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path: str | Path) -> Any:
    """A JSON file; a corrupt or non-UTF-8 one is a one-line error naming it."""
    path = Path(path)
    try:
        return json.loads(_utf8(path, path.read_bytes(), _REWRITE_FIX))
    except json.JSONDecodeError as e:
        raise BadInputError(Problem(str(path), f"line {e.lineno}", f"not valid JSON ({e.msg})", _REWRITE_FIX)) from None


_REWRITE_FIX = "restore the file, or delete it and rerun the command that wrote it"


def _utf8(path: Path, data: bytes, fix: str, first_line: int = 1) -> str:
    """`data` decoded, or a one-line error naming the line of the first byte that is not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = first_line + data.count(b"\n", 0, e.start)
        raise BadInputError(Problem(str(path), f"line {line}", f"not UTF-8 text (byte {data[e.start]:#04x})", fix)) from None


def write_jsonl(path: str | Path, records: Iterable[dict]) -> Path:
    lines = [json.dumps(r, ensure_ascii=False, default=_json_default) for r in records]
    return atomic_write_text(path, "".join(line + "\n" for line in lines))


def read_jsonl(path: str | Path) -> list[dict]:
    """One JSON object per line (blank lines skipped); anything else is a one-line error naming the line."""
    path = Path(path)
    if path.is_dir():
        raise BadInputError(Problem(str(path), "", "is a directory, not a JSONL file", "pass the .jsonl file inside it"))
    out = []
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            line = _utf8(path, raw, "save the file as UTF-8 JSONL", first_line=lineno).strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise BadInputError(Problem(str(path), f"line {lineno}", f"not valid JSON ({e.msg})", "one JSON object per line")) from None
            if not isinstance(record, dict):
                raise BadInputError(Problem(str(path), f"line {lineno}", f"a JSON {type(record).__name__}, not an object",
                                            "one JSON object per line ({...}), not an array or a bare value"))
            out.append(record)
    return out


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Build a directory under a temporary name and rename it into place when the block ends.

    If the block raises (or the process dies), `path` is untouched and the temp dir is removed
    (or left as an ignorable `.tmp-*` sibling after SIGKILL).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".tmp-{path.name}-"))
        tmp.chmod(0o777 & ~_umask())  # mkdtemp makes 0700; give the dir the mode mkdir would
    except OSError as e:
        raise _unwritable(path, e) from None
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
    make_dirs(path)
    try:
        fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:  # a read-only directory
        raise _unwritable(path, e) from None
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

    file = str(path)
    try:
        raw = yaml.safe_load(_utf8(Path(path), Path(path).read_bytes(), f"save the {kind} as UTF-8"))
    except OSError as e:
        raise BadInputError(Problem(file, "", f"cannot read ({e.strerror})", f"pass a readable {kind}")) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else ""
        problem = " ".join(str(getattr(e, "problem", None) or e).split())  # a ReaderError has no `problem`, and str(e) spans lines
        raise BadInputError(Problem(file, where, f"not valid YAML ({problem})", "fix the YAML syntax")) from None
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
