"""Recipes: YAML files -> one frozen, fully resolved, hashed `Recipe`.

The schema is a tree of dataclasses (nanoGPT keeps its config the same way): the field names, types,
defaults and allowed ranges below are the whole contract. Loading goes
    YAML (safe) -> `extends:` chain deep-merged -> `--set key.path=value` overrides -> type/range checks
and every problem found is reported at once, each naming the file, the field path, the bad value and what
is allowed. Nothing here looks at the machine: `bench validate` must give the same answer everywhere.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import yaml

from bench.errors import BenchError

RECIPES_DIR = Path(__file__).resolve().parent.parent / "recipes"


def _spec(default=None, *, lo=None, hi=None, lo_open=False, doc="", factory=None):
    """A field with an allowed range; `lo_open` makes the lower bound strict (lr > 0, not >= 0)."""
    meta = {"lo": lo, "hi": hi, "lo_open": lo_open, "doc": doc}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Provenance:
    source: str = _spec("", doc="where the configuration comes from")
    reported: str = _spec("", doc="the result its authors reported, with hardware")


@dataclass(frozen=True)
class Model:
    arch: str = _spec("resnet9", doc="darknet | wrn | resnet9")
    params: dict = _spec(factory=dict, doc="keyword arguments of the architecture's builder")


@dataclass(frozen=True)
class Augmentation:
    flip: bool = True
    pad: int = _spec(4, lo=0, hi=16, doc="pixels of padding before the random crop; 0 = no crop")
    pad_mode: Literal["reflect", "zeros"] = "reflect"


@dataclass(frozen=True)
class Data:
    source: str = _spec("cifar10", doc="'cifar10' (official archive) or a path to an image folder / archive")
    loader: Literal["device", "dali", "torch", "synthetic"] = "device"
    batch_size: int = _spec(512, lo=1, hi=65536, doc="per device (per process)")
    eval_batch_size: int = _spec(1024, lo=1, hi=65536)
    train_subset: Optional[int] = _spec(None, lo=1, doc="use this many training images (fixed draw)")
    test_subset: Optional[int] = _spec(None, lo=1, doc="evaluate on this many test images (fixed draw)")
    workers: int = _spec(2, lo=0, hi=256, doc="worker processes of the torch loader")
    augment: Augmentation = _spec(factory=Augmentation)


@dataclass(frozen=True)
class Schedule:
    kind: Literal["one_cycle", "linear", "constant"] = "one_cycle"
    div: float = _spec(20.0, lo=1.0, doc="one_cycle: lr starts and ends the cycle at lr/div")
    pct: float = _spec(20.0, lo=0.0, hi=100.0, lo_open=False, doc="one_cycle: % of steps annealing to lr/(100 div)")
    max_mom: float = _spec(0.95, lo=0.0, hi=1.0)
    min_mom: float = _spec(0.85, lo=0.0, hi=1.0)
    warmup: float = _spec(0.2, lo=0.0, hi=1.0, doc="linear: fraction of steps warming up from 0")
    final_lr: float = _spec(0.0, lo=0.0, doc="linear: lr at the last step, as a fraction of lr")


@dataclass(frozen=True)
class Optim:
    optimizer: Literal["sgd"] = "sgd"
    lr: float = _spec(0.4, lo=0.0, lo_open=True, hi=100.0)
    momentum: float = _spec(0.9, lo=0.0, hi=1.0, doc="used by schedules that do not drive momentum")
    nesterov: bool = False
    weight_decay: float = _spec(5e-4, lo=0.0, hi=1.0)
    no_decay_bn_bias: bool = _spec(True, doc="no weight decay on BatchNorm parameters and biases")
    label_smoothing: float = _spec(0.0, lo=0.0, hi=0.5)
    epochs: int = _spec(10, lo=1, hi=10000)
    schedule: Schedule = _spec(factory=Schedule)


@dataclass(frozen=True)
class Target:
    metric: Literal["test_acc"] = "test_acc"
    value: float = _spec(0.94, lo=0.0, lo_open=True, hi=1.0, doc="a fraction: 0.94 means 94%")
    eval_every: int = _spec(1, lo=1, doc="evaluate the full test set every this many epochs")


@dataclass(frozen=True)
class Hardware:
    device: Literal["auto", "cuda", "cpu"] = "auto"
    procs_per_node: int = _spec(1, lo=1, hi=1024, doc="processes (GPUs) per node")
    nodes: int = _spec(1, lo=1, hi=4096)
    sync_bn: bool = _spec(False, doc="SyncBatchNorm across processes (GPU only)")
    threads: Optional[int] = _spec(None, lo=1, hi=1024, doc="CPU threads per process; default: free cores")


@dataclass(frozen=True)
class Price:
    usd_per_gpu_hour: Optional[float] = _spec(None, lo=0.0, doc="overrides bench/prices.yaml")
    source: Optional[str] = _spec(None, doc="where the price comes from, with its date")


@dataclass(frozen=True)
class Recipe:
    name: str
    provenance: Provenance = _spec(factory=Provenance)
    model: Model = _spec(factory=Model)
    data: Data = _spec(factory=Data)
    optim: Optim = _spec(factory=Optim)
    precision: Literal["fp32", "bf16", "fp16"] = "bf16"
    memory_format: Literal["channels_last", "contiguous"] = "channels_last"
    compile: bool = False
    warmup_steps: int = _spec(3, lo=0, hi=1000, doc="training steps on random data before run_start, undone "
                              "afterwards: cuDNN autotuning and compilation belong to init")
    target: Target = _spec(factory=Target)
    hardware: Hardware = _spec(factory=Hardware)
    runs: int = _spec(1, lo=1, hi=1000)
    seed: int = _spec(0, lo=0, hi=2**31 - 1)
    price: Price = _spec(factory=Price)
    description: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def hash(self) -> str:
        """Hash of everything that changes what a run measures; `runs` (how many) is left out."""
        d = self.to_dict()
        d.pop("runs")
        blob = json.dumps(d, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def world_size(self) -> int:
        return self.hardware.procs_per_node * self.hardware.nodes


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
        text = path.read_text()
    except OSError as exc:
        raise BenchError(f"{path}: cannot read recipe: {exc.strerror}") from None
    data = parse_yaml(text, str(path))
    if data is None:
        data = {}
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
    for folder in (child.parent, RECIPES_DIR):
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
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise BenchError(f"{path}: extends: {parent!r} is not a recipe name; allowed: one name, e.g. extends: resnet9")
    return deep_merge(load_raw(_find_parent(parent, path), (*_chain, path)), data)


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


# ---------------------------------------------------------------- validation


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin is typing.Union:
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _range_text(meta: dict) -> str:
    lo, hi = meta.get("lo"), meta.get("hi")
    parts = []
    if lo is not None:
        parts.append(f"{'>' if meta.get('lo_open') else '>='} {lo}")
    if hi is not None:
        parts.append(f"<= {hi}")
    return " and ".join(parts)


def _check_value(tp, value, where: str, meta: dict, errors: list[str]):
    origin = typing.get_origin(tp)
    if origin is typing.Union:
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = next(a for a in args if a is not type(None))
        return _check_value(inner, value, where, meta, errors)
    if origin is Literal:
        if value not in typing.get_args(tp):
            errors.append(f"{where}: {value!r} is not allowed; allowed: {_type_name(tp)}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            errors.append(f"{where}: expected a mapping of {_type_name(tp)} fields, got {value!r}")
            return tp()
        return _build(tp, value, where, errors)
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
        dict: isinstance(value, dict),
    }.get(tp, True)
    if not ok:
        errors.append(f"{where}: {value!r} is a {type(value).__name__}; expected {_type_name(tp)}")
        return value
    if tp is float:
        value = float(value)
    lo, hi = meta.get("lo"), meta.get("hi")
    if tp in (int, float) and (
        (lo is not None and (value < lo or (meta.get("lo_open") and value == lo)))
        or (hi is not None and value > hi)
    ):
        errors.append(f"{where}: {value!r} is out of range; allowed: {_range_text(meta)}")
    return value


def _build(cls, data: dict, prefix: str, errors: list[str]):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            allowed = ", ".join(fields)
            errors.append(f"{prefix}{'.' if prefix else ''}{key}: unknown field; allowed here: {allowed}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, f in fields.items():
        where = f"{prefix}.{name}" if prefix else name
        if name in data:
            kwargs[name] = _check_value(hints[name], data[name], where, dict(f.metadata), errors)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            errors.append(f"{where}: required field is missing")
    try:
        return cls(**kwargs)
    except TypeError:
        return None  # missing required fields, already reported


def _check_cross_fields(r: Recipe, errors: list[str]) -> None:
    from bench.models import model_params  # late: keeps `bench validate` import light until needed

    try:
        allowed = model_params(r.model.arch)
    except BenchError:
        errors.append(f"model.arch: {r.model.arch!r} is not a known architecture")
        return
    for key in r.model.params:
        if key not in allowed:
            errors.append(f"model.params.{key}: unknown parameter of {r.model.arch}; "
                          f"allowed: {', '.join(allowed)}")
    s = r.optim.schedule
    if s.min_mom > s.max_mom:
        errors.append(f"optim.schedule.min_mom: {s.min_mom} is above max_mom {s.max_mom}; allowed: <= max_mom")
    if r.target.eval_every > r.optim.epochs:
        errors.append(f"target.eval_every: {r.target.eval_every} is more than optim.epochs "
                      f"{r.optim.epochs}: the target would never be checked; allowed: <= optim.epochs")


def from_dict(data: dict, where: str = "<recipe>") -> Recipe:
    errors: list[str] = []
    recipe = _build(Recipe, data, "", errors)
    if recipe is not None and not errors:
        _check_cross_fields(recipe, errors)
    if errors:
        lines = "\n".join(f"  {e}" for e in errors)
        raise BenchError(f"{where}: invalid recipe ({len(errors)} problem{'s' * (len(errors) > 1)}):\n{lines}")
    return recipe


def resolve_path(name_or_path: str) -> Path:
    """`wrn22`, `recipes/wrn22.yaml` and `/abs/x.yaml` all name a recipe file."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    for c in (RECIPES_DIR / name_or_path, RECIPES_DIR / f"{name_or_path}.yaml"):
        if c.is_file():
            return c
    known = ", ".join(sorted(q.stem for q in RECIPES_DIR.glob("*.yaml"))) if RECIPES_DIR.is_dir() else ""
    raise BenchError(f"recipe {name_or_path!r} not found (neither a file nor a name in {RECIPES_DIR}); "
                     f"known recipes: {known}")


