"""Wide ResNet with pre-activation basic blocks, after fast.ai's wrn_22 DAWNBench entry (depth 22, width 6)."""
from __future__ import annotations

import torch.nn as nn

from bench.core.errors import BenchError
from bench.models.layers import Flatten, check_int, check_number, relu


def conv3x3(ni: int, nf: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(ni, nf, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    def __init__(self, ni: int, nf: int, stride: int = 1, branch_scale: float = 0.2, drop: float = 0.0):
        super().__init__()
        self.pre = nn.Sequential(nn.BatchNorm2d(ni), relu())
        # The shortcut takes the pre-activated input, so BN+ReLU run once and feed both paths.
        self.shortcut = nn.Conv2d(ni, nf, 1, stride=stride, bias=False) if ni != nf or stride != 1 else None
        branch = [conv3x3(ni, nf, stride), nn.BatchNorm2d(nf), relu()]
        if drop > 0:
            branch.append(nn.Dropout(drop))
        self.branch = nn.Sequential(*branch, conv3x3(nf, nf))
        # Damping the branch keeps early training stable without warm-up tricks (fast.ai used 0.2).
        self.branch_scale = branch_scale

    def forward(self, x):
        x2 = self.pre(x)
        shortcut = x if self.shortcut is None else self.shortcut(x2)
        return shortcut + self.branch(x2) * self.branch_scale


def wrn_group(ni: int, nf: int, n: int, stride: int, branch_scale: float, drop: float) -> nn.Sequential:
    return nn.Sequential(*[BasicBlock(ni if i == 0 else nf, nf, stride if i == 0 else 1, branch_scale, drop)
                           for i in range(n)])


def wrn(num_classes: int = 10, depth: int = 22, width: int = 6, start_nf: int = 16,
        branch_scale: float = 0.2, drop: float = 0.0) -> nn.Sequential:
    """Sequential(stem, group_0, group_1, group_2, bn, relu, pool, flatten, linear)."""
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 10 or (depth - 4) % 6:
        raise BenchError(f"model.params.depth must be 6*N+4 for a whole N >= 1 (10, 16, 22, 28, ...), "
                         f"got {depth!r}")
    check_int("width", width)
    check_int("start_nf", start_nf)
    check_number("branch_scale", branch_scale)
    check_number("drop", drop, lambda v: 0 <= v < 1, "a number in [0, 1)")

    n = (depth - 4) // 6
    layers = [conv3x3(3, start_nf)]
    ni = start_nf
    for i in range(3):
        nf = start_nf * width * 2 ** i
        layers.append(wrn_group(ni, nf, n, stride=1 if i == 0 else 2, branch_scale=branch_scale, drop=drop))
        ni = nf
    return nn.Sequential(*layers, nn.BatchNorm2d(ni), relu(), nn.AdaptiveAvgPool2d(1), Flatten(),
                         nn.Linear(ni, num_classes))
