"""Recipe files: YAML (safe) -> `extends:` chain deep-merged -> `--set key.path=value` overrides -> a
validated `Recipe` (bench.recipe.schema). Names resolve against the recipes folder (bench.core.paths), so
`wrn22`, `recipes/wrn22.yaml` and `/abs/x.yaml` all work from anywhere."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from bench.core.errors import BenchError
from bench.core.paths import missing_recipes_hint, recipes_dir
from bench.models.user import anchor
from bench.recipe.schema import Model, Recipe
from bench.recipe.validation import from_dict


# A family's search space for `bench tune` (bench.recipe.space): beside the members, never one of them.
SPACE_FILES = ("tune.yaml", "tune.yml")


# ---------------------------------------------------------------- YAML loading


class _Loader(yaml.SafeLoader):
    """Safe loader (no object construction) that also reads `1e-4` as a float: YAML 1.1 wants a dot."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d[\d_]*)?(?:\.\d*)?[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def parse_yaml(text: str, where: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise BenchError(f"{where}:{line}: YAML syntax error: {problem}") from None


def _read_yaml(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BenchError(f"{path}: not UTF-8 text (byte {exc.start} is {exc.object[exc.start:exc.start + 1]!r}); "
                         f"a recipe is a YAML text file: save it as UTF-8") from None
    except OSError as exc:
        raise BenchError(f"{path}: cannot read recipe: {exc.strerror}") from None
    data = parse_yaml(text, str(path))
    if data is None:
        # An empty file would otherwise resolve silently to every default (a ResNet-9): surely not meant.
        raise BenchError(f"{path}: empty recipe (no fields); write at least `extends: <recipe>` or the fields "
                         f"to run, e.g. copy recipes/cpu_quick.yaml")
    if not isinstance(data, dict):
        raise BenchError(f"{path}: a recipe must be a mapping of fields, got {type(data).__name__}")
    return data


def deep_merge(base: dict, over: dict) -> dict:
    """Mappings merge key by key; lists and scalars in `over` replace those in `base`."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _find_parent(name: str, child: Path) -> Path:
    candidates = []
    for folder in (child.parent, recipes_dir()):
        for stem in (name, f"{name}.yaml"):
            candidates.append(folder / stem)
    for c in candidates:
        if c.is_file():
            return c.resolve()
    looked = ", ".join(sorted({str(c.parent) for c in candidates}))
    raise BenchError(f"{child}: extends: {name!r}: no such recipe (looked in {looked}); "
                     f"name an existing recipe file, e.g. extends: resnet9")


def load_raw(path: Path, _chain: tuple[Path, ...] = ()) -> dict:
    """The recipe at `path` with its `extends:` chain merged in (parents first)."""
    path = Path(path).resolve()
    if path in _chain:
        cycle = " -> ".join(p.name for p in (*_chain, path))
        raise BenchError(f"{_chain[0]}: extends: cycle: {cycle}; remove one of these `extends:` lines")
    data = _read_yaml(path)
    data.setdefault("name", path.stem)  # a child never inherits its parent's name
    data = anchor(data, path.parent)  # a model file path is relative to the recipe file that sets it
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise BenchError(f"{path}: extends: {parent!r} is not a recipe name; allowed: one name, e.g. extends: resnet9")
    return deep_merge(_own_model(load_raw(_find_parent(parent, path), (*_chain, path)), data), data)


def _own_model(base: dict, child: dict) -> dict:
    """`base` (a parent recipe) without its model section when `child` names another model.arch: the parent's
    model.params are its architecture's arguments (cpu_quick's widths and scale are resnet9's), which a child's
    own network does not take, and its model.source describes the other code. A child that keeps the arch
    inherits them as before."""
    mine, theirs = child.get("model"), base.get("model")
    if not (isinstance(mine, dict) and "arch" in mine and isinstance(theirs, dict)):
        return base
    if mine["arch"] == theirs.get("arch", Model.arch):
        return base
    return {k: v for k, v in base.items() if k != "model"}


# ---------------------------------------------------------------- overrides


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise BenchError(f"--set {text!r}: expected key.path=value, e.g. --set optim.epochs=5")
    key, _, raw = text.partition("=")
    keys = key.strip().split(".")
    if not all(keys):
        raise BenchError(f"--set {text!r}: empty field name in {key!r}")
    return keys, parse_yaml(raw, f"--set {key}") if raw.strip() else None


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    out = dict(data)
    for text in overrides:
        keys, value = parse_override(text)
        nested: Any = value
        for k in reversed(keys):
            nested = {k: nested}
        out = deep_merge(out, nested)
    return out


def resolve_path(name_or_path: str) -> Path:
    """`wrn22`, `recipes/wrn22.yaml` and `/abs/x.yaml` all name a recipe file."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    for c in (recipes_dir() / name_or_path, recipes_dir() / f"{name_or_path}.yaml"):
        if c.is_file():
            return c
    hint = missing_recipes_hint()
    if hint:
        raise BenchError(f"recipe {name_or_path!r} not found (not a file): {hint}")
    known = ", ".join(sorted(q.stem for q in recipes_dir().glob("*.yaml")))
    raise BenchError(f"recipe {name_or_path!r} not found (neither a file nor a name in {recipes_dir()}); "
                     f"known recipes: {known}")


def load(name_or_path: str | Path, overrides: list[str] = ()) -> Recipe:
    path = resolve_path(str(name_or_path))
    data = load_raw(path)
    data.pop("tune", None)  # the search space `bench tune` draws from (bench.recipe.space), not part of one run
    data = apply_overrides(data, list(overrides))
    where = str(path) + (f" (with --set {' '.join(overrides)})" if overrides else "")
    return from_dict(data, where)


def family_files(spec: str) -> list[Path]:
    """The recipe files of a family, sorted: a family name ("wrn" -> recipes/wrn/), a folder, or a glob.

    Files whose names start with "_" are the bases the members extend, not members, so they are left out
    unless the glob itself names them (e.g. "recipes/wrn/_*.yaml"). A family's `tune.yaml` is its search
    space (bench.recipe.space), not a member."""
    import glob as _glob

    def members(paths, keep_underscore: bool = False) -> list[Path]:
        return sorted({Path(p) for p in paths
                       if Path(p).is_file() and Path(p).suffix in (".yaml", ".yml")
                       and (keep_underscore or not Path(p).name.startswith("_"))
                       and Path(p).name not in SPACE_FILES})

    given = Path(spec).expanduser()
    for folder in (given, recipes_dir() / spec):
        if folder.is_dir():
            found = members(folder.glob("*.y*ml"))
            if found:
                return found
    if _glob.has_magic(spec):
        keep = Path(spec).name.startswith("_")
        roots = [Path.cwd()] if given.is_absolute() else [Path.cwd(), recipes_dir().parent]
        for root in roots:
            found = members(_glob.glob(str(root / spec)), keep_underscore=keep)
            if found:
                return found
    families = sorted(d.name for d in recipes_dir().iterdir()
                      if d.is_dir() and any(d.glob("*.y*ml"))) if recipes_dir().is_dir() else []
    raise BenchError(f"recipe family {spec!r}: no recipe files found (as a family name under {recipes_dir()}, "
                     f"a folder, or a glob); known families: {', '.join(families) or 'none'}")
