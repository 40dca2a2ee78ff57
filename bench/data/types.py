"""Plain values that data sources hand to loaders: uint8 images in HWC order plus int64 labels."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # uint8, shape (N, H, W, 3), HWC, RGB
    labels: np.ndarray  # int64, shape (N,)

    def __post_init__(self):
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[-1] != 3:
            raise ValueError(f"images must be uint8 (N,H,W,3), got {self.images.dtype} {self.images.shape}")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(f"labels shape {self.labels.shape} does not match {self.images.shape[0]} images")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, n: int | None, seed: int = 0) -> "Split":
        """n images drawn by a fixed permutation: image folders are sorted by class, so a plain prefix
        would hold one class only. The same (n, seed) always gives the same images."""
        if n is None or n >= len(self):
            return self
        keep = np.sort(np.random.default_rng(seed).permutation(len(self))[:n])
        return Split(self.images[keep], self.labels[keep])


@dataclass(frozen=True)
class DatasetIdentity:
    name: str  # e.g. "cifar10" (official) or "imagefolder:cifar10-jpeg-q75"
    fingerprint: str  # sha256 over decoded pixels and labels of both splits, hex
    classes: tuple[str, ...]
    train_count: int
    test_count: int
    train_per_class: tuple[int, ...] = field(default=())
    test_per_class: tuple[int, ...] = field(default=())

    @property
    def short(self) -> str:
        return self.fingerprint[:12]


@dataclass(frozen=True)
class Dataset:
    train: Split
    test: Split
    identity: DatasetIdentity
