"""Load and validate worlds: built-in names or YAML paths. Every problem becomes one clear line."""

from __future__ import annotations

import random
import re
from functools import cached_property
from importlib import resources
from pathlib import Path

from pydantic import ValidationError

from spillover._io import atomic_write_text, named_yaml, read_yaml_mapping
from spillover.errors import BadInputError, Problem

from ._detectors import DETECTORS, Detection, run_detector
from ._plugins import load_plugins
from ._prompts import MAX_PROMPTS_PER_BEHAVIOUR, MIN_EVAL_PROMPTS, expand, expansion_size, split_prompts, template_slots
from ._schema import Behaviour, WorldSpec
from ._transforms import TRANSFORMS, apply_transform

MIN_PROMPTS = 40
MIN_EXAMPLES = 3
DEFAULT_SPLIT = "default"


class World:
    """A validated world: behaviours, their prompts (split train/eval) and detectors."""

    def __init__(self, spec: WorldSpec, source: str, prompt_prefix: str = ""):
        self.spec = spec
        self.source = source
        self.prompt_prefix = prompt_prefix
        self._by_id = {b.id: b for b in spec.behaviours}

    def with_prompt_prefix(self, prefix: str) -> World:
        """The same world whose user prompts (train and eval alike) start with `prefix`.

        An experiment's choice of prompt framing, e.g. "In two sentences, answer: " so a small model's
        answers end on their own (SFT targets are then complete answers, and eval answers are not cut
        by the token cap). Every stage reads prompts from the world, so they all see the same framing.
        """
        return self if prefix == self.prompt_prefix else World(self.spec, self.source, prefix)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def universe(self):
        return self.spec.universe

    @property
    def behaviours(self) -> list[Behaviour]:
        return self.spec.behaviours

    @property
    def ids(self) -> list[str]:
        return list(self._by_id)

    def behaviour(self, behaviour_id: str) -> Behaviour:
        try:
            return self._by_id[behaviour_id]
        except KeyError:
            raise BadInputError(f"world '{self.name}' has no behaviour '{behaviour_id}'") from None

    @cached_property
    def _splits(self) -> dict[str, tuple[list[str], list[str]]]:
        out = {}
        for b in self.behaviours:
            train, evals = split_prompts(b.id, b.prompts)
            out[b.id] = ([self.prompt_prefix + p for p in train], [self.prompt_prefix + p for p in evals])
        return out

    def train_prompts(self, behaviour_id: str) -> list[str]:
        return self._splits[behaviour_id][0]

    def eval_prompts(self, behaviour_id: str) -> list[str]:
        return self._splits[behaviour_id][1]

    def all_eval_prompts(self) -> list[str]:
        return [p for b in self.behaviours for p in self.eval_prompts(b.id)]

    def detect(self, behaviour_id: str, response: str, prompt: str | None = None) -> Detection:
        d = self.behaviour(behaviour_id).detector
        return run_detector(d.name, d.params, response, prompt)

    def apply(self, behaviour_id: str, response: str, prompt: str, seed: int = 0) -> str:
        """Apply a behaviour's transform to a plain answer (used to build post-training data)."""
        t = self.behaviour(behaviour_id).transform
        if t is None:
            raise BadInputError(f"behaviour '{behaviour_id}' has no transform; add `transform:` to the world file")
        return apply_transform(t.name, t.params, response, prompt=prompt, seed=seed)

    @property
    def split_names(self) -> list[str]:
        return list(self.spec.splits)

    def roles(self, split: str = DEFAULT_SPLIT) -> dict[str, str]:
        """{behaviour id: 'train' | 'test'} for the behaviours in play under a split.

        `split` is a named split, `random:K:SEED` (K test behaviours drawn from all of them), or
        `random:K:SEED:NAME` (drawn from the behaviours in play under split NAME).
        """
        if split.startswith("random:"):
            parts = split.split(":")
            ok = len(parts) in (3, 4) and parts[1].isdigit() and parts[2].isdigit()
            if not ok:
                raise BadInputError(f"split '{split}': use random:K:SEED or random:K:SEED:NAME, e.g. random:5:0:english-core")
            pool = self.roles(parts[3]) if len(parts) == 4 else dict.fromkeys(self.ids)
            k = int(parts[1])
            if not 0 < k < len(pool):
                raise BadInputError(f"split '{split}': K must be between 1 and {len(pool) - 1}")
            test = set(random.Random(int(parts[2])).sample(sorted(pool), k))
            return {b: ("test" if b in test else "train") for b in pool}
        if split not in self.spec.splits:
            raise BadInputError(
                f"world '{self.name}' has no split '{split}' (known: {', '.join(self.split_names)}; or random:K:SEED[:NAME])"
            )
        s = self.spec.splits[split]
        pool = s.behaviours if s.behaviours is not None else self.ids
        return {b: ("test" if b in s.test else "train") for b in pool}

    def test_ids(self, split: str = DEFAULT_SPLIT) -> list[str]:
        return [b for b, role in self.roles(split).items() if role == "test"]

    def train_ids(self, split: str = DEFAULT_SPLIT) -> list[str]:
        return [b for b, role in self.roles(split).items() if role == "train"]


