"""Small building blocks shared by the models (the checks on recipe values are bench.models.checks)."""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

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
