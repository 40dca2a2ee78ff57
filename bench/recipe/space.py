"""A search space for `bench tune`: which recipe fields a trial may change, and how each is drawn.

Declared in a recipe's `tune:` section (inherited through `extends:` like any field) or, for a whole family,
in a `tune.yaml` beside its recipes; the recipe's own entries replace the family's, and `null` removes one:

    tune:
      optim.lr: {log_uniform: [0.05, 3.0]}       # floats, drawn on a log scale
      optim.weight_decay: {uniform: [0, 1e-3]}   # floats, evenly
      optim.epochs: {int: [6, 12]}               # integers, both ends included
      optim.label_smoothing: {choice: [0.0, 0.2]}

A dimension's path is anything `--set` reaches. Each end of a range and each choice is applied to the recipe
as a `--set` would be and validated with the recipe's own rules, so a space whose ends a builder would refuse
is refused before any trial starts, with every problem listed at once. The space is hashed (`SearchSpace.hash`):
it is part of a tuned result's identity, as the recipe is.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from bench.core.errors import BenchError

KINDS = ("log_uniform", "uniform", "int", "log_int", "choice")
EXAMPLE = "optim.lr: {log_uniform: [0.05, 3.0]}"


@dataclass(frozen=True)
class Dimension:
    path: str  # a dotted recipe field, as --set names it
    kind: str  # one of KINDS
    low: Any = None
    high: Any = None
    choices: tuple = ()

    def ends(self) -> list:
        """The values a trial can take at the edges: every one must be a legal value of the field."""
        return list(self.choices) if self.kind == "choice" else [self.low, self.high]

    def to_dict(self) -> dict:
        return {self.kind: list(self.choices) if self.kind == "choice" else [self.low, self.high]}

    def describe(self) -> str:
        if self.kind == "choice":
            return f"{self.path} in {list(self.choices)}"
        return f"{self.path} {self.kind} [{self.low:g}, {self.high:g}]"


@dataclass(frozen=True)
class SearchSpace:
    dims: tuple[Dimension, ...]
    sources: tuple[str, ...]  # the files it was read from, family file first

    def to_dict(self) -> dict:
        return {d.path: d.to_dict() for d in self.dims}

    @property
    def hash(self) -> str:
        """Of the dimensions only (sorted, canonical JSON): where they were written down does not matter."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def paths(self) -> list[str]:
        return [d.path for d in self.dims]


# ---------------------------------------------------------------- one entry -> one Dimension


def _number(value, where: str, integer: bool, problems: list[str]) -> Optional[float]:
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or (isinstance(value, float) and not math.isfinite(value)):
        problems.append(f"{where}: {value!r} is not {'an integer' if integer else 'a finite number'}")
        return None
    return value


def parse_dimension(path: str, spec: Any, where: str, problems: list[str]) -> Optional[Dimension]:
    here = f"{where}: tune.{path}"
    if not isinstance(spec, dict) or len(spec) != 1:
        problems.append(f"{here}: {spec!r} is not a distribution; allowed: one of {', '.join(KINDS)} as a mapping, "
                        f"e.g. {EXAMPLE}")
        return None
    (kind, value), = spec.items()
    if kind not in KINDS:
        problems.append(f"{here}: {kind!r} is not a distribution; allowed: {', '.join(KINDS)}")
        return None
    if kind == "choice":
        if not isinstance(value, list) or not value:
            problems.append(f"{here}.choice: {value!r}; allowed: a non-empty list of values, e.g. [0.0, 0.2]")
            return None
        if len({json.dumps(v, sort_keys=True) for v in value}) != len(value):
            problems.append(f"{here}.choice: {value!r} names a value twice; list each once")
            return None
        return Dimension(path, kind, choices=tuple(value))
    if not isinstance(value, list) or len(value) != 2:
        problems.append(f"{here}.{kind}: {value!r}; allowed: [low, high], e.g. {kind}: "
                        f"{[1, 10] if 'int' in kind else [0.05, 3.0]}")
        return None
    integer = kind in ("int", "log_int")
    low, high = (_number(v, f"{here}.{kind}", integer, problems) for v in value)
    if low is None or high is None:
        return None
    if low >= high:
        problems.append(f"{here}.{kind}: low {low!r} is not below high {high!r}; allowed: low < high "
                        f"(a field that should not vary belongs in the recipe, not the space)")
        return None
    if kind.startswith("log_") and low <= 0:
        problems.append(f"{here}.{kind}: low {low!r}; a log scale needs low > 0 (use uniform for a range from 0)")
        return None
    return Dimension(path, kind, float(low) if not integer else low, float(high) if not integer else high)


