"""A plain mapping -> a checked `Recipe` (bench.recipe.schema), or one error listing every problem.

`from_dict` checks each field's type and range against the schema's annotations and `_spec` metadata, then
the fields that depend on each other (kind, target, gan); each problem names the field path, the bad value
and what is allowed."""
from __future__ import annotations

import dataclasses
import math
import re
import typing
from typing import Literal

from bench.core.errors import BenchError
from bench.recipe.schema import METRICS, Optim, Recipe

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
        # Same type as well as equal: a Literal of True/False must not accept 1 and 0.
        if not any(value == a and type(value) is type(a) for a in typing.get_args(tp)):
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
        if not math.isfinite(value):  # YAML reads .nan and .inf as floats; no field means them
            errors.append(f"{where}: {value!r} is not a finite number; allowed: a finite number"
                          + (f" {_range_text(meta)}" if _range_text(meta) else ""))
            return value
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


NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def _check_cross_fields(r: Recipe, errors: list[str]) -> None:
    if not NAME.fullmatch(r.name):
        errors.append(f"name: {r.name!r} cannot name a report bundle folder; allowed: letters, digits, '_', '-' "
                      f"and '.', not starting with '.' or '-' (e.g. wrn22_k4)")
    from bench.models import param_problems  # the catalogue only: no torch

    errors += param_problems(r.model.arch, r.model.params)
    s = r.optim.schedule
    if s.min_mom > s.max_mom:
        errors.append(f"optim.schedule.min_mom: {s.min_mom} is above max_mom {s.max_mom}; allowed: <= max_mom")
    _check_target(r, errors)
    from bench.recipe.external import problems as external_problems  # kind: external, or a stray section

    errors += external_problems(r)
    if r.kind == "gan":
        _check_gan(r, errors)
    elif r.model.arch == "dcgan":
        errors.append("model.arch: 'dcgan' is a generator and critic; set kind: gan (see recipes/wgan.yaml)")
    elif r.target.metric != "test_acc":
        errors.append(f"target.metric: {r.target.metric!r} scores generated samples; a classifier's target is "
                      f"'test_acc' (or set kind: gan)")
    groups = [name for name in ("whiten", "norm", "head", "filters", "rest") if getattr(r.optim.groups, name)]
    if r.optim.optimizer == "muon_sgd" and not groups:
        errors.append("optim.groups: optimizer muon_sgd needs at least one group; allowed: whiten, norm, head, "
                      "filters, rest (e.g. optim.groups.filters: {optimizer: muon, lr: 0.24})")
    if r.optim.optimizer == "sgd" and groups:
        errors.append(f"optim.groups: {', '.join(groups)} set, but optimizer is 'sgd', which ignores groups; "
                      f"allowed: optimizer: muon_sgd, or no groups")
    if r.target.eval_every > r.optim.epochs:
        errors.append(f"target.eval_every: {r.target.eval_every} is more than optim.epochs "
                      f"{r.optim.epochs}: the target would never be checked; allowed: <= optim.epochs")


def _check_target(r: Recipe, errors: list[str]) -> None:
    t = r.target
    mode, lo, hi = METRICS[t.metric]
    if t.mode != mode:
        errors.append(f"target.mode: {t.mode!r} but {t.metric} is better when {'higher' if mode == 'max' else 'lower'}; "
                      f"allowed for {t.metric}: {mode!r}")
    if (hi is not None and t.value > hi) or t.value < lo:
        allowed = f">= {lo}" + (f" and <= {hi}" if hi is not None else "")
        unit = " (a fraction: 0.94 means 94%)" if t.metric == "test_acc" else ""
        errors.append(f"target.value: {t.value!r} is out of range for {t.metric}; allowed: {allowed}{unit}")


def _check_gan(r: Recipe, errors: list[str]) -> None:
    g = r.gan
    if r.target.metric == "test_acc":
        errors.append("target.metric: 'test_acc' means nothing for kind: gan; allowed: fd_judge (mode min), "
                      "is_judge (mode max), kid_judge (mode min)")
    if len(g.betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in g.betas):
        errors.append(f"gan.betas: {g.betas!r}; allowed: two numbers in [0, 1), e.g. [0.0, 0.9]")
    if (g.phase2_lr is None) != (g.phase2_at == 0):
        errors.append(f"gan.phase2_lr: {g.phase2_lr!r} with gan.phase2_at: {g.phase2_at!r}; allowed: both set (an lr "
                      f"and a generator iteration >= 1) or neither (null and 0)")
    unused = {f.name for f in dataclasses.fields(Optim)} - {"epochs"}
    default = Optim()
    for name in sorted(unused):
        if getattr(r.optim, name) != getattr(default, name):
            errors.append(f"optim.{name}: {getattr(r.optim, name)!r} is not used by kind: gan (it reads only "
                          f"optim.epochs); set the GAN's optimiser under gan: (optimizer, lr, betas)")
    if r.model.arch != "dcgan" and ":" not in r.model.arch:  # a function of the user's own is checked when built
        errors.append(f"model.arch: {r.model.arch!r} is a classifier; kind: gan needs 'dcgan' (or a generator and "
                      f"critic pair of your own: path/to/file.py:function or package.module:function)")


def from_dict(data: dict, where: str = "<recipe>") -> Recipe:
    errors: list[str] = []
    recipe = _build(Recipe, data, "", errors)
    if recipe is not None and not errors:
        from bench.recipe.user_model import settle  # a network of the user's own: its path and source

        recipe = settle(recipe, errors)
        _check_cross_fields(recipe, errors)
    if errors:
        lines = "\n".join(f"  {e}" for e in errors)
        raise BenchError(f"{where}: invalid recipe ({len(errors)} problem{'s' * (len(errors) > 1)}):\n{lines}")
    return recipe
