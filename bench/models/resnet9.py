"""ResNet-9 after David Page's DAWNBench entry ("How to train your ResNet")."""
from __future__ import annotations

from typing import Sequence

import torch.nn as nn

from bench.models import checks
from bench.models.layers import Flatten, Residual, Scale, conv_bn_act


def res_block(c: int) -> Residual:
    return Residual(nn.Sequential(conv_bn_act(c, c), conv_bn_act(c, c)))


def resnet9(num_classes: int = 10, widths: Sequence[int] = (64, 128, 256, 512),
            scale: float = 0.125) -> nn.Sequential:
    """Sequential(prep, layer1, layer2, layer3, pool, flatten, linear, scale)."""
    checks.require("resnet9", dict(widths=widths, scale=scale))
    w0, w1, w2, w3 = widths
    return nn.Sequential(
        conv_bn_act(3, w0),
        nn.Sequential(conv_bn_act(w0, w1), nn.MaxPool2d(2), res_block(w1)),
        nn.Sequential(conv_bn_act(w1, w2), nn.MaxPool2d(2)),
        nn.Sequential(conv_bn_act(w2, w3), nn.MaxPool2d(2), res_block(w3)),
        nn.AdaptiveMaxPool2d(1), Flatten(),
        nn.Linear(w3, num_classes, bias=False),
        # Page's final 0.125 multiplier: the head starts out too confident without it.
        Scale(scale),
    )
