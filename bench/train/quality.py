"""Sample quality without downloaded weights: scores in the feature space of a judge this harness trained.

The judge is a small CIFAR-10 classifier trained by `bench run judge --save-model ...` (its checkpoint
and a JSON of its provenance are committed in results/judges/). torchmetrics' FrechetInceptionDistance,
InceptionScore and KernelInceptionDistance compute the usual formulas from the judge's outputs instead of
Inception's (the judge runs once per image and its features go to all three), so the figures carry the
judge's name: fd_judge (Frechet distance of
penultimate features), is_judge (exp E KL(p(y|x) || p(y)) of the judge's class probabilities, one split),
kid_judge (polynomial-kernel MMD). They compare our runs with each other, never with published FID/IS.

The seed's two worries, as numbers: mode collapse (the judge's class histogram of samples: entropy and the
largest class's share, plus the samples' spread in judge space against real images') and memorisation
(each sample's distance to its nearest training image in judge space, against the same distance for the
test images). Standard FID and IS need torch-fidelity's Inception weights, which cannot be downloaded
here: `inception_metrics(path)` builds them from a weights file the user supplies.

Images enter every function as float tensors in [-1, 1] (what the generator's tanh gives).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from bench.core.errors import BenchError

CIFAR_MEAN = (0.4914, 0.48216, 0.44653)  # what the judge was trained on (bench.data.augment.Augment)
CIFAR_STD = (0.24703, 0.24349, 0.26159)


class JudgeView(nn.Module):
    """The judge seen from torchmetrics: [0, 1] images in, penultimate features or logits out. Images of
    another size (64x64 bedrooms) are resized to the judge's 32x32 first (area averaging)."""

    def __init__(self, judge: nn.Module, output: str, size: int = 32):
        super().__init__()
        self.judge, self.output, self.size = judge, output, size
        self.register_buffer("mean", torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(CIFAR_STD).view(1, 3, 1, 1))

    def forward(self, x01: torch.Tensor) -> torch.Tensor:
        x = x01.float()
        if x.shape[-1] != self.size:
            x = nn.functional.interpolate(x, size=(self.size, self.size), mode="area")
        x = (x - self.mean) / self.std
        feats = self.judge[:-2](x)  # resnet9: everything before the linear head and its scale
        return feats if self.output == "features" else self.judge[-2:](feats)


