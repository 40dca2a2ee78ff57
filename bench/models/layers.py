"""Small building blocks shared by the models, plus the checks that turn bad recipe values into BenchErrors."""
from __future__ import annotations

import math
from typing import Callable

import torch.nn as nn

from bench.core.errors import BenchError

Flatten = nn.Flatten


def relu() -> nn.Module:
    # In place is safe here: the activation always follows a BatchNorm, whose backward needs its
    # input and batch statistics, never its output.
    return nn.ReLU(inplace=True)


def leaky() -> nn.Module:
    return nn.LeakyReLU(0.1, inplace=True)


def conv_bn_act(ni: int, nf: int, ks: int = 3, stride: int = 1,
                act: Callable[[], nn.Module] | None = relu, bn_momentum: float = 0.1) -> nn.Sequential:
    """Conv (no bias: the BatchNorm shift replaces it) -> BatchNorm -> activation (None: no activation)."""
    layers = [nn.Conv2d(ni, nf, ks, stride=stride, padding=ks // 2, bias=False),
              nn.BatchNorm2d(nf, momentum=bn_momentum)]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


class Residual(nn.Module):
    """x + branch(x).

    The add is out of place on purpose. fast.ai's ResLayer wrote `x.add_(branch(x))`, and current torch
    rejects that in backward ("modified by an inplace operation"): x was saved by the branch's first conv
    for its weight gradient, and by the in-place activation that produced it.
    """

    def __init__(self, branch: nn.Module):
        super().__init__()
        self.branch = branch

    def forward(self, x):
        return x + self.branch(x)


class Scale(nn.Module):
    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return x * self.scale

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


# --- recipe value checks: each names the field as the recipe spells it ---------------------------------

def _fail(name: str, value, allowed: str):
    raise BenchError(f"model.params.{name} must be {allowed}, got {value!r}")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_int(name: str, value, minimum: int = 1) -> int:
    if not _is_int(value) or value < minimum:
        _fail(name, value, f"an integer >= {minimum}")
    return value


def check_number(name: str, value, ok: Callable[[float], bool] = lambda v: True,
                 allowed: str = "a number") -> float:
    if not (_is_int(value) or isinstance(value, float)) or not math.isfinite(value) or not ok(value):
        _fail(name, value, allowed)
    return float(value)


def check_int_list(name: str, value, minimum: int = 1, min_len: int = 1, length: int | None = None,
                   odd: bool = False) -> list[int]:
    allowed = (f"a list of {length if length else f'at least {min_len}'} "
               f"{'odd ' if odd else ''}integers >= {minimum}")
    if not isinstance(value, (list, tuple)) or len(value) < min_len or (length and len(value) != length):
        _fail(name, value, allowed)
    if not all(_is_int(v) and v >= minimum and (not odd or v % 2 == 1) for v in value):
        _fail(name, value, allowed)
    return list(value)
