"""The whole split lives on the device as uint8; each batch is one gather plus a few elementwise ops.

The fastest real loader on a GPU: nothing crosses PCIe per batch except this epoch's indices and crop
choices, sent once per epoch.
"""
from __future__ import annotations

import numpy as np
import torch

from bench.data.augment import Augment, crop_flip, draw_plan, normalise, pad_images, photometric
from bench.data.loaders import ArrayLoader, finish
from bench.data.types import Split


class DeviceLoader(ArrayLoader):
    kind = "device"

    def __init__(self, split: Split, *, train, batch_size, device, dtype, channels_last, augment: Augment,
                 seed, rank, world):
        super().__init__(split, train=train, batch_size=batch_size, device=device, dtype=dtype,
                         channels_last=channels_last, augment=augment, seed=seed, rank=rank, world=world)
        images = pad_images(split.images, augment) if train else split.images
        self.images = torch.from_numpy(np.ascontiguousarray(images)).to(device)
        self.labels = torch.from_numpy(split.labels).to(device)

    def epoch(self, epoch: int):
        idx = self._indices(epoch)
        plan = None
        if self.train:
            plan = draw_plan(len(idx), self.augment, seed=self.seed, epoch=epoch, rank=self.rank, indices=idx)
            rows = np.stack([idx, plan.dy, plan.dx, plan.flip.astype(np.int64)])
        else:
            rows = idx[None]
        rows = torch.from_numpy(rows).to(self.device)
        for start in range(0, len(idx), self.batch_size):
            cols = rows[:, start:start + self.batch_size]
            if self.train:
                pixels = crop_flip(self.images, cols[0], cols[1], cols[2], cols[3].bool(), self.size)
                if self.augment.photometric:
                    pixels = photometric(pixels, plan.rows(start, start + self.batch_size))
            else:
                pixels = self.images[cols[0]]
            x = finish(normalise(pixels, self.augment), self.dtype, self.channels_last)
            yield x, self.labels[cols[0]]


def build(split, *, workers, **kw) -> DeviceLoader:
    return DeviceLoader(split, **kw)