@dataclass
class Judge:
    net: nn.Module  # the classifier, eval mode, frozen
    meta: dict  # the JSON beside the checkpoint: data fingerprint, accuracy, recipe hash, command
    path: Path

    @property
    def name(self) -> str:
        return self.path.stem

    def view(self, output: str) -> JudgeView:
        return JudgeView(self.net, output).to(next(self.net.parameters()).device)

    @torch.no_grad()
    def embed(self, images: torch.Tensor, batch: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
        """(features, logits) in fp32 for [-1, 1] images, in batches."""
        feats, logits = [], []
        fview, head = self.view("features"), self.net[-2:]
        for i in range(0, images.shape[0], batch):
            f = fview(to01(images[i:i + batch]))
            feats.append(f.float())
            logits.append(head(f).float())
        return torch.cat(feats), torch.cat(logits)


def to01(x: torch.Tensor) -> torch.Tensor:
    return (x.float() + 1) / 2


def load_judge(path: str | Path, device: torch.device | str = "cpu") -> Judge:
    """The judge checkpoint (bench.run.checkpoint writes it) with its JSON; bad files raise BenchError."""
    from bench.models import build_model, user

    path = Path(path)
    meta_path = path.with_suffix(".json")
    if not path.is_file():
        raise BenchError(f"gan.judge: {path} does not exist; rebuild it with `python -m bench run judge --set "
                         f"precision=fp32 --save-model {path}` or name another with --set gan.judge=PATH")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        if user.is_user(ckpt["arch"]):  # a network of the user's own: built from the source the checkpoint carries
            net = user.build_saved(ckpt["arch"], ckpt.get("source"), ckpt["params"], ckpt.get("num_classes", 10),
                                   f"gan.judge: {path}")
        else:
            net = build_model(ckpt["arch"], ckpt["params"], num_classes=ckpt.get("num_classes", 10))
        net.load_state_dict(ckpt["state_dict"])
    except BenchError:
        raise
    except Exception as exc:
        raise BenchError(f"gan.judge: {path} is not a judge checkpoint ({type(exc).__name__}: {exc}); "
                         f"rebuild it with `python -m bench run judge --save-model {path}`") from None
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    net.eval().requires_grad_(False)
    return Judge(net.to(device), meta, path)


# ------------------------------------------------------------------------------ the judge-space scores

def _metrics_no_rng(fn):
    # torchmetrics' IS and KID shuffle with the global generator; an evaluation must not move the run's draws
    import warnings

    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # one split has no std: we report the mean only
        torch.manual_seed(0)
        return fn()


class Precomputed(nn.Module):
    """The judge's output, handed to torchmetrics as its "feature network": the judge runs once per image
    (bench.train.quality.Judge.embed) and torchmetrics computes each statistic from what it gave."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features  # torchmetrics reads it instead of probing with a dummy image

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class JudgeScores:
    """torchmetrics' FrechetInceptionDistance, KernelInceptionDistance and InceptionScore in the judge's
    space: fd_judge and kid_judge from its penultimate features, is_judge from its logits. The real side
    (held-out test images) is fed once, at construction (reset_real_features=False keeps it across resets);
    each evaluation feeds its samples' features, computed once by the judge for every score and check."""

    def __init__(self, judge: Judge, real: torch.Tensor, kid_subsets: int = 10, kid_size: int = 1000,
                 real_feats: Optional[torch.Tensor] = None):
        import warnings

        from torchmetrics.image.fid import FrechetInceptionDistance
        from torchmetrics.image.inception import InceptionScore
        from torchmetrics.image.kid import KernelInceptionDistance

        self.judge = judge
        feats = judge.embed(real)[0] if real_feats is None else real_feats
        dev, width = feats.device, feats.shape[1]
        self.fid = FrechetInceptionDistance(feature=Precomputed(width), reset_real_features=False).to(dev)
        self.kid_size = min(kid_size, feats.shape[0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "will save all extracted features": we mean it
            self.kid = KernelInceptionDistance(feature=Precomputed(width), subsets=kid_subsets,
                                               subset_size=self.kid_size, reset_real_features=False).to(dev)
            self.inception = InceptionScore(feature=Precomputed(0), splits=1).to(dev)
        self.fid.update(feats, real=True)
        self.kid.update(feats, real=True)

    @torch.no_grad()
    def __call__(self, fake: torch.Tensor, embedded: Optional[tuple] = None) -> dict:
        """fd_judge, kid_judge (mean over subsets; needs as many samples as kid_size) and is_judge of [-1, 1]
        images, or of their judge.embed() output if the caller has it already."""
        feats, logits = embedded if embedded is not None else self.judge.embed(fake)
        for m in (self.fid, self.kid, self.inception):
            m.reset()
        self.fid.update(feats, real=False)
        self.kid.update(feats, real=False)
        self.inception.update(logits)
        out = {"fd_judge": float(self.fid.compute()), "is_judge": float(_metrics_no_rng(self.inception.compute)[0])}
        if feats.shape[0] >= self.kid_size:
            out["kid_judge"] = float(_metrics_no_rng(self.kid.compute)[0])
        return out


def fd_judge(judge: Judge, real: torch.Tensor, fake: torch.Tensor) -> float:
    return JudgeScores(judge, real)(fake)["fd_judge"]


def is_judge(judge: Judge, fake: torch.Tensor) -> float:
    return JudgeScores(judge, fake[:2])(fake)["is_judge"]


def kid_judge(judge: Judge, real: torch.Tensor, fake: torch.Tensor, subsets: int = 10) -> float:
    return JudgeScores(judge, real, kid_subsets=subsets)(fake)["kid_judge"]


def frechet(f1: torch.Tensor, f2: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (the formula FID uses), in float64:
    the same figure fd_judge gives, from features already computed."""
    from scipy import linalg

    a, b = f1.double().cpu().numpy(), f2.double().cpu().numpy()
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = _cov(a), _cov(b)
    covmean = linalg.sqrtm(s1 @ s2)
    return float(((mu1 - mu2) ** 2).sum() + s1.trace() + s2.trace() - 2 * covmean.real.trace())


def _cov(a):
    import numpy as np

    return np.cov(a, rowvar=False)


def inception_score(logits: torch.Tensor) -> float:
    """exp(E_x KL(p(y|x) || p(y))), from logits already computed (the same figure is_judge gives)."""
    p = logits.double().softmax(1)
    py = p.mean(0, keepdim=True)
    kl = (p * (p.clamp_min(1e-300).log() - py.log())).sum(1).mean()
    return float(kl.exp())


# ------------------------------------------------------------------------------ the seed's worries

def class_histogram(logits: torch.Tensor) -> dict:
    """The judge's verdict on each sample, counted: entropy (as a fraction of log K: 1 = uniform) and the
    largest class's share. A generator stuck on a few modes piles its samples into a few classes."""
    k = logits.shape[1]
    counts = torch.bincount(logits.argmax(1).cpu(), minlength=k).double()
    p = counts / counts.sum()
    entropy = float(-(p[p > 0] * p[p > 0].log()).sum() / math.log(k))
    return {"class_counts": [int(c) for c in counts], "class_entropy": entropy, "top_class_share": float(p.max())}


def spread(features: torch.Tensor) -> float:
    """Mean distance between features of different samples (0 when every sample is the same image)."""
    f = features.double()
    n = f.shape[0]
    if n < 2:
        return 0.0
    d = torch.cdist(f, f)
    return float(d.sum() / (n * (n - 1)))


def mode_collapse(logits: torch.Tensor, features: torch.Tensor, real_spread: float, *,
                  max_share: float = 0.9, min_spread: float = 0.1) -> dict:
    """Collapse when the samples pile into one judge class AND sit closer together in judge space than
    `min_spread` x the real images' spread. Both, because an untrained generator's noise is often all one
    class to a classifier while still being diverse noise."""
    hist = class_histogram(logits)
    ratio = spread(features) / real_spread if real_spread > 0 else float("nan")
    collapsed = hist["top_class_share"] >= max_share and ratio < min_spread
    return {**hist, "spread_ratio": ratio, "collapsed": bool(collapsed)}


def nearest_distances(queries: torch.Tensor, reference: torch.Tensor, batch: int = 1024) -> torch.Tensor:
    out = []
    for i in range(0, queries.shape[0], batch):
        out.append(torch.cdist(queries[i:i + batch].double(), reference.double()).min(1).values)
    return torch.cat(out)


def memorisation(sample_feats: torch.Tensor, train_feats: torch.Tensor, test_feats: torch.Tensor, *,
                 min_ratio: float = 0.5) -> dict:
    """Median distance from each sample to its nearest training image, over the same for held-out test
    images (which the generator never saw: the distance a fresh image has). Copies of training images give
    a ratio near 0; `copies` counts samples closer to a training image than any test image ever gets."""
    d_fake = nearest_distances(sample_feats, train_feats)
    d_test = nearest_distances(test_feats, train_feats)
    base = float(d_test.median())
    ratio = float(d_fake.median()) / base if base > 0 else float("nan")
    return {"nn_median_samples": float(d_fake.median()), "nn_median_test": base, "nn_ratio": ratio,
            "copies": int((d_fake < float(d_test.min())).sum()), "memorised": bool(ratio < min_ratio)}


# ------------------------------------------------------------------------------ standard FID / IS

def inception_metrics(weights_path: str | Path, device: torch.device | str = "cpu"):
    """torchmetrics' FID and IS on torch-fidelity's InceptionV3, built from a weights file the user supplies
    (gan.inception: PATH; e.g. weights-inception-2015-12-05-6726825d.pth from torch-fidelity's releases).
    Returns (fid, inception_score) metric objects taking [0, 1] float images; nothing is downloaded."""
    from torchmetrics.image.fid import FrechetInceptionDistance, NoTrainInceptionV3
    from torchmetrics.image.inception import InceptionScore

    path = Path(weights_path)
    if not path.is_file():
        raise BenchError(f"gan.inception: {path} does not exist; give the path of torch-fidelity's Inception "
                         f"weights file (pt_inception-2015-12-05), or leave gan.inception unset")
    fid = FrechetInceptionDistance(feature=2048, normalize=True, feature_extractor_weights_path=str(path))
    logits = NoTrainInceptionV3(name="inception-v3-compat", features_list=["logits_unbiased"],
                                feature_extractor_weights_path=str(path))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        score = InceptionScore(feature=logits, splits=1, normalize=True)
    return fid.to(device), score.to(device)


def standard_scores(metrics, real: torch.Tensor, fake: torch.Tensor) -> dict:
    """FID and IS (Inception space: comparable with papers only on official CIFAR-10 with 50k samples)."""
    fid, score = metrics
    fid.reset()
    score.reset()
    fid.update(to01(real), real=True)
    fid.update(to01(fake), real=False)
    # torch-fidelity's network wants uint8 pixels: IS's normalize=True converts [0, 1] floats for it
    score.update(to01(fake))
    return {"fid": float(fid.compute()), "is": float(_metrics_no_rng(score.compute)[0])}


@dataclass(frozen=True)
class Reference:
    """What every evaluation compares samples with, computed once in init (before run_start): the judge's
    features of held-out test images (the FD/KID reference) and of training images (memorisation)."""
    test_images: torch.Tensor
    test_feats: torch.Tensor
    train_feats: torch.Tensor
    real_spread: float
    inception: Optional[tuple] = None
