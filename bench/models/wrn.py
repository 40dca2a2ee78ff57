"""Wide ResNet (depth 6N+4, width k) in the three forms that carry fast.ai's name wrn_22 (depth 22, k=6).

fast.ai's DAWNBench CIFAR-10 entries (stanford-futuredata/dawn-bench-entries, CIFAR10/train/fastai_pytorch.json,
8x V100, and fastai_pytorch_single_volta.json, 1x V100) run `-a wrn_22` from fastai/imagenet-fast, whose
cifar10/models/wideresnet.py changed several times on 2018-04-19. `form` picks one network:

form="entry" (the default): the network the entries name. Both JSONs' misc."model implementation" link
    e93593c (2018-04-19 18:08 -0700) cifar10/models/wideresnet.py line 81, and their codeURL commits (a2ff907,
    1bc5aee) hold the same file: the Cutout repository's standard WRN (uoguelph-mlrg/Cutout). Block: a 1x1
    conv shortcut on relu(bn(x)) when the width changes, else the raw x; branch relu(bn(x)) -> conv -> bn ->
    relu -> (dropout) -> conv, not scaled. Head: bn -> relu -> pool -> linear (with bias). Init: convs
    normal(0, sqrt(2 / (k*k*out_channels))) (He, fan-out), BatchNorm weight 1 bias 0, linear bias 0.
form="entry_date": the file on the 8-GPU entry's timestamp (2018-04-18): 11869d9 (2018-04-17 00:26 UTC),
    unchanged until 3e7f82d (2018-04-19 18:46 UTC); the entry's first version (dawn-bench-entries 9c376fe)
    linked it, as 2748de3 line 60, before its 2018-04-19 re-run (5f5d80d) moved the link to e93593c.
    Block: x2 = relu(bn(x)) feeds the branch and the shortcut, a 1x1 conv when the width changes, else x2
    itself; branch conv -> (dropout) -> bn -> relu -> conv, not scaled (`self.conv2(x) ## * 0.2`).
    Head: pool -> bn -> relu -> 1x1 conv without bias. Default (torch) init.
form="fastai07": entry_date's block with the branch scaled by 0.2 (3e7f82d, "scaling for cifar wrn") and
    entry's head (bn -> relu -> pool -> linear), default init: fastai 0.7's models/cifar10/wideresnet.py
    ("Cifar10 Wideresnet for Dawn Submission"), which is imagenet-fast's wideresnet.py as merged in 87054cd
    (2018-04-19 14:42 -0700), kept as cifar10/models/wideresnet_new.py (c4575a4, 17:48 -0700) when 0be6b08
    (17:46 -0700) put the Cutout WRN back into wideresnet.py.

All three shortcut with a conv only when the width changes, which includes every stride-2 block; they share
the 3x3 stem conv (no bias) and the widths start_nf, then start_nf*k*(1, 2, 4). `branch_scale` overrides the
form's scale (None: 1, or 0.2 for fastai07). BatchNorm init: PyTorch of April 2018 (0.4) drew a BatchNorm
weight from U(0, 1) unless code set it; torch 1.0 made it 1 (pytorch/pytorch#12259, October 2018). entry
sets every BN to 1 itself; entry_date and fastai07 left the block's first BN (and fastai07 its head BN) at
that default, and are built here with today's 1, not the 2018 draw.
"""
from __future__ import annotations

import torch.nn as nn

from bench.models import checks
from bench.models.layers import Flatten, relu

FORMS = checks.WRN_FORMS


def conv(ni: int, nf: int, ks: int = 3, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(ni, nf, ks, stride=stride, padding=ks // 2, bias=False)


def bn_relu(n: int) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm2d(n), relu())


def branch(ni: int, nf: int, stride: int, drop: float, form: str) -> nn.Sequential:
    """conv -> bn -> relu -> conv; fast.ai drops after the first conv, Cutout's WRN before the second."""
    dropout = [nn.Dropout(drop)] if drop > 0 else []
    if form == "entry":
        return nn.Sequential(conv(ni, nf, 3, stride), *bn_relu(nf), *dropout, conv(nf, nf))
    return nn.Sequential(conv(ni, nf, 3, stride), *dropout, *bn_relu(nf), conv(nf, nf))


class BasicBlock(nn.Module):
    """shortcut + branch(relu(bn(x))) * scale; the shortcut is a 1x1 conv of relu(bn(x)) when the width
    changes, else relu(bn(x)) (entry_date, fastai07) or the raw x (entry)."""

    def __init__(self, ni: int, nf: int, stride: int, drop: float, form: str, scale: float):
        super().__init__()
        self.pre = bn_relu(ni)
        # The sources test ni != nf only; `or stride != 1` never adds a conv to a network built here.
        self.shortcut = conv(ni, nf, 1, stride) if ni != nf or stride != 1 else None
        self.branch = branch(ni, nf, stride, drop, form)
        self.raw_identity = form == "entry"
        self.branch_scale = scale

    def forward(self, x):
        x2 = self.pre(x)
        if self.shortcut is not None:
            shortcut = self.shortcut(x2)
        else:
            shortcut = x if self.raw_identity else x2
        out = self.branch(x2)
        return shortcut + (out * self.branch_scale if self.branch_scale != 1 else out)


def head(ni: int, num_classes: int, form: str) -> list[nn.Module]:
    if form == "entry_date":
        return [nn.AdaptiveAvgPool2d(1), *bn_relu(ni), conv(ni, num_classes, 1), Flatten()]
    return [*bn_relu(ni), nn.AdaptiveAvgPool2d(1), Flatten(), nn.Linear(ni, num_classes)]


def he_fan_out(model: nn.Module) -> None:
    """Cutout's WRN init: convs normal(0, sqrt(2 / fan_out)), linear bias 0 (BatchNorm is already 1 / 0)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)


def wrn(num_classes: int = 10, depth: int = 22, width: int = 6, start_nf: int = 16, form: str = "entry",
        drop: float = 0.0, branch_scale: float | None = None) -> nn.Sequential:
    """Sequential(stem, group_0, group_1, group_2, *head); form: entry | entry_date | fastai07 (see above)."""
    checks.require("wrn", dict(depth=depth, width=width, start_nf=start_nf, form=form, drop=drop,
                                branch_scale=branch_scale))
    scale = float(branch_scale if branch_scale is not None else 0.2 if form == "fastai07" else 1.0)

    n = (depth - 4) // 6
    layers, ni = [conv(3, start_nf)], start_nf
    for i in range(3):
        nf = start_nf * width * 2 ** i
        layers.append(nn.Sequential(*[BasicBlock(ni if b == 0 else nf, nf, (1 if i == 0 else 2) if b == 0 else 1,
                                                 drop, form, scale) for b in range(n)]))
        ni = nf
    model = nn.Sequential(*layers, *head(ni, num_classes, form))
    if form == "entry":
        he_fan_out(model)
    return model