def builtin_dir() -> Path:
    return Path(str(resources.files("spillover.world") / "worlds"))


def list_worlds() -> list[str]:
    return sorted(p.stem for p in builtin_dir().glob("*.yaml"))


def world_path(name_or_path: str | Path) -> Path:
    """A YAML path, or the name of a built-in world (`rm-biases`)."""
    return named_yaml(name_or_path, builtin_dir(), "world")


def write_world_template(path: Path, name: str | None = None) -> Path:
    """Write the starter world (template.yaml) to `path` under `name` (default: from the file name)."""
    name = name or re.sub(r"[^a-z0-9_-]+", "-", path.stem.lower()).strip("-_") or "my-world"
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name):
        raise BadInputError(Problem(str(path), "name", f"'{name}' is not a world name", "use lower-case letters, digits, '-' or '_'"))
    if path.suffix not in (".yaml", ".yml"):
        raise BadInputError(Problem(str(path), "", "a world file must end in .yaml", f"use {path.with_suffix('.yaml')}"))
    if path.exists():
        raise BadInputError(Problem(str(path), "", "already exists", "pass a new path (nothing was overwritten)"))
    text = (resources.files("spillover.world") / "template.yaml").read_text(encoding="utf-8")
    return atomic_write_text(path, text.replace("name: my-world", f"name: {name}", 1))


_WORLD_CACHE: dict[tuple[str, float], World] = {}


def load_world(name_or_path: str | Path) -> World:
    """Load, validate and return a world. Raises BadInputError listing every problem."""
    path = world_path(name_or_path)
    key = (str(path.resolve()), path.stat().st_mtime)
    if key not in _WORLD_CACHE:
        _WORLD_CACHE[key] = _load_uncached(path)
    return _WORLD_CACHE[key]


def _load_uncached(path: Path) -> World:
    file = str(path)
    raw = read_yaml_mapping(path, "world file", "`name:`, `universe:`, `behaviours:`, `splits:`")
    try:
        spec = WorldSpec.model_validate(raw)
    except ValidationError as e:
        raise BadInputError([_pydantic_problem(file, raw, err) for err in e.errors()]) from None
    problems = load_plugins(spec.plugins, path) or validate_world(spec, file)
    if problems:
        raise BadInputError(problems)
    return World(spec, file)


def _pydantic_problem(file: str, raw: dict, err: dict) -> Problem:
    loc = list(err["loc"])
    # Name behaviours by id rather than list index where we can.
    parts = []
    node = raw
    for item in loc:
        if isinstance(item, int) and isinstance(node, list) and item < len(node):
            node = node[item]
            ident = node.get("id") if isinstance(node, dict) else None
            parts.append(f"[{ident}]" if ident else f"[{item}]")
        else:
            node = node.get(item) if isinstance(node, dict) else None
            parts.append(f".{item}")
    field = "".join(parts).lstrip(".")
    kind = err["type"]
    fixes = {
        "missing": "add this field",
        "extra_forbidden": "remove it or check its spelling",
        "string_pattern_mismatch": "use lower_snake_case (letters, digits, underscores)",
        "literal_error": "use one of the allowed values",
        "too_short": "add more entries",
    }
    return Problem(file, field, err["msg"], fixes.get(kind, "see docs/world-format.md"))


