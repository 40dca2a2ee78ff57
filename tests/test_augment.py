"""The augmentation's semantics (bench/data/augment.py's docstring) against an oracle built from other code.

tests/test_loaders.py checks that every loader gives the same bits as `augment.reference`; a bug they all
share (they share `photometric`, `Plan.rows`, `draw_plan`) passes there. Here the train transform is
rebuilt image by image from numpy's pad and torchvision's functional ops, and the flip bits from splitmix64
written out in Python integers, so a change in the shared code shows up as a difference.
"""
import warnings

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF

from bench.core.errors import BenchError
from bench.data.augment import Augment, draw_plan, image_bits, pad_images, reference

G = np.random.default_rng(11)
IMAGES = G.integers(0, 256, size=(24, 32, 32, 3), dtype=np.uint8)


def oracle(images: np.ndarray, plan, augment: Augment) -> torch.Tensor:
    """The docstring's steps 1-6, one image at a time: (N,3,H,W) float32."""
    mode = "reflect" if augment.pad_mode == "reflect" else "constant"
    p = augment.pad
    ops = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation)
    out = []
    for i, img in enumerate(images):
        padded = np.pad(img, ((p, p), (p, p), (0, 0)), mode=mode)
        crop = padded[plan.dy[i]:plan.dy[i] + img.shape[0], plan.dx[i]:plan.dx[i] + img.shape[1]]
        if plan.flip[i]:
            crop = crop[:, ::-1]
        x = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1).float() / 255
        if plan.order is not None:
            for k in plan.order[i]:
                if k >= 0:
                    x = ops[k](x, float(plan.factors[i, k]))
        if plan.angle is not None:
            x = TF.rotate(x, float(plan.angle[i]), interpolation=TF.InterpolationMode.NEAREST)
        out.append(x)
    return normalised(torch.stack(out), augment)


def normalised(x: torch.Tensor, augment: Augment) -> torch.Tensor:
    """Step 6 on (N,3,H,W) floats in [0, 1]."""
    return (x - torch.tensor(augment.mean)[:, None, None]) / torch.tensor(augment.std)[:, None, None]


@pytest.mark.parametrize("augment", [
    Augment(), Augment(pad_mode="zeros", pad=3), Augment(pad=0),
    Augment(brightness=0.25, contrast=0.25, saturation=0.25, rotate=2.0),  # wrn22's DAWNBench augmentation
    Augment(brightness=0.5),  # one adjustment: every image has the same first step and nothing after it
    Augment(saturation=0.6, rotate=30.0), Augment(contrast=0.4, pad=2), Augment(rotate=90.0, flip=False),
], ids=["crop-flip", "zeros3", "flip-only", "dawnbench", "brightness", "saturation+rotate", "contrast", "rotate"])
def test_train_transform_matches_an_image_by_image_oracle(augment):
    plan = draw_plan(len(IMAGES), augment, seed=5, epoch=3, rank=0)
    got = reference(IMAGES, plan, augment)
    assert got.dtype == torch.float32 and got.shape == (len(IMAGES), 3, 32, 32)
    # One pixel step is 1/(255*std) ~ 0.016 after normalisation; float32 rounding is ~1e-6.
    torch.testing.assert_close(got, oracle(IMAGES, plan, augment), atol=1e-4, rtol=0)
    if augment.photometric:  # and the photometric steps did something, so the comparison above means it
        plain = reference(IMAGES, draw_plan(len(IMAGES), Augment(pad=augment.pad, pad_mode=augment.pad_mode,
                                                                  flip=augment.flip),
                                            seed=5, epoch=3, rank=0), augment)
        assert (got - plain).abs().max() > 0.1


