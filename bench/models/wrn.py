"""Wide ResNet with pre-activation basic blocks, after fast.ai's wrn_22 DAWNBench entry (depth 22, width 6).

The block is fast.ai's ("Cifar10 Wideresnet for Dawn Submission", fastai 0.7 models/cifar10/wideresnet.py):
x2 = relu(bn(x)) feeds both the branch and the shortcut, a 1x1 conv when the width changes and nothing at all
when it does not, so an identity block returns branch(x2) * 0.2 + relu(bn(x)). `identity="raw"` keeps the
other common form (the shortcut adds the raw x, as in the WRN authors' code), for comparison.
"""
from __future__ import annotations

import torch.nn as nn

from bench.core.errors import BenchError
from bench.models.layers import Flatten, check_int, check_number, relu

IDENTITIES = ("preact", "raw")


def conv3x3(ni: int, nf: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(ni, nf, 3, stride=stride, padding=1, bias=False)


def branch(ni: int, nf: int, stride: int, drop: float) -> nn.Sequential:
    """conv -> (dropout) -> bn -> relu -> conv: fast.ai drops right after the first conv."""
    layers = [conv3x3(ni, nf, stride)]
    if drop > 0:
        layers.append(nn.Dropout(drop))
    return nn.Sequential(*layers, nn.BatchNorm2d(nf), relu(), conv3x3(nf, nf))


class BasicBlock(nn.Module):
    def __init__(self, ni: int, nf: int, stride: int = 1, branch_scale: float = 0.2, drop: float = 0.0,
                 identity: str = "preact"):
        super().__init__()
        self.pre = nn.Sequential(nn.BatchNorm2d(ni), relu())
        # fast.ai tests ni != nf only; a stride-2 block that keeps its width needs the conv too
        self.shortcut = nn.Conv2d(ni, nf, 1, stride=stride, bias=False) if ni != nf or stride != 1 else None
        self.branch = branch(ni, nf, stride, drop)
        # Damping the branch keeps early training stable without warm-up tricks (fast.ai used 0.2).
        self.branch_scale = branch_scale
        self.identity = identity

    def forward(self, x):
        x2 = self.pre(x)
        if self.shortcut is not None:
            shortcut = self.shortcut(x2)
        else:
            shortcut = x2 if self.identity == "preact" else x
        return shortcut + self.branch(x2) * self.branch_scale


def wrn_group(ni: int, nf: int, n: int, stride: int, branch_scale: float, drop: float, identity: str) -> nn.Sequential:
    return nn.Sequential(*[BasicBlock(ni if i == 0 else nf, nf, stride if i == 0 else 1, branch_scale, drop, identity)
                           for i in range(n)])


def wrn(num_classes: int = 10, depth: int = 22, width: int = 6, start_nf: int = 16,
        branch_scale: float = 0.2, drop: float = 0.0, identity: str = "preact") -> nn.Sequential:
    """Sequential(stem, group_0, group_1, group_2, bn, relu, pool, flatten, linear)."""
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 10 or (depth - 4) % 6:
        raise BenchError(f"model.params.depth must be 6*N+4 for a whole N >= 1 (10, 16, 22, 28, ...), "
                         f"got {depth!r}")
    check_int("width", width)
    check_int("start_nf", start_nf)
    check_number("branch_scale", branch_scale)
    check_number("drop", drop, lambda v: 0 <= v < 1, "a number in [0, 1)")
    if identity not in IDENTITIES:
        raise BenchError(f"model.params.identity must be one of {', '.join(IDENTITIES)}, got {identity!r}")

    n = (depth - 4) // 6
    layers = [conv3x3(3, start_nf)]
    ni = start_nf
    for i in range(3):
        nf = start_nf * width * 2 ** i
        layers.append(wrn_group(ni, nf, n, 1 if i == 0 else 2, branch_scale, drop, identity))
        ni = nf
    return nn.Sequential(*layers, nn.BatchNorm2d(ni), relu(), nn.AdaptiveAvgPool2d(1), Flatten(),
                         nn.Linear(ni, num_classes))