def validate_world(spec: WorldSpec, file: str) -> list[Problem]:
    """Checks beyond the schema: ids, detectors, prompts, examples, splits, transforms."""
    problems: list[Problem] = []
    seen: set[str] = set()
    for b in spec.behaviours:
        field = f"behaviours[{b.id}]"
        if b.id in seen:
            problems.append(Problem(file, field + ".id", f"duplicate behaviour id '{b.id}'", "give each behaviour a unique id"))
        seen.add(b.id)
        problems += _check_prompts(b, file, field)
        problems += _check_detector(b, file, field)
        problems += _check_transform(b, file, field)
    ids = {b.id for b in spec.behaviours}
    if DEFAULT_SPLIT not in spec.splits:
        problems.append(Problem(file, "splits", f"no '{DEFAULT_SPLIT}' split", f"add splits.{DEFAULT_SPLIT}.test: [test behaviour ids]"))
    for name, split in spec.splits.items():
        for key, members in (("test", split.test), ("behaviours", split.behaviours or [])):
            for m in members:
                if m not in ids:
                    problems.append(Problem(file, f"splits.{name}.{key}", f"unknown behaviour '{m}'", "use ids defined under behaviours"))
            if len(set(members)) != len(members):
                problems.append(Problem(file, f"splits.{name}.{key}", "lists a behaviour twice", "list each id once"))
        if any(m not in ids for m in [*split.test, *(split.behaviours or [])]):
            continue  # reported above; the subset checks would only repeat it
        pool = set(split.behaviours) if split.behaviours is not None else ids
        if not set(split.test) <= pool:
            problems.append(Problem(file, f"splits.{name}.test", "holds out behaviours not in play", f"add them to splits.{name}.behaviours"))
        elif set(split.test) >= pool:
            problems.append(Problem(file, f"splits.{name}.test", "holds out every behaviour", "leave some behaviours for training"))
    return problems


def _check_prompts(b: Behaviour, file: str, field: str) -> list[Problem]:
    problems = []
    for t in b.prompts.templates:
        for slot in template_slots(t):
            if slot not in b.prompts.slots:
                problems.append(
                    Problem(file, f"{field}.prompts.templates", f"template uses slot '{{{slot}}}' with no values", f"add prompts.slots.{slot}: [...]")
                )
    if problems:
        return problems
    combinations = expansion_size(b.prompts)  # counted before anything is built
    if combinations > MAX_PROMPTS_PER_BEHAVIOUR:
        return [
            Problem(
                file, f"{field}.prompts.slots",
                f"templates × slot values make {combinations:,} prompts, more than the cap of {MAX_PROMPTS_PER_BEHAVIOUR:,} per behaviour",
                "use fewer or shorter slot lists (a few hundred prompts per behaviour is plenty)",
            )
        ]
    n = len(expand(b.prompts))
    if n < MIN_PROMPTS:
        problems.append(
            Problem(file, f"{field}.prompts", f"expands to {n} distinct prompts, need at least {MIN_PROMPTS}", "add templates or slot values")
        )
    elif n - MIN_EVAL_PROMPTS < 1:
        problems.append(Problem(file, f"{field}.prompts", f"too few prompts to hold out {MIN_EVAL_PROMPTS} for eval", "add prompts"))
    return problems


def _check_detector(b: Behaviour, file: str, field: str) -> list[Problem]:
    d = b.detector
    if d.name not in DETECTORS:
        return [Problem(file, f"{field}.detector.name", f"unknown detector '{d.name}'", f"use one of: {', '.join(sorted(DETECTORS))}")]
    problems = []
    for kind, n in (("positive", len(b.examples.positive)), ("negative", len(b.examples.negative))):
        if n < MIN_EXAMPLES:
            problems.append(
                Problem(file, f"{field}.examples.{kind}", f"{n} {kind} examples, need at least {MIN_EXAMPLES}", f"add labelled {kind} responses")
            )
    for expected, examples in ((True, b.examples.positive), (False, b.examples.negative)):
        for i, text in enumerate(examples):
            try:
                got = run_detector(d.name, d.params, text).exhibited
            except TypeError as e:
                return problems + [Problem(file, f"{field}.detector.params", f"bad params for '{d.name}': {e}", "check the detector's parameters")]
            except Exception as e:  # e.g. a bad regex
                return problems + [Problem(file, f"{field}.detector.params", f"detector '{d.name}' failed: {e}", "fix the detector params")]
            if got != expected:
                kind = "positive" if expected else "negative"
                problems.append(
                    Problem(
                        file,
                        f"{field}.examples.{kind}[{i}]",
                        f"detector '{d.name}' says {'not exhibited' if expected else 'exhibited'} on a {kind} example",
                        "fix the detector params or the example's label",
                    )
                )
    return problems


def _check_transform(b: Behaviour, file: str, field: str) -> list[Problem]:
    t = b.transform
    if t is None:
        return []
    if t.name not in TRANSFORMS:
        return [Problem(file, f"{field}.transform.name", f"unknown transform '{t.name}'", f"use one of: {', '.join(sorted(TRANSFORMS))}")]
    # Bad params would otherwise surface only when post-training data is built: try it now.
    sample = (b.examples.negative or ["A plain answer."])[0]
    try:
        apply_transform(t.name, t.params, sample, prompt=sample, seed=0)
    except Exception as e:
        return [Problem(file, f"{field}.transform.params", f"transform '{t.name}' failed: {e}", "check the transform's parameters (docs/world-format.md)")]
    return []
