"""NVIDIA DALI pipelines. DALI is imported inside functions only: GPU test machines do not install it.

Arrays (`DaliLoader`): `fn.external_source` is fed this rank's batches in Python, so sharding and the
random plan come from bench.data.sharding / bench.data.augment like every other loader. DALI has no
reflect padding, so the split is padded once in numpy and crop_mirror_normalize cuts the crop out of the
padded image: crop_pos = dy / (2*pad) puts the window at exactly dy pixels (anchor = pos * (40 - 32),
rounded). A pipeline is built per epoch, because its prefetching would otherwise start reading the
next epoch before we know which epoch the caller wants; building one costs milliseconds.

Image folders (`folder_pipeline`): fn.readers.file shards the files itself (shard_id/num_shards) and
the decoder runs on the GPU ("mixed") when there is one.
"""
from __future__ import annotations

import os

import numpy as np
import torch

from bench.data.augment import Augment, draw_plan, pad_images
from bench.data.loaders import ArrayLoader, finish
from bench.data.types import Split
from bench.core.errors import BenchError


def _dali():
    try:
        import nvidia.dali as dali
        import nvidia.dali.fn  # noqa: F401  (submodules are not imported by the package)
        import nvidia.dali.types  # noqa: F401
        from nvidia.dali.plugin import pytorch  # noqa: F401
    except ImportError as e:
        raise BenchError(f"the dali loader needs NVIDIA DALI ({e}): pip install nvidia-dali-cuda130") from e
    return dali


def _device_id(device: torch.device) -> int | None:
    if device.type == "cpu":
        return None
    if device.type != "cuda":
        raise BenchError(f"the dali loader runs on cpu or cuda, not {device}")
    return device.index if device.index is not None else torch.cuda.current_device()


def _threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class DaliLoader(ArrayLoader):
    kind = "dali"

    def __init__(self, split: Split, *, train, batch_size, device, dtype, channels_last, augment: Augment,
                 seed, rank, world):
        _dali()
        super().__init__(split, train=train, batch_size=batch_size, device=device, dtype=dtype,
                         channels_last=channels_last, augment=augment, seed=seed, rank=rank, world=world)
        self.device_id = _device_id(device)
        self.images = pad_images(split.images, augment) if train else split.images
        self.labels = split.labels

    def _batches(self, epoch: int):
        idx = self._indices(epoch)
        crop = self.train and self.augment.pad > 0
        if self.train:
            plan = draw_plan(len(idx), self.augment, seed=self.seed, epoch=epoch, rank=self.rank)
            mirror = plan.flip.astype(np.int32)
        if crop:
            span = 2 * self.augment.pad
            pos_y, pos_x = (plan.dy / span).astype(np.float32), (plan.dx / span).astype(np.float32)
        for s in range(0, len(idx), self.batch_size):
            b = idx[s:s + self.batch_size]
            out = [self.images[b], self.labels[b]]
            if self.train:
                out.append(mirror[s:s + len(b)])
            if crop:
                out += [pos_x[s:s + len(b)], pos_y[s:s + len(b)]]
            yield tuple(out)

    def _pipeline(self, epoch: int):
        dali = _dali()
        fn, types = dali.fn, dali.types
        mean, std = self.augment.pixel_mean_std()
        crop = self.train and self.augment.pad > 0
        gpu = self.device_id is not None
        n_out = 2 + self.train + 2 * crop

        @dali.pipeline_def(batch_size=self.batch_size, num_threads=_threads(), device_id=self.device_id)
        def pipe():
            outs = fn.external_source(source=self._batches(epoch), num_outputs=n_out, batch=True,
                                      layout=["HWC"] + [""] * (n_out - 1))
            images, labels = outs[0], outs[1]
            args = {}
            if self.train:
                args["mirror"] = outs[2]
            if crop:
                args.update(crop=self.size, crop_pos_x=outs[3], crop_pos_y=outs[4], rounding="round")
            return fn.crop_mirror_normalize(
                images.gpu() if gpu else images, device="gpu" if gpu else "cpu",
                # float32 values passed as Python floats round-trip exactly, keeping bitwise agreement.
                mean=mean.tolist(), std=std.tolist(),
                dtype=types.FLOAT16 if self.dtype == torch.float16 else types.FLOAT,
                output_layout="HWC" if self.channels_last else "CHW", **args), labels

        return pipe()

    def epoch(self, epoch: int):
        from nvidia.dali.plugin.pytorch import DALIGenericIterator, LastBatchPolicy

        pipe = self._pipeline(epoch)
        pipe.build()
        for (out,) in DALIGenericIterator(pipe, ["images", "labels"], last_batch_policy=LastBatchPolicy.PARTIAL):
            x = out["images"]
            if self.channels_last:
                x = x.permute(0, 3, 1, 2)
            yield finish(x, self.dtype, self.channels_last), out["labels"].to(self.device, non_blocking=True)


def build(split, *, workers, **kw) -> DaliLoader:
    return DaliLoader(split, **kw)


def folder_pipeline(root: str, *, batch_size: int, device: torch.device, rank: int = 0, world: int = 1,
                    shuffle: bool = False, seed: int = 0, augment: Augment = Augment()):
    """Built pipeline over an image folder (one subfolder per class) giving ("images", "labels"):
    decoded, normalised float32 CHW images (no augmentation) and int32 labels. The reader is named
    "reader", for DALIGenericIterator(..., reader_name="reader") to stop at this shard's end."""
    dali = _dali()
    fn, types = dali.fn, dali.types
    device_id = _device_id(device)
    mean, std = augment.pixel_mean_std()

    @dali.pipeline_def(batch_size=batch_size, num_threads=_threads(), device_id=device_id, seed=seed)
    def pipe():
        files, labels = fn.readers.file(file_root=root, shard_id=rank, num_shards=world,
                                        random_shuffle=shuffle, name="reader")
        images = fn.decoders.image(files, device="cpu" if device_id is None else "mixed",
                                   output_type=types.RGB)
        images = fn.crop_mirror_normalize(images, mean=mean.tolist(), std=std.tolist(), output_layout="CHW")
        return images, labels

    p = pipe()
    p.build()
    return p
