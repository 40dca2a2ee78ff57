"""The WGAN's DCGAN critic and generator, for any power-of-two image size, as either reference builds them.

Critic: a stride-2 conv, `n_extra_layers` stride-1 convs, stride-2 convs doubling the width until the grid
is 4x4, and a final 4x4 conv to one channel, averaged to one score per image. Generator: the reverse, with
transposed convs, ending in tanh so that images land in [-1, 1] like the real ones. LeakyReLU 0.2 in the
critic, ReLU in the generator, no norm on the critic's first block, no bias anywhere.

Two references, two switches (`model.params`):
- `block_order`: `conv_act_norm` is the lesson's ConvBlock / DeconvBlock (fast.ai courses/dl2/wgan.ipynb:
  `self.bn(self.relu(self.conv(x)))`); `conv_norm_act` is the WGAN paper's code (martinarjovsky/WassersteinGAN
  models/dcgan.py: conv, batchnorm, relu).
- `init`: `dcgan` is the paper's main.py weights_init (conv weights N(0, 0.02), BatchNorm weights N(1, 0.02),
  biases 0); the lesson applies none, so its networks start from torch's defaults: `torch` (the installed
  torch's) or `torch_0.3` (those of torch 0.3.1, which the lesson ran on: fastai's environment.yml pinned
  pytorch<0.4 then).
The paper's generator makes its extra layers with nn.Conv2d(c, c, 3, 1, 1), the lesson (and we) with
nn.ConvTranspose2d(c, c, 3, 1, 1): with as many channels in as out, that is the same layer with its kernel
transposed and flipped, and since every init here draws each weight independently from one distribution and
RMSprop, Adam and clipping act weight by weight, training is the same too (tests/test_dcgan_reference.py maps
one onto the other).

The references' critics average over the batch inside forward; ours returns one score per image and the loss
averages, which is the same number and lets the gradient penalty differentiate each image's score.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from bench.models import checks

NORMS = checks.DCGAN_NORMS
BLOCK_ORDERS = checks.DCGAN_BLOCK_ORDERS  # the lesson's, the paper's
INITS = checks.DCGAN_INITS


def _norm(kind: str, c: int) -> list[nn.Module]:
    if kind == "batch":
        return [nn.BatchNorm2d(c)]
    if kind == "layer":  # WGAN-GP: no BatchNorm in the critic, the penalty is per image
        return [nn.GroupNorm(1, c)]
    return []


def _block(conv: nn.Module, act: nn.Module, norm: list[nn.Module], order: str) -> nn.Sequential:
    return nn.Sequential(conv, act, *norm) if order == "conv_act_norm" else nn.Sequential(conv, *norm, act)


def conv_block(ni: int, no: int, ks: int, stride: int, norm: str, order: str = "conv_act_norm") -> nn.Sequential:
    pad = ks // 2 // stride  # the lesson's ConvBlock padding: 1 for both 3x3/1 and 4x4/2 (the paper's too)
    return _block(nn.Conv2d(ni, no, ks, stride, padding=pad, bias=False), nn.LeakyReLU(0.2, inplace=True),
                  _norm(norm, no), order)


def deconv_block(ni: int, no: int, ks: int, stride: int, pad: int, order: str = "conv_act_norm") -> nn.Sequential:
    return _block(nn.ConvTranspose2d(ni, no, ks, stride, padding=pad, bias=False), nn.ReLU(inplace=True),
                  [nn.BatchNorm2d(no)], order)


class Critic(nn.Module):
    def __init__(self, image_size: int, ndf: int, n_extra_layers: int, norm: str, channels: int = 3,
                 order: str = "conv_act_norm"):
        super().__init__()
        layers = [conv_block(channels, ndf, 4, 2, "none")]  # both references: no norm on the first block
        size, c = image_size // 2, ndf
        layers += [conv_block(c, c, 3, 1, norm, order) for _ in range(n_extra_layers)]
        while size > 4:
            layers.append(conv_block(c, c * 2, 4, 2, norm, order))
            c, size = c * 2, size // 2
        layers.append(nn.Conv2d(c, 1, 4, padding=0, bias=False))
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).flatten(1).mean(1)  # (B,): one score per image


class Generator(nn.Module):
    def __init__(self, image_size: int, nz: int, ngf: int, n_extra_layers: int, channels: int = 3,
                 order: str = "conv_act_norm"):
        super().__init__()
        self.nz = nz
        c, size = ngf // 2, 4
        while size != image_size:  # both references' width: ngf/2 doubled once per doubling from 4 to image_size
            c, size = c * 2, size * 2
        layers = [deconv_block(nz, c, 4, 1, 0, order)]  # 1x1 -> 4x4
        size = 4
        while size < image_size // 2:
            layers.append(deconv_block(c, c // 2, 4, 2, 1, order))
            c, size = c // 2, size * 2
        layers += [deconv_block(c, c, 3, 1, 1, order) for _ in range(n_extra_layers)]
        layers += [nn.ConvTranspose2d(c, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.features = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.features(z.view(z.shape[0], self.nz, 1, 1))

    def noise(self, n: int, device=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """z ~ N(0, 1), as both references draw it (the lesson's create_noise, the paper's noise.normal_(0, 1))."""
        return torch.randn(n, self.nz, 1, 1, device=device, generator=generator)


class GAN(nn.Module):
    """The pair a GAN recipe trains; one module so the registry, `.to()` and checkpoints treat it as one."""

    def __init__(self, generator: Generator, critic: Critic):
        super().__init__()
        self.generator, self.critic = generator, critic

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.critic(self.generator(z))


def dcgan_init(module: nn.Module) -> None:
    """The WGAN paper's main.py weights_init (from DCGAN): conv weights N(0, 0.02), norm scales N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def torch03_init(module: nn.Module) -> None:
    """torch 0.3.1's defaults, which the lesson's networks started from: conv and transposed-conv weights
    U(-1/sqrt(n), 1/sqrt(n)) with n = in_channels * kernel area for both kinds (today's torch takes a transposed
    conv's out_channels), BatchNorm weights U(0, 1) (today: 1), biases 0. GroupNorm (critic_norm: layer) came
    later and keeps torch's own default."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            bound = 1.0 / math.sqrt(m.in_channels * math.prod(m.kernel_size))
            nn.init.uniform_(m.weight, -bound, bound)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.0, 1.0)
            nn.init.zeros_(m.bias)


def dcgan(num_classes: int = 10, image_size: int = 32, nz: int = 100, ngf: int = 64, ndf: int = 64,
          n_extra_layers: int = 1, critic_norm: str = "batch", block_order: str = "conv_act_norm",
          init: str = "dcgan") -> GAN:
    """DCGAN_G(image_size, nz, 3, ngf, n_extra_layers) and DCGAN_D(image_size, 3, ndf, n_extra_layers), with
    either reference's block order and initialisation. num_classes is unused: unconditional."""
    checks.require("dcgan", dict(image_size=image_size, nz=nz, ngf=ngf, ndf=ndf, n_extra_layers=n_extra_layers,
                                 critic_norm=critic_norm, block_order=block_order, init=init))
    net = GAN(Generator(image_size, nz, ngf, n_extra_layers, order=block_order),
              Critic(image_size, ndf, n_extra_layers, critic_norm, order=block_order))
    if init == "dcgan":
        dcgan_init(net)
    elif init == "torch_0.3":
        torch03_init(net)
    return net
