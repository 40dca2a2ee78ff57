"""One run of a GAN recipe (kind: gan): the same clock, loop, records and bundle as a classifier's run.

Only the parts differ: the real images (scaled to [-1, 1]), the generator + critic, the WGAN step
(bench.train.gan) that fit runs per generator iteration, and the evaluation, which scores samples in the
judge's feature space (bench.train.quality) and saves a sample grid. In init, outside the clock: the judge
is loaded, the reference features of the held-out test images and of training images are computed, and
the baselines are scored and logged (an untrained generator, and real training images, each against the
same reference), so that every report can show where the target sits between them."""
from __future__ import annotations

import math
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from bench.core import mllog
from bench.core.clock import Clock
from bench.core.errors import BenchError
from bench.core.paths import data_base_dir
from bench.core.progress import StepBar
from bench.core.results import new_run_id
from bench.data.types import Dataset, Split
from bench.recipe import Recipe
from bench.run.context import RunContext
from bench.run.parts import input_dtype
from bench.run.records import RunRecords
from bench.train import gan, quality
from bench.train.loop import fit

SAMPLE_SEED = 1_000_003  # the fixed noise every evaluation draws its samples from (a separate generator)
REFERENCE_TRAIN = 10_000  # training images whose judge features the memorisation check searches
GRID = 64  # images in each sample grid (8 x 8)


def check(recipe: Recipe, world_size: int) -> None:
    """What a GAN run refuses, before anything is built (the machine's own checks come first)."""
    if world_size > 1:
        raise BenchError("hardware.procs_per_node: kind: gan runs in one process. DDP would need both networks "
                         "wrapped with the critic's many steps per generator step kept in lock-step, and weight "
                         "clipping applied identically on every rank; at DCGAN's size one GPU is not the "
                         "bottleneck. Use --set hardware.procs_per_node=1 hardware.nodes=1")
    if recipe.precision == "fp16":
        raise BenchError("precision: 'fp16' is not supported for kind: gan (GradScaler with two optimisers and "
                         "the gradient penalty's double backward is not implemented); use --set precision=bf16 "
                         "on a GPU with native bf16, or precision=fp32")
    if recipe.compile:
        raise BenchError("compile: true is not supported for kind: gan (the gradient penalty differentiates a "
                         "gradient, which torch.compile does not); use --set compile=false")


def image_size(recipe: Recipe) -> int:
    from bench.models import model_params

    size = recipe.model.params.get("image_size", model_params(recipe.model.arch).get("image_size"))
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise BenchError(f"model.params.image_size: kind: gan needs the generated images' size, got {size!r}; give "
                         f"{recipe.model.arch} an image_size parameter (a whole number of pixels, e.g. 32)")
    return size


def build_pair(recipe: Recipe):
    """The generator + critic module of a GAN recipe: dcgan, or a function of the user's own (model.arch
    path/to/file.py:function or package.module:function) returning a module with the same parts: .generator
    (with .nz and .noise(n, device=, generator=)) and .critic (one score per image), as bench.models.dcgan.GAN."""
    from bench.models import build_model

    net = build_model(recipe.model.arch, recipe.model.params, source=recipe.model.source)
    g = getattr(net, "generator", None)
    missing = [what for what, ok in (("generator", g is not None), ("critic", hasattr(net, "critic")),
                                     ("generator.nz", hasattr(g, "nz")), ("generator.noise", hasattr(g, "noise")))
               if not ok]
    if missing:
        raise BenchError(f"model.arch: {recipe.model.arch} returned a {type(net).__name__} without "
                         f"{', '.join(missing)}; kind: gan needs a generator and critic pair like "
                         f"bench.models.dcgan.GAN (generator with nz and noise(n, device=, generator=), critic)")
    return net


def load_data(recipe: Recipe, source: str, data_dir: Optional[Path]) -> Dataset:
    from bench.data.cifar import default_data_dir
    from bench.data.gan_images import load_gan_images

    ds = load_gan_images(source, image_size(recipe), data_dir=Path(data_dir) if data_dir else default_data_dir(),
                         base_dir=data_base_dir())
    return Dataset(ds.train.subset(recipe.data.train_subset), ds.test.subset(recipe.data.test_subset), ds.identity)


def judge_path(recipe: Recipe) -> Path:
    """Relative paths are tried in the working directory, then in the checkout (as data paths are)."""
    p = Path(recipe.gan.judge).expanduser()
    if p.is_absolute() or p.exists():
        return p
    return data_base_dir() / p


def as_tensor(split: Split, device: torch.device, n: Optional[int] = None) -> torch.Tensor:
    """uint8 HWC images -> float NCHW in [-1, 1] (the first n)."""
    x = torch.from_numpy(np.ascontiguousarray(split.images[:n])).to(device)
    return x.permute(0, 3, 1, 2).float().div(127.5).sub(1)


