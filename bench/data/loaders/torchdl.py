"""The classic PyTorch input pipeline: CPU worker processes transform one sample at a time.

Transforms are numpy slicing plus float arithmetic on uint8 (no PIL/torchvision), so they match the
other loaders exactly. The sampler hands each worker (index, dy, dx, flip), drawn for the whole epoch in
the main process, which makes the batches independent of the number of workers. Colour jitter and rotation
(bench.data.augment steps 4-5), when a recipe asks for them, run on the collated batch in the main process,
with the same batched torch code as every other loader: workers then hand over uint8 crops.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from bench.data.augment import Augment, draw_plan, normalise, pad_images, photometric
from bench.data.loaders import ArrayLoader, finish
from bench.data.types import Split


class _Samples(Dataset):
    def __init__(self, images: np.ndarray, labels: np.ndarray, size, augment: Augment, raw: bool):
        self.images, self.labels, (self.h, self.w) = images, labels, size
        self.shift, self.scale = augment.norm_constants()
        self.raw = raw  # hand over uint8 crops: the batch is finished in the main process

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, key):
        i, dy, dx, flip = key
        crop = self.images[i, dy:dy + self.h, dx:dx + self.w]
        if flip:
            crop = crop[:, ::-1]
        if self.raw:
            return torch.from_numpy(np.ascontiguousarray(crop)), int(self.labels[i])
        # HWC stays HWC: the batch is permuted once after collation instead of per sample.
        x = (crop.astype(np.float32) - self.shift) * self.scale
        return torch.from_numpy(x), int(self.labels[i])


class _EpochSampler(Sampler):
    """Yields the keys set for the current epoch; lives in the main process, so setting them before
    iterating reaches persistent workers too."""

    def __init__(self):
        self.keys: list = []

    def __iter__(self):
        return iter(self.keys)

    def __len__(self):
        return len(self.keys)


class TorchLoader(ArrayLoader):
    kind = "torch"

    def __init__(self, split: Split, *, train, batch_size, device, dtype, channels_last, augment: Augment,
                 seed, rank, world, workers):
        super().__init__(split, train=train, batch_size=batch_size, device=device, dtype=dtype,
                         channels_last=channels_last, augment=augment, seed=seed, rank=rank, world=world)
        images = pad_images(split.images, augment) if train else split.images
        self.sampler = _EpochSampler()
        self.raw = train and augment.photometric
        self.loader = DataLoader(
            _Samples(images, split.labels, split.images.shape[1:3], augment, self.raw), batch_size=batch_size,
            sampler=self.sampler, num_workers=workers, pin_memory=device.type == "cuda",
            persistent_workers=workers > 0, drop_last=False)

    def epoch(self, epoch: int):
        idx = self._indices(epoch)
        plan = None
        if self.train:
            plan = draw_plan(len(idx), self.augment, seed=self.seed, epoch=epoch, rank=self.rank, indices=idx)
            self.sampler.keys = list(zip(idx.tolist(), plan.dy.tolist(), plan.dx.tolist(), plan.flip.tolist()))
        else:
            self.sampler.keys = [(i, 0, 0, False) for i in idx.tolist()]
        for start, (x, y) in zip(range(0, len(idx), self.batch_size), self.loader):
            x = x.to(self.device, non_blocking=True)
            if self.raw:
                x = normalise(photometric(x, plan.rows(start, start + len(y))), self.augment)
            else:
                x = x.permute(0, 3, 1, 2)
            yield finish(x, self.dtype, self.channels_last), y.to(self.device, non_blocking=True)


def build(split, **kw) -> TorchLoader:
    return TorchLoader(split, **kw)