def load(name_or_path: str | Path, overrides: list[str] = ()) -> Recipe:
    path = resolve_path(str(name_or_path))
    data = load_raw(path)
    data = apply_overrides(data, list(overrides))
    where = str(path) + (f" (with --set {' '.join(overrides)})" if overrides else "")
    return from_dict(data, where)


def family_files(spec: str) -> list[Path]:
    """The recipe files of a family, sorted: a family name ("wrn" -> recipes/wrn/), a folder, or a glob.

    Files whose names start with "_" are the bases the members extend, not members, so they are left out
    unless the glob itself names them (e.g. "recipes/wrn/_*.yaml")."""
    import glob as _glob

    def members(paths, keep_underscore: bool = False) -> list[Path]:
        return sorted({Path(p) for p in paths
                       if Path(p).is_file() and Path(p).suffix in (".yaml", ".yml")
                       and (keep_underscore or not Path(p).name.startswith("_"))})

    given = Path(spec).expanduser()
    for folder in (given, RECIPES_DIR / spec):
        if folder.is_dir():
            found = members(folder.glob("*.y*ml"))
            if found:
                return found
    if _glob.has_magic(spec):
        keep = Path(spec).name.startswith("_")
        roots = [Path.cwd()] if given.is_absolute() else [Path.cwd(), RECIPES_DIR.parent]
        for root in roots:
            found = members(_glob.glob(str(root / spec)), keep_underscore=keep)
            if found:
                return found
    families = sorted(d.name for d in RECIPES_DIR.iterdir()
                      if d.is_dir() and any(d.glob("*.y*ml"))) if RECIPES_DIR.is_dir() else []
    raise BenchError(f"recipe family {spec!r}: no recipe files found (as a family name under {RECIPES_DIR}, "
                     f"a folder, or a glob); known families: {', '.join(families) or 'none'}")