def grid_png(images: torch.Tensor, path: Path, nrow: int = 8) -> None:
    """[-1, 1] images as one PNG grid (2-pixel gaps), written atomically."""
    from PIL import Image

    x = ((images.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    n, h, w, _ = x.shape
    rows = math.ceil(n / nrow)
    canvas = np.full((rows * (h + 2) + 2, nrow * (w + 2) + 2, 3), 255, dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, nrow)
        canvas[2 + r * (h + 2):2 + r * (h + 2) + h, 2 + c * (w + 2):2 + c * (w + 2) + w] = x[i]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    Image.fromarray(canvas).save(tmp, format="PNG")
    tmp.replace(path)


@contextmanager
def frozen_buffers(module: torch.nn.Module):
    """Forward in train mode (BatchNorm on batch statistics, as training sees it) without moving the
    running statistics."""
    saved = {k: v.clone() for k, v in module.named_buffers()}
    was = module.training
    module.train()
    try:
        yield
    finally:
        with torch.no_grad():
            for k, v in module.named_buffers():
                v.copy_(saved[k])
        module.train(was)


class Evaluation:
    """fit's evaluate_fn: samples from a fixed noise, scored by the judge; returns (target metric, extras)."""

    def __init__(self, recipe: Recipe, net, step: gan.GanStep, judge: quality.Judge, ref: quality.Reference,
                 samples_dir: Optional[Path], device: torch.device):
        self.r, self.net, self.step, self.judge, self.ref = recipe, net, step, judge, ref
        self.samples_dir, self.device = samples_dir, device
        g = torch.Generator(device="cpu").manual_seed(SAMPLE_SEED)
        self.noise = torch.randn(recipe.gan.eval_samples, net.generator.nz, 1, 1, generator=g).to(device)
        self.scores = quality.JudgeScores(judge, ref.test_images, real_feats=ref.test_feats)
        self.count = 0
        self.untrained: Optional[float] = None  # the untrained generator's score (baselines), once known

    def moved(self, value: float) -> bool:
        """Whether the generator has left its untrained state (scores better than it did then). A fresh
        DCGAN draws near-uniform grey images that the collapse check cannot tell from a collapse, so a run
        fails for collapse only after training has moved it: the collapse the seed warns about."""
        if self.untrained is None:
            return True
        return value < self.untrained if self.r.target.mode == "min" else value > self.untrained

    @torch.no_grad()
    def samples(self) -> torch.Tensor:
        g = self.net.generator
        was = g.training
        g.eval()  # the seed draws its pictures with netG.eval()
        try:
            return torch.cat([g(self.noise[i:i + 500]).float() for i in range(0, self.noise.shape[0], 500)])
        finally:
            g.train(was)

    @torch.no_grad()
    def wasserstein(self) -> float:
        """The critic's estimate D(fake) - D(real) (minus the critic loss, without any penalty), on held-out
        real images and fresh fakes, both networks as training runs them."""
        real = self.ref.test_images[:256]
        with frozen_buffers(self.net.critic), frozen_buffers(self.net.generator):
            fake = self.net.generator(self.net.generator.noise(real.shape[0], device=real.device,
                                                               generator=None))
            return float(self.net.critic(fake).mean() - self.net.critic(real).mean())

    def score(self, images: torch.Tensor) -> dict:
        """Every figure the report shows for a set of [-1, 1] images (samples, or real ones as a baseline)."""
        g = self.r.gan
        feats, logits = self.judge.embed(images)
        out = self.scores(images, (feats, logits))
        collapse = quality.mode_collapse(logits, feats, self.ref.real_spread, max_share=g.collapse_share,
                                         min_spread=g.collapse_spread)
        memo = quality.memorisation(feats, self.ref.train_feats, self.ref.test_feats[:2000],
                                    min_ratio=g.memorised_ratio)
        out.update(collapse)
        out.update(memo)
        if self.ref.inception is not None:
            out.update(quality.standard_scores(self.ref.inception, self.ref.test_images, images))
        return out

    def save_grid(self, images: torch.Tensor, name: str) -> Optional[str]:
        if self.samples_dir is None:
            return None
        grid_png(images[:GRID], self.samples_dir / name)
        return f"samples/{name}"

    def __call__(self):
        self.count += 1
        images = self.samples()
        out = self.score(images)
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            out["wasserstein"] = self.wasserstein()  # its noise must not shift the run's own draws
        out.update(metric=self.r.target.metric, generator_iters=self.step.generator_updates,
                   critic_iters=self.step.critic_updates, samples=self.save_grid(images, f"eval_{self.count:04d}.png"))
        if out["collapsed"] and self.moved(out[self.r.target.metric]):
            names = self.judge.meta.get("classes") or []
            top = int(np.argmax(out["class_counts"]))
            label = names[top] if top < len(names) else str(top)
            out["failure"] = (f"mode collapse: the judge puts {out['top_class_share']:.0%} of the samples in class "
                              f"{label!r} and their spread in judge space is {out['spread_ratio']:.3f} of the real "
                              f"images' (limits: share >= {self.r.gan.collapse_share}, spread < "
                              f"{self.r.gan.collapse_spread})")
        return out[self.r.target.metric], out


def reference(recipe: Recipe, ds: Dataset, judge: quality.Judge, device: torch.device) -> quality.Reference:
    test = as_tensor(ds.test, device)
    keep = np.random.default_rng(0).permutation(len(ds.train))[:REFERENCE_TRAIN]
    train = as_tensor(Split(ds.train.images[np.sort(keep)], ds.train.labels[np.sort(keep)]), device)
    test_feats, _ = judge.embed(test)
    train_feats, _ = judge.embed(train)
    inception = quality.inception_metrics(recipe.gan.inception, device) if recipe.gan.inception else None
    return quality.Reference(test, test_feats, train_feats, quality.spread(test_feats[:2000]), inception)


def baselines(ev: Evaluation, ds: Dataset) -> dict:
    """The two ends of the scale, scored like any evaluation: the untrained generator's samples and real
    training images (as many as the samples), against the same held-out reference."""
    drawn = np.random.default_rng(1).permutation(len(ds.train))[:ev.r.gan.eval_samples]
    keep = np.sort(drawn)
    real = as_tensor(Split(ds.train.images[keep], ds.train.labels[keep]), ev.device)
    untrained = ev.samples()
    ev.save_grid(untrained, "untrained.png")
    # real.png: the first GRID drawn, in draw order; the lowest indices of a class-sorted folder are one class
    shown = drawn[:GRID]
    ev.save_grid(as_tensor(Split(ds.train.images[shown], ds.train.labels[shown]), ev.device), "real.png")
    keys = ("fd_judge", "is_judge", "kid_judge", "fid", "is", "class_entropy", "top_class_share", "spread_ratio",
            "nn_ratio")
    pick = lambda d: {k: d[k] for k in keys if k in d}  # noqa: E731
    return {"metric": ev.r.target.metric, "untrained": pick(ev.score(untrained)), "real": pick(ev.score(real)),
            "real_images": int(real.shape[0]), "reference_images": int(ev.ref.test_images.shape[0]),
            "judge": ev.judge.meta | {"path": str(ev.judge.path)}}


def run_once(ctx: RunContext, ds: Dataset, index: int, clock: Clock) -> dict:
    """Train the generator to the recipe's sample-quality target once; the results row (also recorded)."""
    from bench.data.augment import Augment
    from bench.data.loaders import make_loader
    recipe, dctx, device = ctx.recipe, ctx.dctx, ctx.device
    run_id = new_run_id()
    seed = recipe.seed + index
    with RunRecords(ctx, ds, run_id, seed, clock) as records:
        records.header(ds, seed)
        torch.manual_seed(seed)
        a = recipe.data.augment
        # mean = std = 0.5 scales pixels to [-1, 1], the generator's tanh range (the seed's inception_stats)
        aug = Augment(flip=a.flip, pad=a.pad, pad_mode=a.pad_mode, mean=(0.5,) * 3, std=(0.5,) * 3)
        channels_last = recipe.memory_format == "channels_last"
        loader = make_loader("device" if recipe.data.loader == "device" else recipe.data.loader, ds.train,
                             train=True, batch_size=recipe.data.batch_size, device=device, dtype=input_dtype(recipe),
                             channels_last=channels_last, augment=aug, seed=seed, workers=recipe.data.workers)
        net = build_pair(recipe).to(device)
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
        settings = gan.GanSettings.of(recipe.gan, recipe.data.batch_size)
        step = gan.GanStep(net, settings, device.type, recipe.precision)
        batches = gan.GanBatches(loader, settings, recipe.gan.gen_iters_per_epoch)
        judge = quality.load_judge(judge_path(recipe), device)
        ev = Evaluation(recipe, net, step, judge, reference(recipe, ds, judge, device),
                        records.run_dir / "samples" if records.run_dir else None, device)
        size = image_size(recipe)
        gan.warm_up(step, (recipe.data.batch_size, 3, size, size), recipe.warmup_steps, device,
                    input_dtype(recipe), channels_last)
        base = baselines(ev, ds)
        ev.untrained = base["untrained"][recipe.target.metric]
        records.event(mllog.GAN_BASELINES, {"value": None, **base})
        init_s = clock.ready()
        records.event(mllog.INIT_STOP, {"init_s": init_s})
        t = recipe.target
        ctx.say(f"run {index + 1 - ctx.first_run}/{recipe.runs}  seed {seed}  init {init_s:.1f}s  "
                f"{len(batches)} generator iterations/epoch x {recipe.optim.epochs} epochs  target {t.metric} "
                f"{'<=' if t.mode == 'min' else '>='} {t.value:g} (untrained {base['untrained'][t.metric]:.4g}, "
                f"real images {base['real'][t.metric]:.4g})")
        bar = StepBar(enabled=None if dctx.is_main else False)
        records.start_run()
        try:
            result = fit(net, gan.ConstantLr(step), batches, ev, epochs=recipe.optim.epochs,
                         eval_every=t.eval_every, target=t.value, clock=clock, device_type=device.type,
                         precision=recipe.precision, on_epoch=records.epoch, on_event=records.event,
                         on_step=lambda i, n: bar.step(i, n, images=step.last_images), step=step,
                         target_mode=t.mode, eval_key=mllog.EVAL_SCORE,
                         target_counts=not getattr(loader, "synthetic", False))
        finally:
            bar.close()
        return records.finish(result)
