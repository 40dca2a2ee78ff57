"""The whole split lives on the device as uint8; each batch is one gather plus a few elementwise ops.

The fastest real loader on a GPU: nothing crosses PCIe per batch except this epoch's indices and crop
choices, sent once per epoch.
"""
from __future__ import annotations

import numpy as np
import torch

from bench.data.augment import Augment, crop_flip, draw_plan, normalise, pad_images
from bench.data.loaders import finish, num_batches, shard_indices
from bench.data.types import Split


class DeviceLoader:
    kind = "device"
    synthetic = False

    def __init__(self, split: Split, *, train, batch_size, device, dtype, channels_last, augment: Augment,
                 seed, rank, world):
        self.train, self.batch_size, self.device = train, batch_size, device
        self.dtype, self.channels_last, self.augment = dtype, channels_last, augment
        self.seed, self.rank, self.world = seed, rank, world
        self.n, self.size = len(split), split.images.shape[1:3]
        images = pad_images(split.images, augment) if train else split.images
        self.images = torch.from_numpy(np.ascontiguousarray(images)).to(device)
        self.labels = torch.from_numpy(split.labels).to(device)
        self.samples_per_epoch = len(self._indices(0))

    def _indices(self, epoch: int) -> np.ndarray:
        return shard_indices(self.n, train=self.train, epoch=epoch, seed=self.seed, rank=self.rank,
                             world=self.world)

    def __len__(self) -> int:
        return num_batches(self.samples_per_epoch, self.batch_size)

    def epoch(self, epoch: int):
        idx = self._indices(epoch)
        if self.train:
            plan = draw_plan(len(idx), self.augment, seed=self.seed, epoch=epoch, rank=self.rank)
            rows = np.stack([idx, plan.dy, plan.dx, plan.flip.astype(np.int64)])
        else:
            rows = idx[None]
        rows = torch.from_numpy(rows).to(self.device)
        for start in range(0, len(idx), self.batch_size):
            cols = rows[:, start:start + self.batch_size]
            if self.train:
                pixels = crop_flip(self.images, cols[0], cols[1], cols[2], cols[3].bool(), self.size)
            else:
                pixels = self.images[cols[0]]
            x = finish(normalise(pixels, self.augment), self.dtype, self.channels_last)
            yield x, self.labels[cols[0]]


def build(split, *, workers, **kw) -> DeviceLoader:
    return DeviceLoader(split, **kw)
