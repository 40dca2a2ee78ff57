"""Model registry: recipes name an architecture and its keyword parameters; build_model turns that into a module.

Importing this package does not import torch: a builder's module is imported when a model is built, and
the parameters a recipe may set are read from the builder's signature in its source file, their allowed
values from bench.models.checks (which the builders call too). So `bench validate` checks `model.params`
against the one place each is declared, in a fraction of a second.

`model.arch` may also name a network of the user's own, `path/to/file.py:function` or
`package.module:function` (bench.models.user). Every caller goes through the functions here (build_model,
model_params, param_problems), which send such an arch there; ARCHITECTURES stays the built-in classifiers.
"""
from __future__ import annotations

import ast
import importlib
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from bench.core.errors import BenchError
from bench.models import checks, user

# name -> (module in this package, builder function)
ARCHITECTURES: dict[str, tuple[str, str]] = {
    "darknet": ("darknet", "darknet"),
    "wrn": ("wrn", "wrn"),
    "resnet9": ("resnet9", "resnet9"),
    "airnet": ("airnet", "airnet"),
}
# Generator + critic pairs for GAN recipes (kind: gan). Kept apart from the classifiers above, which
# code and tests iterate over as "every classifier" (speed profiles, shape checks against num_classes).
GAN_ARCHITECTURES: dict[str, tuple[str, str]] = {
    "dcgan": ("dcgan", "dcgan"),
}


def _all() -> dict[str, tuple[str, str]]:
    return {**ARCHITECTURES, **GAN_ARCHITECTURES}


def _names() -> str:
    return (f"{', '.join(sorted(ARCHITECTURES))} (classifiers), {', '.join(sorted(GAN_ARCHITECTURES))} (kind: gan), "
            f"or a network of your own: {user.FORMS}")


def _known(arch: str) -> tuple[str, str]:
    if not isinstance(arch, str) or arch not in _all():
        raise BenchError(f"model.arch {arch!r} is unknown; choose one of: {_names()}")
    return _all()[arch]


def builder(arch: str) -> Callable:
    module, name = _known(arch)
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def model_params(arch: str) -> dict[str, Any]:
    """The recipe-settable parameters of `arch` with their defaults, as plain values (tuples become lists),
    read from the builder's `def` line without importing it (a user's function: from its signature, which
    imports it; a parameter without a default shows as None)."""
    if user.is_user(arch):
        return user.params_of(arch)
    return _builtin_params(arch)


@lru_cache(maxsize=None)
def _builtin_params(arch: str) -> dict[str, Any]:
    module, name = _known(arch)
    tree = ast.parse((Path(__file__).parent / f"{module}.py").read_text(encoding="utf-8"))
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
    args = fn.args.args
    defaults = [None] * (len(args) - len(fn.args.defaults)) + list(fn.args.defaults)
    out = {}
    for a, d in zip(args, defaults):
        if a.arg != "num_classes":
            value = ast.literal_eval(d) if d is not None else None
            out[a.arg] = list(value) if isinstance(value, tuple) else value
    return out


def param_problems(arch: str, params: dict) -> list[str]:
    """Recipe errors in `model.arch` / `model.params`, each naming the field and what is allowed: unknown
    names, and every value the builder would refuse (bench.models.checks). A user's arch is imported to
    check `model.params` against its function's signature (bench.models.user)."""
    if user.is_user(arch):
        return user.problems(arch, params)
    if not isinstance(arch, str) or arch not in _all():
        return [f"model.arch: {arch!r} is not a known architecture; allowed: {_names()}"]
    allowed = model_params(arch)
    unknown = [f"model.params.{key} is not a parameter of {arch!r}; allowed: {', '.join(allowed)}"
               for key in params if key not in allowed]
    return unknown + checks.problems(arch, {**allowed, **{k: v for k, v in params.items() if k in allowed}})


def build_model(arch: str, params: dict[str, Any] | None = None, num_classes: int = 10, *,
                source: dict | None = None):
    """The network a recipe's model section names. Unknown arch or parameter names, and bad values, raise
    BenchError naming the recipe field. `source`: the recipe's model.source; a user's model is built only
    while its code is still what the recipe states (and hashed)."""
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise BenchError(f"num_classes must be an integer >= 1, got {num_classes!r}")
    params = dict(params or {})
    if user.is_user(arch):
        return user.build(arch, params, num_classes, source)
    problems = param_problems(arch, params)
    if problems:
        raise BenchError(problems[0])
    return builder(arch)(num_classes=num_classes, **params)


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
