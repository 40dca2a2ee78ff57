"""The seed's DCGAN critic and generator (the WGAN lesson's DCGAN_D / DCGAN_G), for any power-of-two image size.

Critic: a stride-2 conv, `n_extra_layers` stride-1 convs, stride-2 convs doubling the width until the grid
is 4x4, and a final 4x4 conv to one channel, averaged to one score per image. Generator: the reverse, with
transposed convs, ending in tanh so that images land in [-1, 1] like the real ones. Blocks keep the seed's
order, conv -> activation -> norm (LeakyReLU 0.2 in the critic, ReLU in the generator).

The seed's critic averages over the batch inside forward; ours returns one score per image and the loss
averages, which is the same number and lets the gradient penalty differentiate each image's score.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from bench.models.layers import _fail, check_int

NORMS = ("batch", "layer", "none")


def _norm(kind: str, c: int) -> list[nn.Module]:
    if kind == "batch":
        return [nn.BatchNorm2d(c)]
    if kind == "layer":  # WGAN-GP: no BatchNorm in the critic, the penalty is per image
        return [nn.GroupNorm(1, c)]
    return []


def conv_block(ni: int, no: int, ks: int, stride: int, norm: str) -> nn.Sequential:
    pad = ks // 2 // stride  # the seed's ConvBlock padding: 1 for both 3x3/1 and 4x4/2
    return nn.Sequential(nn.Conv2d(ni, no, ks, stride, padding=pad, bias=False),
                         nn.LeakyReLU(0.2, inplace=True), *_norm(norm, no))


def deconv_block(ni: int, no: int, ks: int, stride: int, pad: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(ni, no, ks, stride, padding=pad, bias=False),
                         nn.ReLU(inplace=True), nn.BatchNorm2d(no))


class Critic(nn.Module):
    def __init__(self, image_size: int, ndf: int, n_extra_layers: int, norm: str, channels: int = 3):
        super().__init__()
        layers = [conv_block(channels, ndf, 4, 2, "none")]  # the seed: no norm on the first block
        size, c = image_size // 2, ndf
        layers += [conv_block(c, c, 3, 1, norm) for _ in range(n_extra_layers)]
        while size > 4:
            layers.append(conv_block(c, c * 2, 4, 2, norm))
            c, size = c * 2, size // 2
        layers.append(nn.Conv2d(c, 1, 4, padding=0, bias=False))
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).flatten(1).mean(1)  # (B,): one score per image


class Generator(nn.Module):
    def __init__(self, image_size: int, nz: int, ngf: int, n_extra_layers: int, channels: int = 3):
        super().__init__()
        self.nz = nz
        c, size = ngf // 2, 4
        while size != image_size:  # the seed's width: ngf/2 doubled once per doubling from 4 to image_size
            c, size = c * 2, size * 2
        layers = [deconv_block(nz, c, 4, 1, 0)]  # 1x1 -> 4x4
        size = 4
        while size < image_size // 2:
            layers.append(deconv_block(c, c // 2, 4, 2, 1))
            c, size = c // 2, size * 2
        layers += [deconv_block(c, c, 3, 1, 1) for _ in range(n_extra_layers)]
        layers += [nn.ConvTranspose2d(c, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.features = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.features(z.view(z.shape[0], self.nz, 1, 1))

    def noise(self, n: int, device=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """z ~ N(0, 1), as the seed's create_noise."""
        return torch.randn(n, self.nz, 1, 1, device=device, generator=generator)


class GAN(nn.Module):
    """The pair a GAN recipe trains; one module so the registry, `.to()` and checkpoints treat it as one."""

    def __init__(self, generator: Generator, critic: Critic):
        super().__init__()
        self.generator, self.critic = generator, critic

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.critic(self.generator(z))


def dcgan_init(module: nn.Module) -> None:
    """The WGAN/DCGAN reference code's initialisation: conv weights N(0, 0.02), norm scales N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def dcgan(num_classes: int = 10, image_size: int = 32, nz: int = 100, ngf: int = 64, ndf: int = 64,
          n_extra_layers: int = 1, critic_norm: str = "batch") -> GAN:
    """The seed's DCGAN_G(sz, nz, 3, 64, 1) and DCGAN_D(sz, 3, 64, 1). num_classes is unused: unconditional."""
    check_int("image_size", image_size, 16)
    if image_size & (image_size - 1):
        _fail("image_size", image_size, "a power of two >= 16 (e.g. 32 for CIFAR-10, 64 for LSUN bedrooms)")
    check_int("nz", nz)
    check_int("ngf", ngf, 2)
    check_int("ndf", ndf)
    check_int("n_extra_layers", n_extra_layers, 0)
    if critic_norm not in NORMS:
        _fail("critic_norm", critic_norm, " | ".join(NORMS))
    net = GAN(Generator(image_size, nz, ngf, n_extra_layers), Critic(image_size, ndf, n_extra_layers, critic_norm))
    dcgan_init(net)
    return net
