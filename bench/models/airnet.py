"""The CIFAR-10 record holders' network (KellerJordan/cifar10-airbench airbench94_muon, hiverge cifar10-speedrun).

    whitening conv (2x2, frozen, set from the training images' patch covariance) -> GELU
    3 x [conv -> maxpool 2 -> BN -> GELU -> conv -> BN -> GELU]    widths 64, 256, 256
    global max pool -> linear head (no bias) x 1/width

Conv filters are stored as the (out, in*k*k) matrices that Muon orthogonalises, so torch.optim.Muon, which
takes 2-D parameters only, updates them as they are; the forward views them as (out, in, k, k). BatchNorm
scales are frozen at 1 (only the shifts learn) and its statistics move fast (momentum 0.6 in airbench's
convention: 0.6 of the old value is kept). The whitening filters come from the data, so they are set in
init by `init_whitening`, not here.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.core.errors import BenchError
from bench.models import checks

ACTIVATIONS = {"gelu": nn.GELU, "silu": nn.SiLU}  # the names a recipe may give are checks.AIRNET_ACTIVATIONS


class FilterConv(nn.Module):
    """A k x k convolution, 'same' padding, no bias, whose filters are one (out, in*k*k) matrix. Initialised
    as torch's Conv2d, then the first `in` filters are made identities (airbench's dirac init): at the start
    each block passes its input through, and learning adds to it."""

    def __init__(self, ni: int, nf: int, ks: int = 3):
        super().__init__()
        self.ni, self.nf, self.ks = ni, nf, ks
        w = nn.Conv2d(ni, nf, ks, bias=False).weight.detach()  # torch's default (Kaiming-uniform) draw
        nn.init.dirac_(w[:ni])
        self.weight = nn.Parameter(w.reshape(nf, ni * ks * ks).clone())

    def forward(self, x):
        return F.conv2d(x, self.weight.view(self.nf, self.ni, self.ks, self.ks), padding="same")

    def extra_repr(self) -> str:
        return f"{self.ni}, {self.nf}, kernel_size={self.ks}"


class Whitening(nn.Conv2d):
    """k x k patches projected on the eigenvectors of their covariance, each scaled to unit variance, twice
    (+v and -v, so the GELU after it keeps both signs). The filters never train; the bias does."""

    def __init__(self, k: int, channels: int = 3):
        super().__init__(channels, 2 * channels * k * k, k, padding=0, bias=True)
        self.weight.requires_grad = False

    @torch.no_grad()
    def init_whitening(self, images: torch.Tensor, eps: float = 5e-4, chunk: int = 1000) -> None:
        """images: (N, C, H, W) float, normalised as the loaders hand them over. Summed in chunks, so 5,000
        images need tens of MB rather than the ~250 MB their patches would take at once."""
        c, k = self.in_channels, self.kernel_size[0]
        d = c * k * k
        cov = torch.zeros(d, d, dtype=torch.float64, device=images.device)
        count = 0
        for part in images.split(chunk):
            # (N, C, H', W', k, k) -> one row per patch, laid out (C, k, k) like a filter
            patches = part.float().unfold(2, k, 1).unfold(3, k, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, d)
            cov += (patches.T @ patches).double()
            count += patches.shape[0]
        if count == 0:
            raise BenchError("whitening init: no training images to take patches from")
        eigenvalues, eigenvectors = torch.linalg.eigh(cov / count)
        order = eigenvalues.argsort(descending=True)  # largest variance first
        scaled = eigenvectors[:, order].T / torch.sqrt(eigenvalues[order, None] + eps)
        filters = scaled.reshape(d, c, k, k).to(self.weight.dtype)
        self.weight.copy_(torch.cat((filters, -filters)))


def batch_norm(c: int, momentum: float, eps: float) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(c, eps=eps, momentum=1 - momentum)  # torch's momentum is the share of the new value
    bn.weight.requires_grad = False
    return bn


class ConvGroup(nn.Sequential):
    def __init__(self, ni: int, nf: int, act, momentum: float, eps: float):
        super().__init__(FilterConv(ni, nf), nn.MaxPool2d(2), batch_norm(nf, momentum, eps), act(),
                         FilterConv(nf, nf), batch_norm(nf, momentum, eps), act())


class AirNet(nn.Module):
    def __init__(self, num_classes: int, widths: list[int], whiten_kernel: int, act: str, bn_momentum: float,
                 bn_eps: float, head_scale: float, whiten_images: int):
        super().__init__()
        self.whiten = Whitening(whiten_kernel)
        self.whiten_images = whiten_images  # how many training images init_whitening wants (read in init)
        make_act = ACTIVATIONS[act]
        chans = [self.whiten.out_channels, *widths]
        self.layers = nn.Sequential(
            make_act(), *[ConvGroup(a, b, make_act, bn_momentum, bn_eps) for a, b in zip(chans, chans[1:])],
            # airbench's MaxPool2d(3) sees a 3x3 grid at 32x32 inputs: a global max; this one fits any size.
            nn.AdaptiveMaxPool2d(1), nn.Flatten())
        self.head = nn.Linear(widths[-1], num_classes, bias=False)
        with torch.no_grad():
            self.head.weight.mul_(1 / self.head.weight.std())  # unit-variance weights, scaled down in forward
        self.head_scale = head_scale

    def init_whitening(self, images: torch.Tensor) -> None:
        self.whiten.init_whitening(images)

    def forward(self, x):
        return self.head(self.layers(self.whiten(x))) * self.head_scale


def airnet(num_classes: int = 10, widths: Sequence[int] = (64, 256, 256), whiten_kernel: int = 2,
           act: str = "gelu", bn_momentum: float = 0.6, bn_eps: float = 1e-12, head_scale: Optional[float] = None,
           whiten_images: int = 5000) -> AirNet:
    """head_scale: None is airbench94_muon's 1/widths[-1]; bn_momentum: the share of the old running
    statistics kept per step; whiten_images: training images init_whitening sees (airbench: 5,000)."""
    checks.require("airnet", dict(widths=widths, whiten_kernel=whiten_kernel, act=act, bn_momentum=bn_momentum,
                                  bn_eps=bn_eps, head_scale=head_scale, whiten_images=whiten_images))
    widths = list(widths)
    scale = 1 / widths[-1] if head_scale is None else float(head_scale)
    return AirNet(num_classes, widths, whiten_kernel, act, float(bn_momentum), float(bn_eps), scale,
                  whiten_images)
