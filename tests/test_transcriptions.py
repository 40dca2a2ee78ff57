"""Our networks against plain transcriptions of the code they cite, written out here in the sources' own style.

Each transcription follows its reference line by line (class per block, straight-line forward, the sources'
in-place ops) and shares no code with bench.models. The test copies our weights into it, tensor by tensor
in order of shape and kind, using every tensor exactly once, and compares outputs in eval mode, in train
mode (BatchNorm batch statistics, dropout under the same seed), and in eval mode again (running statistics
after one update: catches a BatchNorm momentum). Networks are narrow so that the whole file runs in seconds.

References (see bench/models/wrn.py for the timeline):
- Cutout: fastai/imagenet-fast e93593c cifar10/models/wideresnet.py (uoguelph-mlrg/Cutout's WRN), form entry.
- Apr17: fastai/imagenet-fast 11869d9 cifar10/models/wideresnet.py, form entry_date.
- Fastai07: fastai 0.7 models/cifar10/wideresnet.py = imagenet-fast c4575a4 wideresnet_new.py, form fastai07.
- Darknet: fast.ai course dl2 cifar10-darknet (the seed's lesson 12 notes).
"""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.models import build_model


class Flatten(nn.Module):
    def forward(self, x): return x.view(x.size(0), -1)


# --- Cutout WRN, as linked by the DAWNBench entries (e93593c) -------------------------------------------------

