"""One random batch made once on the device and served again and again: the speed no real loader can
beat. Its accuracy results never count (`synthetic = True`)."""
from __future__ import annotations

import torch

from bench.data.loaders import finish, num_batches, shard_indices
from bench.data.types import Split


class SyntheticLoader:
    kind = "synthetic"
    synthetic = True

    def __init__(self, split: Split, *, train, batch_size, device, dtype, channels_last, seed, rank, world,
                 **_):
        self.batch_size = batch_size
        self.samples_per_epoch = len(shard_indices(len(split), train=train, epoch=0, seed=seed, rank=rank,
                                                   world=world))
        b = min(batch_size, self.samples_per_epoch)
        h, w = split.images.shape[1:3]
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(b, 3, h, w, generator=g)
        y = torch.randint(0, int(split.labels.max()) + 1, (b,), generator=g)
        self.x, self.y = finish(x.to(device), dtype, channels_last), y.to(device)

    def __len__(self) -> int:
        return num_batches(self.samples_per_epoch, self.batch_size)

    def epoch(self, epoch: int):
        for start in range(0, self.samples_per_epoch, self.batch_size):
            k = min(self.batch_size, self.samples_per_epoch - start)
            yield self.x[:k], self.y[:k]


def build(split, **kw) -> SyntheticLoader:
    return SyntheticLoader(split, **kw)
