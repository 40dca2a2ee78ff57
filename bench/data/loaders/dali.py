"""NVIDIA DALI pipelines. DALI is imported inside functions only: GPU test machines do not install it.

Arrays (`DaliLoader`): `fn.external_source` is fed this rank's batches in Python, so sharding and the
random plan come from bench.data.sharding / bench.data.augment like every other loader. DALI has no
reflect padding, so the split is padded once in numpy and crop_mirror_normalize cuts the crop out of the
padded image: crop_pos = dy / (2*pad) puts the window at exactly dy pixels (anchor = pos * (40 - 32),
rounded). A pipeline is built per epoch, because its prefetching would otherwise start reading the
next epoch before we know which epoch the caller wants; building one costs milliseconds. Colour jitter and
rotation (bench.data.augment steps 4-5) have no bit-identical DALI operators: when a recipe asks for them,
DALI hands over the uint8 crops and the batch is finished by the same torch code as in every other loader.
"""
from __future__ import annotations

import os

import numpy as np
import torch

from bench.data.augment import Augment, draw_plan, normalise, pad_images, photometric
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

    def _plan(self, epoch: int):
        if not self.train:
            return None
        idx = self._indices(epoch)
        return draw_plan(len(idx), self.augment, seed=self.seed, epoch=epoch, rank=self.rank, indices=idx)

    def _batches(self, epoch: int, plan):
        idx = self._indices(epoch)
        crop = self.train and self.augment.pad > 0
        if self.train:
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

    @property
    def _raw(self) -> bool:
        return self.train and self.augment.photometric

    def _pipeline(self, epoch: int, plan):
        dali = _dali()
        fn, types = dali.fn, dali.types
        mean, std = self.augment.pixel_mean_std()
        if self._raw:  # crop and mirror only: torch finishes the batch
            mean, std = np.zeros(3, np.float32), np.ones(3, np.float32)
        crop = self.train and self.augment.pad > 0
        gpu = self.device_id is not None
        n_out = 2 + self.train + 2 * crop

        @dali.pipeline_def(batch_size=self.batch_size, num_threads=_threads(), device_id=self.device_id)
        def pipe():
            outs = fn.external_source(source=self._batches(epoch, plan), num_outputs=n_out, batch=True,
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
                dtype=types.UINT8 if self._raw else types.FLOAT16 if self.dtype == torch.float16 else types.FLOAT,
                output_layout="HWC" if self.channels_last or self._raw else "CHW", **args), labels

        return pipe()

    def epoch(self, epoch: int):
        from nvidia.dali.plugin.pytorch import DALIGenericIterator, LastBatchPolicy

        plan = self._plan(epoch)
        pipe = self._pipeline(epoch, plan)
        pipe.build()
        start = 0
        for (out,) in DALIGenericIterator(pipe, ["images", "labels"], last_batch_policy=LastBatchPolicy.PARTIAL):
            x = out["images"]
            if self._raw:
                x = normalise(photometric(x, plan.rows(start, start + len(x))), self.augment)
            elif self.channels_last:
                x = x.permute(0, 3, 1, 2)
            start += len(x)
            yield finish(x, self.dtype, self.channels_last), out["labels"].to(self.device, non_blocking=True)


def build(split, *, workers, **kw) -> DaliLoader:
    return DaliLoader(split, **kw)
