"""Loaders: one interface, four implementations, identical augmentation (see bench.data.augment).

A batch is (images, labels): images float `dtype`, logical shape (B, 3, H, W), normalised, on `device`,
channels_last in memory if asked; labels int64 on `device`. Train loaders read this rank's shard of a
fresh permutation each epoch and augment; eval loaders read their shard in order, unaugmented. The last
partial batch is kept. Implementations are imported on first use, so DALI is only imported when asked for.
"""
from __future__ import annotations

import importlib
import math
from typing import Iterator, Protocol

import numpy as np
import torch

from bench.data.augment import Augment
from bench.data.sharding import epoch_indices, eval_indices
from bench.data.types import Split
from bench.core.errors import BenchError

LOADERS = ("device", "dali", "torch", "synthetic")
DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_MODULES = {"device": "device", "dali": "dali", "torch": "torchdl", "synthetic": "synthetic"}


class Loader(Protocol):
    kind: str
    synthetic: bool  # True: accuracy measured on its batches means nothing
    samples_per_epoch: int  # this rank's samples per epoch

    def __len__(self) -> int: ...  # batches per epoch for this rank

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...


def make_loader(kind: str, split: Split, *, train: bool, batch_size: int, device: torch.device,
                dtype: torch.dtype, channels_last: bool, augment: Augment, seed: int,
                rank: int = 0, world: int = 1, workers: int = 2) -> Loader:
    if kind not in LOADERS:
        raise BenchError(f"unknown loader {kind!r}: use one of {', '.join(LOADERS)}")
    if dtype not in DTYPES:
        raise BenchError(f"loader dtype {dtype}: use float32, bfloat16 or float16")
    if batch_size < 1:
        raise BenchError(f"batch_size={batch_size}: must be >= 1")
    if len(shard_indices(len(split), train=train, epoch=0, seed=seed, rank=rank, world=world)) == 0:
        raise BenchError(f"{len(split)} images leave nothing for rank {rank} of {world}: use fewer processes")
    module = importlib.import_module(f"{__name__}.{_MODULES[kind]}")
    return module.build(split, train=train, batch_size=batch_size, device=torch.device(device), dtype=dtype,
                        channels_last=channels_last, augment=augment, seed=seed, rank=rank, world=world,
                        workers=workers)


# Helpers shared by the implementations.

def shard_indices(n: int, *, train: bool, epoch: int, seed: int, rank: int, world: int) -> np.ndarray:
    if train:
        return epoch_indices(n, epoch=epoch, seed=seed, rank=rank, world=world)
    return eval_indices(n, rank=rank, world=world)


def num_batches(samples: int, batch_size: int) -> int:
    return math.ceil(samples / batch_size)


class ArrayLoader:
    """What the array-backed loaders share: the configuration, this rank's indices for an epoch and the
    batch count. Subclasses turn indices (and the epoch's random plan) into batches."""

    kind = "?"
    synthetic = False

    def __init__(self, split: Split, *, train, batch_size, device, dtype, channels_last, augment: Augment,
                 seed, rank, world):
        self.train, self.batch_size, self.device = train, batch_size, device
        self.dtype, self.channels_last, self.augment = dtype, channels_last, augment
        self.seed, self.rank, self.world, self.n = seed, rank, world, len(split)
        self.size = split.images.shape[1:3]
        self.samples_per_epoch = len(self._indices(0))

    def _indices(self, epoch: int) -> np.ndarray:
        return shard_indices(self.n, train=self.train, epoch=epoch, seed=self.seed, rank=self.rank,
                             world=self.world)

    def __len__(self) -> int:
        return num_batches(self.samples_per_epoch, self.batch_size)


def finish(x: torch.Tensor, dtype: torch.dtype, channels_last: bool) -> torch.Tensor:
    """Cast a float NCHW batch and give it the requested memory format (copies only when needed)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return x.to(dtype).contiguous(memory_format=fmt)
