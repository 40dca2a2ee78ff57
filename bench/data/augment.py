"""CIFAR augmentation, defined once for every loader.

Semantics (train):
  1. pad each side of the HxW image by `pad` pixels, either mirroring the image without repeating the
     edge pixel ("reflect", as numpy/torch `reflect`) or with black pixels ("zeros", value 0 before
     normalisation);
  2. take an HxW crop whose top-left corner (dy, dx) is uniform over {0..2*pad} x {0..2*pad}
     (pad=0: the image itself);
  3. flip horizontally with probability 0.5 (if `flip`);
  4. normalise each channel: (x/255 - mean) / std.
Eval: step 4 only.

The random choices of an epoch are drawn here, in numpy, from (seed, epoch, rank) - not inside each
loader - so every loader applies the same crops and flips to the same images: switching loaders
changes speed, not the run, and a run is reproducible whatever the worker count or device.

Normalisation is computed as (x - 255*mean) * (1 / (255*std)) with float32 constants, because that is
the arithmetic DALI's crop_mirror_normalize does; with it all loaders agree bit for bit in float32.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from bench.core.errors import BenchError

PAD_MODES = ("reflect", "zeros")


@dataclass(frozen=True)
class Augment:
    flip: bool = True
    pad: int = 4
    pad_mode: str = "reflect"
    mean: tuple = (0.4914, 0.48216, 0.44653)  # [0, 1] units: the seed's CIFAR-10 statistics
    std: tuple = (0.24703, 0.24349, 0.26159)

    def __post_init__(self):
        if self.pad_mode not in PAD_MODES:
            raise BenchError(f"augment.pad_mode={self.pad_mode!r}: use one of {', '.join(PAD_MODES)}")
        if self.pad < 0:
            raise BenchError(f"augment.pad={self.pad}: must be >= 0 (0 = no random crop)")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise BenchError(f"augment mean/std must be 3 values each, std > 0; got {self.mean} / {self.std}")

    def pixel_mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        """mean and std in 0..255 units, float32 per channel (what DALI is given)."""
        return tuple((np.asarray(v, np.float64) * 255).astype(np.float32) for v in (self.mean, self.std))

    def norm_constants(self) -> tuple[np.ndarray, np.ndarray]:
        """(shift, scale) float32 per channel: normalised = (x - shift) * scale."""
        mean, std = self.pixel_mean_std()
        return mean, np.float32(1) / std


@dataclass(frozen=True)
class Plan:
    """One epoch's random choices for this rank, position-aligned with its epoch indices."""

    dy: np.ndarray  # int64, crop top in the padded image, 0..2*pad
    dx: np.ndarray  # int64, crop left
    flip: np.ndarray  # bool


def draw_plan(count: int, augment: Augment, *, seed: int, epoch: int, rank: int) -> Plan:
    # The trailing 1 keeps this stream apart from the shuffle stream seeded by (seed, epoch).
    rng = np.random.default_rng([seed, epoch, rank, 1])
    dy = rng.integers(0, 2 * augment.pad + 1, size=count)
    dx = rng.integers(0, 2 * augment.pad + 1, size=count)
    flip = rng.random(count) < 0.5
    if not augment.flip:
        flip[:] = False
    return Plan(dy.astype(np.int64), dx.astype(np.int64), flip)


def pad_images(images: np.ndarray, augment: Augment) -> np.ndarray:
    """(N,H,W,3) uint8 -> (N,H+2p,W+2p,3); done once per dataset, since no loader pads per batch."""
    p = augment.pad
    if p == 0:
        return images
    mode = "reflect" if augment.pad_mode == "reflect" else "constant"
    return np.pad(images, ((0, 0), (p, p), (p, p), (0, 0)), mode=mode)


def crop_flip(padded: torch.Tensor, idx: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor,
              flip: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Gather crops of padded[idx] in one indexing op (no per-image loop): (B,H,W,3) uint8."""
    h, w = size
    rows = dy[:, None] + torch.arange(h, device=padded.device)
    cols = torch.arange(w, device=padded.device)
    cols = torch.where(flip[:, None], w - 1 - cols, cols) + dx[:, None]
    return padded[idx[:, None, None], rows[:, :, None], cols[:, None, :]]


@functools.lru_cache(maxsize=8)
def _norm_tensors(augment: Augment, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    # Cached so a GPU loop does not copy the constants host-to-device every batch.
    return tuple(torch.from_numpy(c).to(device) for c in augment.norm_constants())


def normalise(x: torch.Tensor, augment: Augment) -> torch.Tensor:
    """(B,H,W,3) uint8 -> (B,3,H,W) float32 view whose memory is channels_last."""
    shift, scale = _norm_tensors(augment, x.device)
    return ((x.float() - shift) * scale).permute(0, 3, 1, 2)


def reference(images: np.ndarray, plan: Plan | None, augment: Augment) -> torch.Tensor:
    """The semantics above applied to a small uint8 batch on CPU: float32 NCHW. plan=None: eval."""
    x = torch.from_numpy(np.ascontiguousarray(images))
    if plan is None:
        return normalise(x, augment).contiguous()
    padded = torch.from_numpy(pad_images(images, augment))
    t = (torch.from_numpy(a) for a in (plan.dy, plan.dx, plan.flip))
    crops = crop_flip(padded, torch.arange(len(images)), *t, size=images.shape[1:3])
    return normalise(crops, augment).contiguous()
