"""Model registry: recipes name an architecture and its keyword parameters; build_model turns that into a module."""
from __future__ import annotations

import inspect
from typing import Any, Callable

import torch.nn as nn

from bench.errors import BenchError
from bench.models.darknet import darknet
from bench.models.resnet9 import resnet9
from bench.models.wrn import wrn

ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "darknet": darknet,
    "wrn": wrn,
    "resnet9": resnet9,
}


def _builder(arch: str) -> Callable[..., nn.Module]:
    if arch not in ARCHITECTURES:
        raise BenchError(f"model.arch {arch!r} is unknown; choose one of: {', '.join(sorted(ARCHITECTURES))}")
    return ARCHITECTURES[arch]


def model_params(arch: str) -> dict[str, Any]:
    """The recipe-settable parameters of `arch` with their defaults, as plain values (tuples become lists)."""
    sig = inspect.signature(_builder(arch))
    return {name: list(p.default) if isinstance(p.default, tuple) else p.default
            for name, p in sig.parameters.items() if name != "num_classes"}


def build_model(arch: str, params: dict[str, Any] | None = None, num_classes: int = 10) -> nn.Module:
    """Unknown arch or parameter names, and bad values, raise BenchError naming the recipe field."""
    builder = _builder(arch)
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise BenchError(f"num_classes must be an integer >= 1, got {num_classes!r}")
    params = dict(params or {})
    allowed = model_params(arch)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise BenchError(f"model.params.{unknown[0]} is not a parameter of {arch!r}; "
                         f"allowed: {', '.join(allowed)}")
    return builder(num_classes=num_classes, **params)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