def parse_space(entries: Any, where: str, problems: list[str]) -> list[Dimension]:
    if not isinstance(entries, dict):
        problems.append(f"{where}: tune: {entries!r} is not a mapping of field paths to distributions, e.g. "
                        f"tune: {{{EXAMPLE}}}")
        return []
    dims = []
    for path, spec in entries.items():
        if not isinstance(path, str) or not path or not all(path.split(".")):
            problems.append(f"{where}: tune: {path!r} is not a field path; write it as --set does, e.g. optim.lr")
            continue
        d = parse_dimension(path, spec, where, problems)
        if d is not None:
            dims.append(d)
    return dims


# ---------------------------------------------------------------- where a space comes from


def family_file(recipe_path: Path) -> Optional[Path]:
    from bench.recipe.files import SPACE_FILES

    for name in SPACE_FILES:
        p = Path(recipe_path).resolve().parent / name
        if p.is_file():
            return p
    return None


def _read_family(path: Path) -> Any:
    from bench.recipe.files import parse_yaml

    try:
        data = parse_yaml(path.read_text(encoding="utf-8"), str(path))
    except OSError as exc:
        raise BenchError(f"{path}: cannot read the family's search space: {exc.strerror}") from None
    if isinstance(data, dict) and set(data) == {"tune"}:  # `tune:` at the top, as in a recipe, also reads
        data = data["tune"]
    return data if data is not None else {}


def merged_entries(recipe_path: Path, raw: dict) -> tuple[dict, list[str]]:
    """The family's tune.yaml with the recipe's own `tune:` over it (entry by entry; null removes one)."""
    entries, sources = {}, []
    fam = family_file(recipe_path)
    if fam is not None:
        data = _read_family(fam)
        if not isinstance(data, dict):
            raise BenchError(f"{fam}: {data!r} is not a mapping of field paths to distributions, e.g. {EXAMPLE}")
        entries.update(data)
        sources.append(str(fam))
    own = raw.get("tune")
    if own is not None:
        if not isinstance(own, dict):
            raise BenchError(f"{recipe_path}: tune: {own!r} is not a mapping of field paths to distributions, "
                             f"e.g. tune: {{{EXAMPLE}}}")
        entries.update(own)
        sources.append(str(recipe_path))
    return {k: v for k, v in entries.items() if v is not None}, sources


def check_ends(dims: list[Dimension], raw: dict, overrides: list[str], where: str, problems: list[str]) -> None:
    """Every end of every range and every choice, applied alone to the recipe (with the user's --set),
    must make a valid recipe: the same rules `bench run` applies, so no trial is refused mid-tune."""
    from bench.recipe.files import apply_overrides, deep_merge
    from bench.recipe.validation import from_dict

    base = apply_overrides({k: v for k, v in raw.items() if k != "tune"}, overrides)
    fixed = {text.partition("=")[0].strip() for text in overrides}
    for d in dims:
        if d.path in fixed:
            problems.append(f"{where}: tune.{d.path}: also fixed by --set {d.path}=...; a field is either tuned "
                            f"or set, not both: drop one")
            continue
        seen: set[str] = set()  # a field that does not exist is said once, not once per end
        for value in d.ends():
            nested: Any = value
            for key in reversed(d.path.split(".")):
                nested = {key: nested}
            try:
                from_dict(deep_merge(base, nested), where)
            except BenchError as exc:
                lines = [ln.strip() for ln in str(exc).splitlines()[1:]] or [str(exc)]
                problems.extend(f"{where}: tune.{d.path} = {value!r}: {ln}" for ln in lines if ln not in seen)
                seen.update(lines)


def load_space(recipe: str | Path, overrides: list[str] = ()) -> Optional[SearchSpace]:
    """The checked search space of a recipe (name or file), or None where it declares none."""
    from bench.recipe.files import load_raw, resolve_path

    path = resolve_path(str(recipe))
    raw = load_raw(path)
    entries, sources = merged_entries(path, raw)
    if not entries:
        return None
    problems: list[str] = []
    dims = parse_space(entries, str(path), problems)
    check_ends(dims, raw, list(overrides), str(path), problems)  # the dimensions that parsed: all problems at once
    if problems:
        raise BenchError(f"{path}: invalid search space ({len(problems)} problem{'s' * (len(problems) > 1)}):\n"
                         + "\n".join(f"  {p}" for p in problems))
    return SearchSpace(tuple(sorted(dims, key=lambda d: d.path)), tuple(sources))


def as_overrides(values: dict) -> list[str]:
    """A trial's drawn values as the --set lines that make its recipe (JSON is YAML: types survive)."""
    return [f"{path}={json.dumps(value)}" for path, value in sorted(values.items())]
