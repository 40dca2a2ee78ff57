"""A run's parts, built from the recipe: the data set, the loaders, the model (DDP, compile), the batches
warm-up uses and the FLOP count. Plain functions of plain values; nothing here writes a record."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import torch

from bench.core.paths import data_base_dir
from bench.data.types import Dataset
from bench.recipe import Recipe
from bench.system import dist
from bench.system.dist import DistContext
from bench.train.loop import AMP_DTYPES


def load_data(recipe: Recipe, source: str, data_dir: Optional[Path]) -> Dataset:
    from bench.data.sources import load_dataset

    ds = load_dataset(source, data_dir=data_dir, base_dir=data_base_dir())
    return Dataset(ds.train.subset(recipe.data.train_subset), ds.test.subset(recipe.data.test_subset),
                   ds.identity)


def input_dtype(recipe: Recipe) -> torch.dtype:
    """Loaders hand over inputs already in the compute dtype; fp32 runs get fp32."""
    return AMP_DTYPES[recipe.precision] or torch.float32


def augment(recipe: Recipe):
    from bench.data.augment import Augment

    a = recipe.data.augment
    return Augment(flip=a.flip, pad=a.pad, pad_mode=a.pad_mode, brightness=a.brightness, contrast=a.contrast,
                   saturation=a.saturation, rotate=a.rotate)


def loaders(recipe: Recipe, ds: Dataset, device: torch.device, seed: int, dctx: DistContext):
    from bench.data.loaders import make_loader

    aug = augment(recipe)
    common = dict(device=device, dtype=input_dtype(recipe), channels_last=recipe.memory_format == "channels_last",
                  augment=aug, seed=seed, rank=dctx.rank, world=dctx.world_size, workers=recipe.data.workers)
    train = make_loader(recipe.data.loader, ds.train, train=True, batch_size=recipe.data.batch_size, **common)
    # Evaluation always reads the real test set: a synthetic *training* source must not fake accuracy.
    test_kind = "device" if recipe.data.loader == "synthetic" else recipe.data.loader
    test = make_loader(test_kind, ds.test, train=False, batch_size=recipe.data.eval_batch_size, **common)
    return train, test


def model(recipe: Recipe, device: torch.device, dctx: DistContext) -> tuple[torch.nn.Module, torch.nn.Module]:
    """Returns (module to train, module to evaluate): DDP wraps the first; evaluation uses the bare module
    because ranks may hold different numbers of test batches and DDP's forward would wait for peers."""
    from bench.models import build_model

    net = build_model(recipe.model.arch, recipe.model.params, source=recipe.model.source)
    if recipe.hardware.sync_bn and dctx.grouped:
        net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
    net = net.to(device)
    if recipe.memory_format == "channels_last":
        net = net.to(memory_format=torch.channels_last)
    bare = net
    if dctx.grouped:
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        net = DistributedDataParallel(net, device_ids=ids)
    if recipe.compile:
        # after DDP, so the compiler sees its gradient buckets; compilation itself happens in warm-up (init)
        net = torch.compile(net, mode=None if recipe.compile is True else recipe.compile)
    return net, bare


def eval_reduce(dctx: DistContext, device: torch.device) -> Callable[[list[float]], list[float]]:
    """How evaluation combines the ranks' [correct, total]: summed over the group (each rank evaluates its
    shard, and shards differ in size by up to one image), or kept as they are when running alone."""
    if dctx.grouped:
        return lambda counts: dist.all_reduce_sum(counts, device)
    return lambda counts: counts


def init_whitening(recipe: Recipe, model: torch.nn.Module, ds: Dataset, device: torch.device) -> None:
    """A model whose first layer is computed from the data (airnet's whitening conv) gets it here, in init:
    from a fixed draw of `model.whiten_images` training images, normalised as the loaders normalise them.
    Every rank draws the same images, so every rank computes the same filters."""
    if not hasattr(model, "init_whitening"):
        return
    from bench.data.augment import normalise

    images = torch.from_numpy(ds.train.subset(model.whiten_images).images).to(device)
    with torch.no_grad():
        model.init_whitening(normalise(images, augment(recipe)).contiguous())


def batch_sizes(samples: int, batch_size: int) -> list[int]:
    """The distinct batch sizes of an epoch: the full one and the last partial one, if any."""
    return sorted({min(batch_size, samples), samples % batch_size} - {0}, reverse=True)


def random_batch(recipe: Recipe, ds: Dataset, batch_size: int, device: torch.device):
    """Inputs shaped, typed and laid out like the loader's, for warm-up."""
    h, w = ds.train.images.shape[1:3]
    fmt = torch.channels_last if recipe.memory_format == "channels_last" else torch.contiguous_format
    x = torch.randn(batch_size, 3, h, w, device=device).to(input_dtype(recipe))
    y = torch.randint(0, len(ds.identity.classes), (batch_size,), device=device)
    return x.contiguous(memory_format=fmt), y


def warmup_batches(recipe: Recipe, ds: Dataset, train, test, device: torch.device):
    """Every batch shape an epoch will see, for training and for evaluation: cuDNN tunes per shape."""
    train_batches = [random_batch(recipe, ds, n, device)
                     for n in batch_sizes(train.samples_per_epoch, recipe.data.batch_size)]
    eval_batches = [random_batch(recipe, ds, n, device)[0]
                    for n in batch_sizes(test.samples_per_epoch, recipe.data.eval_batch_size)]
    return train_batches, eval_batches


def count_flops(recipe: Recipe, device: torch.device) -> dict:
    """FLOPs per image of the recipe's model; counting runs it, so callers do this during init."""
    from bench.models import build_model
    from bench.system.flops import flops_per_image

    try:
        net = build_model(recipe.model.arch, recipe.model.params, source=recipe.model.source).to(device)
        return flops_per_image(net, device=device)
    except Exception as exc:  # a model the counter cannot trace must not cost the run its row
        return {"error": f"{type(exc).__name__}: {exc}"}