class CutoutBlock(nn.Module):
    def __init__(self, in_planes, out_planes, stride, dropRate=0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_planes, out_planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.droprate = dropRate
        self.equalInOut = in_planes == out_planes
        self.convShortcut = None if self.equalInOut else nn.Conv2d(in_planes, out_planes, kernel_size=1,
                                                                     stride=stride, padding=0, bias=False)

    def forward(self, x):
        if not self.equalInOut:
            x = self.relu1(self.bn1(x))
        else:
            out = self.relu1(self.bn1(x))
        out = self.relu2(self.bn2(self.conv1(out if self.equalInOut else x)))
        if self.droprate > 0:
            out = F.dropout(out, p=self.droprate, training=self.training)
        out = self.conv2(out)
        return torch.add(x if self.equalInOut else self.convShortcut(x), out)


class CutoutWRN(nn.Module):
    def __init__(self, depth, num_classes, widen_factor=1, dropRate=0.0, nf0=16):  # nf0: 16 in the source
        super().__init__()
        nChannels = [nf0, nf0 * widen_factor, 2 * nf0 * widen_factor, 4 * nf0 * widen_factor]
        n = (depth - 4) // 6
        self.conv1 = nn.Conv2d(3, nChannels[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.block1 = nn.Sequential(*[CutoutBlock(nChannels[0] if i == 0 else nChannels[1], nChannels[1],
                                                  1, dropRate) for i in range(n)])
        self.block2 = nn.Sequential(*[CutoutBlock(nChannels[1] if i == 0 else nChannels[2], nChannels[2],
                                                  2 if i == 0 else 1, dropRate) for i in range(n)])
        self.block3 = nn.Sequential(*[CutoutBlock(nChannels[2] if i == 0 else nChannels[3], nChannels[3],
                                                  2 if i == 0 else 1, dropRate) for i in range(n)])
        self.bn1 = nn.BatchNorm2d(nChannels[3])
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(nChannels[3], num_classes)
        self.nChannels = nChannels[3]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                m.weight.data.normal_(0, math.sqrt(2. / n))
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.data.fill_(1)
                m.bias.data.zero_()
            elif isinstance(m, nn.Linear):
                m.bias.data.zero_()

    def forward(self, x):
        out = self.conv1(x)
        out = self.block1(out)
        out = self.block2(out)
        out = self.block3(out)
        out = self.relu(self.bn1(out))
        out = F.adaptive_avg_pool2d(out, 1)
        out = out.view(-1, self.nChannels)
        return self.fc(out)


# --- fast.ai's own WRN: 11869d9 (no scale, pooled conv head) and fastai 0.7 (x 0.2, linear head) ----------------

def conv_2d(ni, nf, ks, stride): return nn.Conv2d(ni, nf, kernel_size=ks, stride=stride, padding=ks // 2, bias=False)


def bn(ni, init_zero=False):
    m = nn.BatchNorm2d(ni)
    m.weight.data.fill_(0 if init_zero else 1)
    m.bias.data.zero_()
    return m


def bn_relu_conv(ni, nf, ks, stride, init_zero=False):
    return nn.Sequential(bn(ni, init_zero=init_zero), nn.ReLU(inplace=True), conv_2d(ni, nf, ks, stride))


def noop(x): return x


class Apr17Block(nn.Module):
    def __init__(self, ni, nf, stride, drop_p=0.0):
        super().__init__()
        self.bn = nn.BatchNorm2d(ni)
        self.conv1 = conv_2d(ni, nf, 3, stride)
        self.conv2 = bn_relu_conv(nf, nf, 3, 1)
        self.drop = nn.Dropout(drop_p, inplace=True) if drop_p else None
        self.shortcut = conv_2d(ni, nf, 1, stride) if ni != nf else noop

    def forward(self, x):
        x2 = F.relu(self.bn(x), inplace=True)
        r = self.shortcut(x2)
        x = self.conv1(x2)
        if self.drop: x = self.drop(x)
        x = self.conv2(x)  ## * 0.2
        return x.add_(r)


class Fastai07Block(Apr17Block):
    def forward(self, x):  # the same block, the branch scaled (3e7f82d)
        x2 = F.relu(self.bn(x), inplace=True)
        r = self.shortcut(x2)
        x = self.conv1(x2)
        if self.drop: x = self.drop(x)
        x = self.conv2(x) * 0.2
        return x.add_(r)


def _make_group(N, ni, nf, block, stride, drop_p):
    return [block(ni if i == 0 else nf, nf, stride if i == 0 else 1, drop_p) for i in range(N)]


class Apr17WRN(nn.Module):
    def __init__(self, num_groups, N, num_classes, k=1, drop_p=0.0, start_nf=16):
        super().__init__()
        n_channels = [start_nf]
        for i in range(num_groups): n_channels.append(start_nf * (2 ** i) * k)
        layers = [conv_2d(3, n_channels[0], 3, 1)]
        for i in range(num_groups):
            layers += _make_group(N, n_channels[i], n_channels[i + 1], Apr17Block, (1 if i == 0 else 2), drop_p)
        layers += [nn.AdaptiveAvgPool2d(1), bn_relu_conv(n_channels[-1], num_classes, 1, 1), Flatten()]
        self.features = nn.Sequential(*layers)

    def forward(self, x): return self.features(x)


class Fastai07WRN(nn.Module):
    def __init__(self, num_groups, N, num_classes, k=1, drop_p=0.0, start_nf=16):
        super().__init__()
        n_channels = [start_nf]
        for i in range(num_groups): n_channels.append(start_nf * (2 ** i) * k)
        layers = [conv_2d(3, n_channels[0], 3, 1)]
        for i in range(num_groups):
            layers += _make_group(N, n_channels[i], n_channels[i + 1], Fastai07Block, (1 if i == 0 else 2), drop_p)
        layers += [nn.BatchNorm2d(n_channels[3]), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1),
                   Flatten(), nn.Linear(n_channels[3], num_classes)]
        self.features = nn.Sequential(*layers)

    def forward(self, x): return self.features(x)


# --- the seed's Darknet (fast.ai dl2 cifar10-darknet) ---------------------------------------------------------

def conv_layer(ni, nf, ks=3, stride=1):
    return nn.Sequential(
        nn.Conv2d(in_channels=ni, out_channels=nf, kernel_size=ks, bias=False, stride=stride, padding=ks // 2),
        nn.BatchNorm2d(num_features=nf, momentum=0.01),
        nn.LeakyReLU(negative_slope=0.1, inplace=True))


class ResLayer(nn.Module):
    def __init__(self, ni):
        super().__init__()
        self.conv1 = conv_layer(ni, ni // 2, ks=1)
        self.conv2 = conv_layer(ni // 2, ni, ks=3)  # the notes print `k2=3`, a typo for ks=3

    def forward(self, x):
        return x.add_(self.conv2(self.conv1(x)))


class Darknet(nn.Module):
    def make_group_layer(self, ch_in, num_blocks, stride=1):
        return [conv_layer(ch_in, ch_in * 2, stride=stride)] + [(ResLayer(ch_in * 2)) for i in range(num_blocks)]

    def __init__(self, num_blocks, num_classes, nf=32):
        super().__init__()
        layers = [conv_layer(3, nf, ks=3, stride=1)]
        for i, nb in enumerate(num_blocks):
            layers += self.make_group_layer(nf, nb, stride=2 - (i == 1))
            nf *= 2
        layers += [nn.AdaptiveAvgPool2d(1), Flatten(), nn.Linear(nf, num_classes)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)


# --- the comparison ---------------------------------------------------------------------------------------------

def copy_weights(ours: nn.Module, theirs: nn.Module) -> None:
    """Fill each of their state_dict entries with the first unused one of ours of the same kind (weight, bias,
    running_mean, ...) and shape, in order; every tensor of ours must be used exactly once."""
    pool = list(ours.state_dict().items())
    used = [False] * len(pool)
    new = {}
    for key, t in theirs.state_dict().items():
        kind = key.rsplit(".", 1)[-1]
        i = next((i for i, (k, v) in enumerate(pool)
                  if not used[i] and k.rsplit(".", 1)[-1] == kind and v.shape == t.shape), None)
        assert i is not None, f"no tensor of ours for {key} {tuple(t.shape)}"
        used[i] = True
        new[key] = pool[i][1]
    assert all(used), f"tensors of ours with no place in theirs: {[k for (k, _), u in zip(pool, used) if not u]}"
    theirs.load_state_dict(new)


def randomise_batchnorm(model: nn.Module) -> None:
    """Non-trivial scales, shifts and running statistics, so that a BN moved or swapped changes the output."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)


def outputs(ours: nn.Module, theirs: nn.Module, seed: int = 0):
    """(ours, theirs) pairs in eval, train (batch statistics, dropout under one seed) and eval again."""
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(seed))
    pairs = []
    for mode in ("eval", "train", "eval"):
        ours.train(mode == "train"), theirs.train(mode == "train")
        with torch.no_grad():
            torch.manual_seed(seed)
            a = ours(x.clone())
            torch.manual_seed(seed)
            b = theirs(x.clone())
        pairs.append((mode, a, b))
    return pairs


def matched(ours: nn.Module, theirs: nn.Module) -> None:
    randomise_batchnorm(ours)
    copy_weights(ours, theirs)
    for mode, a, b in outputs(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=lambda m: f"{mode} mode: {m}")


# (depth, width, start_nf, drop): width 1 makes group 0's first block an identity block, width 2 a conv
# shortcut at stride 1; depth 16 puts two blocks in each group; drop > 0 checks where dropout sits.
SHAPES = [(16, 1, 4, 0.0), (10, 2, 4, 0.3)]


def reference(form, depth, width, start_nf, drop):
    n = (depth - 4) // 6
    if form == "entry":
        return CutoutWRN(depth, 10, widen_factor=width, dropRate=drop, nf0=start_nf)
    cls = Apr17WRN if form == "entry_date" else Fastai07WRN
    return cls(3, n, 10, k=width, drop_p=drop, start_nf=start_nf)


@pytest.mark.parametrize("form", ["entry", "entry_date", "fastai07"])
@pytest.mark.parametrize("depth, width, start_nf, drop", SHAPES)
def test_wrn_matches_its_reference(form, depth, width, start_nf, drop):
    torch.manual_seed(depth + width)
    ours = build_model("wrn", {"form": form, "depth": depth, "width": width, "start_nf": start_nf, "drop": drop})
    matched(ours, reference(form, depth, width, start_nf, drop))


def test_darknet_matches_the_seed():
    torch.manual_seed(1)
    matched(build_model("darknet", {"layers": [1, 2, 1], "nf": 4}), Darknet([1, 2, 1], num_classes=10, nf=4))


@pytest.mark.parametrize("params, form", [
    ({"form": "entry", "branch_scale": 0.2}, "entry"),        # only the scale differs
    ({"form": "fastai07", "branch_scale": 1.0}, "entry"),     # only the identity shortcut's input differs
    ({"form": "entry"}, "fastai07"),                          # identity input and scale
])
def test_the_comparison_sees_a_difference_the_shapes_hide(params, form):
    """Same tensors, same count, another network: the copy succeeds and the outputs must not match."""
    torch.manual_seed(2)
    ours = build_model("wrn", {"depth": 16, "width": 1, "start_nf": 4, **params})
    theirs = reference(form, 16, 1, 4, 0.0)
    randomise_batchnorm(ours)
    copy_weights(ours, theirs)
    for mode, a, b in outputs(ours, theirs):
        assert not torch.allclose(a, b, rtol=1e-3, atol=1e-3), mode


def conv_stds(model):
    return [(m.weight.numel(), m.weight.std().item(), m.weight[0].numel(), m.out_channels * m.weight[0, 0].numel())
            for m in model.modules() if isinstance(m, nn.Conv2d) and m.weight.numel() >= 4096]


@pytest.mark.parametrize("form", ["entry", "entry_date", "fastai07"])
def test_wrn_init(form):
    """entry: Cutout's He fan-out normal convs and zero linear bias; the others: torch's default, whose
    conv weights are uniform in +-1/sqrt(fan_in) (std 1/sqrt(3 fan_in)), as in April 2018."""
    torch.manual_seed(3)
    model = build_model("wrn", {"form": form, "depth": 10, "width": 2, "start_nf": 16})
    stds = conv_stds(model)
    assert len(stds) >= 4
    for numel, std, fan_in, fan_out in stds:
        expected = math.sqrt(2 / fan_out) if form == "entry" else 1 / math.sqrt(3 * fan_in)
        assert abs(std / expected - 1) < 0.1, (numel, std, expected)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.equal(m.weight, torch.ones_like(m.weight)) and not m.bias.any() for m in bns)
    if form == "entry":
        assert not model[-1].bias.any()