def test_eval_transform_is_normalisation_alone():
    augment = Augment(brightness=0.5, rotate=10.0)  # train-only steps must not leak into eval
    got = reference(IMAGES, None, augment)
    want = normalised(torch.from_numpy(IMAGES).permute(0, 3, 1, 2).float() / 255, augment)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def splitmix_bit(index: int, seed: int) -> int:
    """splitmix64's finaliser of index + (seed mod 2^32) * golden gamma, in Python's unbounded integers."""
    mask = 2**64 - 1
    z = (index + (seed % 2**32) * 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return (z ^ (z >> 31)) & 1


@pytest.mark.parametrize("seed", [0, 7, 2**32 + 5, 98765432101])
def test_flip_bits_are_splitmix64(seed):
    """Alternating flips start from these bits: a change would silently re-flip every image of a record run."""
    indices = np.arange(0, 3000, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # uint64 wrap-around is intended and must stay silent
        got = image_bits(indices, seed)
    assert got.dtype == bool
    assert got.tolist() == [bool(splitmix_bit(int(i), seed)) for i in indices]


def test_the_plan_stream_is_fixed_by_seed_epoch_and_rank():
    """A recipe's seed must redraw the same crops and flips in any later version of the harness (a rerun of
    a committed run depends on it): the documented stream is numpy's default_rng([seed, epoch, rank, 1])."""
    augment = Augment(pad=4)
    plan = draw_plan(500, augment, seed=3, epoch=2, rank=1)
    rng = np.random.default_rng([3, 2, 1, 1])
    np.testing.assert_array_equal(plan.dy, rng.integers(0, 9, size=500))
    np.testing.assert_array_equal(plan.dx, rng.integers(0, 9, size=500))
    np.testing.assert_array_equal(plan.flip, rng.random(500) < 0.5)


def test_plan_types_and_ranges():
    augment = Augment(brightness=0.3, contrast=0.2, rotate=0.5)  # rotations under a degree are still drawn
    plan = draw_plan(4000, augment, seed=1, epoch=0, rank=0)
    assert plan.dy.dtype == plan.dx.dtype == plan.order.dtype == np.int64
    assert plan.factors.dtype == plan.angle.dtype == np.float32 and plan.flip.dtype == bool
    assert plan.angle is not None and 0.45 < np.abs(plan.angle).max() <= 0.5
    assert plan.factors[:, 0].min() >= 0.7 and plan.factors[:, 0].max() <= 1.3
    assert (plan.factors[:, 2] == 1).all()  # saturation off: factor 1, and never in the order
    assert (plan.order[:, 2] == -1).all() and set(plan.order[:, :2].ravel()) == {0, 1}
    off = draw_plan(100, Augment(flip=False), seed=1, epoch=0, rank=0)
    assert off.flip.dtype == bool and not off.flip.any()
    rows = plan.rows(10, 20)
    assert set(rows) == {"factors", "order", "angle"}
    assert torch.equal(rows["angle"], torch.from_numpy(plan.angle[10:20]))
    assert draw_plan(10, Augment(), seed=1, epoch=0, rank=0).rows(0, 10) == {}


@pytest.mark.parametrize("pad", [0, 1, 3])
@pytest.mark.parametrize("mode", ["reflect", "zeros"])
def test_pad_images(pad, mode):
    got = pad_images(IMAGES, Augment(pad=pad, pad_mode=mode))
    want = np.pad(IMAGES, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect" if mode == "reflect" else "constant")
    assert got.shape == (len(IMAGES), 32 + 2 * pad, 32 + 2 * pad, 3)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("fields, message", [
    (dict(flip="sometimes"), "augment.flip='sometimes': use true, false or alternating"),
    (dict(pad_mode="edge"), "augment.pad_mode='edge': use one of reflect, zeros"),
    (dict(pad=-1), "augment.pad=-1: must be >= 0"),
    (dict(mean=(0.5, 0.5)), "augment mean/std must be 3 values each"),
    (dict(std=(0.2, 0.2)), "augment mean/std must be 3 values each"),
    (dict(std=(0.2, 0.0, 0.2)), "std > 0"),
    (dict(brightness=1.5), "augment.brightness=1.5: must be in [0, 1]"),
    (dict(saturation=-0.1), "augment.saturation=-0.1: must be in [0, 1]"),
    (dict(rotate=180.5), "augment.rotate=180.5: must be in [0, 180] degrees"),
    (dict(rotate=-1.0), "augment.rotate=-1.0"),
])
def test_bad_augment_fields_name_the_field_and_the_fix(fields, message):
    with pytest.raises(BenchError) as err:
        Augment(**fields)
    assert message in str(err.value)


def test_the_ends_of_each_range_are_allowed():
    for fields in (dict(pad=0), dict(brightness=1.0, contrast=1.0, saturation=1.0), dict(rotate=180.0),
                   dict(rotate=0.0, brightness=0.0), dict(flip="alternating"), dict(flip=False)):
        Augment(**fields)


def test_pixel_constants_are_in_0_255_units():
    augment = Augment(mean=(0.5, 0.25, 0.1), std=(0.2, 0.4, 1.0))
    mean, std = augment.pixel_mean_std()
    np.testing.assert_array_equal(mean, np.float32([127.5, 63.75, 25.5]))
    np.testing.assert_array_equal(std, np.float32([51.0, 102.0, 255.0]))
    assert mean.dtype == std.dtype == np.float32
