"""Darknet-style residual net, after fast.ai's course lesson (dl2, cifar10-darknet).

Seed model: darknet(layers=[1, 2, 4, 6, 3], nf=32). `funnel` and `kernel_sizes` make the shape of
each residual layer a recipe setting: funnel 0.5 is the lesson's bottleneck (ni -> ni//2 -> ni),
1.0 keeps the width, 2.0 widens; kernel_sizes [1, 3, 3] adds a second 3x3 conv.
"""
from __future__ import annotations

from typing import Sequence

import torch.nn as nn

from bench.models import checks
from bench.models.layers import Flatten, Residual, conv_bn_act, leaky


def conv_layer(ni: int, nf: int, ks: int = 3, stride: int = 1) -> nn.Sequential:
    return conv_bn_act(ni, nf, ks, stride, act=leaky, bn_momentum=0.01)


def res_layer(ni: int, funnel: float = 0.5, kernel_sizes: Sequence[int] = (1, 3)) -> Residual:
    mid = int(ni * funnel)
    widths = [ni] + [mid] * (len(kernel_sizes) - 1) + [ni]
    convs = [conv_layer(a, b, ks) for a, b, ks in zip(widths, widths[1:], kernel_sizes)]
    return Residual(nn.Sequential(*convs))


def group(ch_in: int, num_blocks: int, stride: int, funnel: float,
          kernel_sizes: Sequence[int]) -> nn.Sequential:
    """One conv that doubles the channels (and halves the grid when stride is 2), then residual layers."""
    return nn.Sequential(conv_layer(ch_in, ch_in * 2, stride=stride),
                         *[res_layer(ch_in * 2, funnel, kernel_sizes) for _ in range(num_blocks)])


def darknet(num_classes: int = 10, layers: Sequence[int] = (1, 2, 4, 6, 3), nf: int = 32,
            funnel: float = 0.5, kernel_sizes: Sequence[int] = (1, 3)) -> nn.Sequential:
    """Sequential(stem, group_0 .. group_n, pool, flatten, linear); group i is model[1 + i]."""
    checks.require("darknet", dict(layers=layers, nf=nf, funnel=funnel, kernel_sizes=kernel_sizes))
    layers, kernel_sizes = list(layers), list(kernel_sizes)

    # Stride 2 everywhere except the second group, which keeps the grid: on 32x32 inputs the last
    # group still sees 2x2 rather than 1x1.
    body = [conv_layer(3, nf, ks=3, stride=1)]
    for i, nb in enumerate(layers):
        body.append(group(nf, nb, stride=2 - (i == 1), funnel=funnel, kernel_sizes=kernel_sizes))
        nf *= 2
    return nn.Sequential(*body, nn.AdaptiveAvgPool2d(1), Flatten(), nn.Linear(nf, num_classes))
