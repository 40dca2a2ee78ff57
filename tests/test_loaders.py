"""Loaders: one semantics everywhere, sharding, output format, the `bench loaders` command.

Images here encode their own coordinates (channel 0: row + 32 * (index // 256), channel 1: column,
channel 2: index % 256), and IDENTITY normalisation leaves pixel values unchanged, so the crop offset,
flip and source image of every augmented sample can be read back from its pixels.
"""
import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from bench.data.augment import Augment, draw_plan, reference
from bench.cli import build_parser
from bench.data.loader_bench import KEYS
from bench.data.loaders import LOADERS, make_loader
from bench.data.sharding import epoch_indices, eval_indices
from bench.data.types import Split
from bench.core.errors import BenchError


# DALI is a declared dependency (pyproject.toml): every case runs it, and a machine without it fails them
# (test_dali_is_installed says why) rather than quietly testing three loaders out of four.
REAL = ("device", "torch", "dali")
KINDS = tuple(LOADERS)
IDENTITY = dict(mean=(0.0, 0.0, 0.0), std=(1 / 255,) * 3)
CPU = torch.device("cpu")


def coord_split(n=512) -> Split:
    i = np.arange(n)[:, None, None]
    rows, cols = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    img = np.stack(np.broadcast_arrays(rows + 32 * (i // 256), cols + 0 * i, i % 256 + 0 * rows), axis=-1)
    return Split(img.astype(np.uint8), (np.arange(n) % 10).astype(np.int64))


SPLIT = coord_split()


def load(kind, split=SPLIT, *, epoch=0, train=True, augment=Augment(), batch_size=100, dtype=torch.float32,
         channels_last=True, seed=7, rank=0, world=1, workers=0):
    loader = make_loader(kind, split, train=train, batch_size=batch_size, device=CPU, dtype=dtype,
                         channels_last=channels_last, augment=augment, seed=seed, rank=rank, world=world,
                         workers=workers)
    batches = [(x.clone(), y.clone()) for x, y in loader.epoch(epoch)]
    assert len(batches) == len(loader)
    return torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches]), loader


def decode(x):
    """(index, dy, dx, flip) of identity-normalised coordinate images cropped from pad=4."""
    c = x[:, :, 16, 16].round().long()
    flip = x[:, 1, 16, 17] < x[:, 1, 16, 16]
    index = (c[:, 0] // 32) * 256 + c[:, 2]
    return index, c[:, 0] % 32 - 12, torch.where(flip, c[:, 1] - 11, c[:, 1] - 12), flip


# Sharding


@pytest.mark.parametrize("world", [1, 2, 3])
def test_train_shards(world):
    n = 101
    for epoch in (0, 1):
        shards = [epoch_indices(n, epoch=epoch, seed=5, rank=r, world=world) for r in range(world)]
        assert {len(s) for s in shards} == {n // world}
        joined = np.concatenate(shards)
        assert len(set(joined.tolist())) == len(joined) == (n // world) * world
        # Every rank cut its slice out of the one permutation that a single process would read.
        np.testing.assert_array_equal(joined, epoch_indices(n, epoch=epoch, seed=5, rank=0, world=1)[:len(joined)])
    e0, e1 = (epoch_indices(n, epoch=e, seed=5, rank=0, world=world) for e in (0, 1))
    assert not np.array_equal(e0, e1)
    np.testing.assert_array_equal(e0, epoch_indices(n, epoch=0, seed=5, rank=0, world=world))


@pytest.mark.parametrize("world", [1, 2, 3])
def test_eval_shards(world):
    shards = [eval_indices(100, rank=r, world=world) for r in range(world)]
    np.testing.assert_array_equal(np.concatenate(shards), np.arange(100))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_unshuffled_shards_are_contiguous_slices_in_order():
    np.testing.assert_array_equal(epoch_indices(11, epoch=3, seed=5, rank=1, world=2, shuffle=False), [5, 6, 7, 8, 9])


def test_bad_rank():
    with pytest.raises(ValueError, match=r"^rank 2 is not in a world of 2$"):
        epoch_indices(10, epoch=0, seed=0, rank=2, world=2)
    with pytest.raises(BenchError):
        make_loader("device", coord_split(2), train=True, batch_size=4, device=CPU, dtype=torch.float32,
                    channels_last=False, augment=Augment(), seed=0, rank=2, world=3)


# One semantics


DAWN = Augment(brightness=0.25, contrast=0.25, saturation=0.25, rotate=2.0)  # wrn22's DAWNBench augmentation


AIRBENCH = Augment(flip="alternating", pad=2)  # the records' alternating flips and translate-by-2


@pytest.mark.parametrize("augment", [Augment(), Augment(pad_mode="zeros"), Augment(pad=0, flip=False),
                                     Augment(pad=2, flip=False), DAWN, Augment(contrast=0.5, rotate=30.0),
                                     AIRBENCH],
                         ids=["reflect", "zeros", "off", "pad2", "dawnbench", "contrast+rotate", "alternating"])
def test_loaders_match_reference_exactly(augment):
    """The random plan is shared, so all loaders give the same bits as the reference implementation."""
    idx = epoch_indices(len(SPLIT), epoch=1, seed=7, rank=0, world=1)
    plan = draw_plan(len(idx), augment, seed=7, epoch=1, rank=0, indices=idx)
    want = reference(SPLIT.images[idx], plan, augment)
    for kind in REAL:
        x, y, _ = load(kind, epoch=1, augment=augment)
        assert torch.equal(x, want), kind
        assert torch.equal(y, torch.from_numpy(SPLIT.labels[idx])), kind


def test_jitter_and_rotation_match_torchvision():
    """The batched per-image ops against torchvision's own functional ops, one image at a time."""
    import torchvision.transforms.v2.functional as TF

    from bench.data.augment import jitter, rotate

    g = torch.Generator().manual_seed(3)
    x = torch.rand(8, 3, 32, 32, generator=g)
    angles = torch.tensor([0.0, 2.0, -2.0, 1.3, -0.7, 45.0, -90.0, 180.0])
    want = torch.stack([TF.rotate(x[i], float(a), interpolation=TF.InterpolationMode.NEAREST)
                        for i, a in enumerate(angles)])
    assert torch.equal(rotate(x, angles), want)
    factors = torch.rand(8, 3, generator=g) * 0.5 + 0.75
    order = torch.stack([torch.randperm(3, generator=g) for _ in range(8)])
    ops = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation)
    want = []
    for i in range(8):
        y = x[i]
        for k in order[i].tolist():
            y = ops[k](y, float(factors[i, k]))
        want.append(y)
    torch.testing.assert_close(jitter(x, factors, order), torch.stack(want), atol=1e-6, rtol=0)


def test_photometric_plan_draws():
    plan = draw_plan(20000, DAWN, seed=1, epoch=0, rank=0)
    assert plan.factors.shape == (20000, 3) and plan.factors.min() >= 0.75 and plan.factors.max() <= 1.25
    assert abs(float(plan.factors.mean()) - 1.0) < 0.01
    assert np.abs(plan.angle).max() <= 2.0 and abs(float(plan.angle.mean())) < 0.05
    orders = {tuple(o) for o in plan.order.tolist()}
    assert orders == {(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)}
    only_contrast = draw_plan(50, Augment(contrast=0.4), seed=1, epoch=0, rank=0)
    assert (only_contrast.order[:, 0] == 1).all() and (only_contrast.order[:, 1:] == -1).all()
    assert only_contrast.angle is None
    # Adding jitter leaves the crops and flips of a seed as they were.
    plain = draw_plan(100, Augment(), seed=4, epoch=2, rank=1)
    dawn = draw_plan(100, DAWN, seed=4, epoch=2, rank=1)
    assert all(np.array_equal(getattr(plain, k), getattr(dawn, k)) for k in ("dy", "dx", "flip"))


def test_alternating_flips():
    """Every image is flipped in every other epoch, starting from a fixed per-image bit; the bit does not
    depend on the rank that reads the image, and half the images start flipped."""
    aug = Augment(flip="alternating", pad=2, **IDENTITY)

    def flips(epoch, rank=0, world=1):
        x, _, loader = load("device", epoch=epoch, augment=aug, rank=rank, world=world)
        index, _, _, flip = decode(x)
        return dict(zip(index.tolist(), flip.tolist()))

    e0, e1, e2 = flips(0), flips(1), flips(2)
    assert set(e0) == set(e1) == set(range(len(SPLIT)))
    assert all(e1[i] != e0[i] and e2[i] == e0[i] for i in e0)
    n = len(e0)
    assert abs(sum(e0.values()) / n - 0.5) < 4 * (0.25 / n) ** 0.5
    half = flips(1, rank=1, world=2)
    assert half and all(e1[i] == f for i, f in half.items())
    with pytest.raises(BenchError, match="indices"):
        draw_plan(10, aug, seed=7, epoch=0, rank=0)


def test_no_augmentation_equals_eval():
    off = Augment(pad=0, flip=False)
    idx = torch.from_numpy(epoch_indices(len(SPLIT), epoch=0, seed=7, rank=0, world=1))
    for kind in REAL:
        x_eval, y_eval, _ = load(kind, train=False, augment=off)
        assert torch.equal(y_eval, torch.from_numpy(SPLIT.labels)), kind
        x, _, _ = load(kind, augment=off)
        assert torch.equal(x, x_eval[idx]), kind


def test_augmentation_statistics():
    aug = Augment(**IDENTITY)
    idx = epoch_indices(len(SPLIT), epoch=0, seed=7, rank=0, world=1)
    plan = draw_plan(len(idx), aug, seed=7, epoch=0, rank=0)
    for kind in REAL:  # each loader's pixels show the planned image, crop and flip
        got = [t.numpy() for t in decode(load(kind, augment=aug)[0])]
        for a, b in zip(got, (idx, plan.dy, plan.dx, plan.flip)):
            np.testing.assert_array_equal(a, b, err_msg=kind)
    _, dy, dx, flip = (torch.cat(p) for p in zip(*(decode(load("device", epoch=e, augment=aug)[0])
                                                     for e in range(4))))
    n = len(flip)
    assert abs(flip.float().mean().item() - 0.5) < 4 * (0.25 / n) ** 0.5
    counts = torch.bincount(dy * 9 + dx, minlength=81).double()
    assert len(counts) == 81 and (counts > 0).all()
    expected = n / 81
    chi2 = ((counts - expected) ** 2 / expected).sum().item()
    assert chi2 < 80 + 6 * (2 * 80) ** 0.5, chi2  # 80 degrees of freedom; about 6 sigma


@pytest.mark.parametrize("kind", REAL)
def test_padding_mode(kind):
    x, _, _ = load(kind, augment=Augment(flip=False, **IDENTITY))
    _, dy, dx, _ = decode(x)
    # Reflect does not repeat the edge: padded row 0 is source row 4 (row 3 would be "symmetric").
    assert (x[dy == 0, 0, 0, :] % 32 == 4).all()
    assert (x[dx == 0, 1, :, 0] == 4).all()
    x, _, _ = load(kind, augment=Augment(flip=False, pad_mode="zeros", **IDENTITY))
    _, dy, _, _ = decode(x)
    assert (dy == 0).any() and (x[dy == 0, :, :4, :] == 0).all() and (x[dy == 0, :, 4, :] > 0).any()


def test_epochs_ranks_and_seeds_change_the_plan():
    x0, _, _ = load("device", epoch=0)
    assert torch.equal(x0, load("device", epoch=0)[0])
    assert not torch.equal(x0, load("device", epoch=0, seed=8)[0])
    assert not torch.equal(x0[:50], load("device", epoch=1)[0][:50])
    r0, r1 = (draw_plan(100, Augment(), seed=7, epoch=0, rank=r) for r in (0, 1))
    assert not np.array_equal(r0.dx, r1.dx)


def test_torch_workers_do_not_change_batches():
    assert torch.equal(load("torch", workers=0)[0], load("torch", workers=2)[0])


@pytest.mark.parametrize("kind", REAL)
def test_ranks_split_the_data(kind):
    aug = Augment(**IDENTITY)
    seen = [decode(load(kind, train=False, augment=aug, rank=r, world=3)[0])[0] for r in range(3)]
    np.testing.assert_array_equal(torch.cat(seen).numpy(), np.arange(len(SPLIT)))
    train = [decode(load(kind, augment=aug, rank=r, world=3)[0])[0] for r in range(3)]
    assert {len(t) for t in train} == {len(SPLIT) // 3}
    assert len(set(torch.cat(train).tolist())) == 3 * (len(SPLIT) // 3)


# Output format


@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_dtype_and_layout(dtype, channels_last):
    want = load("device", dtype=torch.float32)[0].to(dtype)
    for kind in KINDS:
        x, y, loader = load(kind, dtype=dtype, channels_last=channels_last)
        assert x.shape == (512, 3, 32, 32) and x.dtype == dtype and y.dtype == torch.int64, kind
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        assert next(loader.epoch(0))[0].is_contiguous(memory_format=fmt), kind
        assert loader.synthetic == (kind == "synthetic")
        if kind != "synthetic":
            assert torch.equal(x, want), kind


def test_batch_counts():
    _, _, loader = load("device", batch_size=100)
    assert len(loader) == 6 and loader.samples_per_epoch == 512
    sizes = [len(y) for _, y in loader.epoch(0)]
    assert sizes == [100] * 5 + [12]
    _, _, loader = load("synthetic", batch_size=100, rank=1, world=3)
    assert loader.samples_per_epoch == 170 and [len(y) for _, y in loader.epoch(3)] == [100, 70]


def test_dali_is_imported_lazily():
    code = ("import sys, bench.data.loaders as L, bench.data.loaders.device, bench.data.loaders.torchdl, "
            "bench.data.loaders.dali, bench.data.loader_bench; print('nvidia.dali' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_dali_is_a_bench_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "nvidia.dali", None)
    with pytest.raises(BenchError, match="DALI"):
        load("dali")


def test_dali_is_installed():
    assert importlib.util.find_spec("nvidia.dali") is not None, (
        "NVIDIA DALI is not installed, but pyproject.toml declares it (nvidia-dali-cuda130): `make setup` "
        "installs it; the DALI loader cases fail without it")
    assert "dali" in LOADERS


# bench loaders


def run_cli(*argv):
    args = build_parser().parse_args(["loaders", *argv])
    return args.func(args)


def test_loader_bench_json(tmp_path, capsys):
    out = tmp_path / "rows.json"
    assert run_cli("--images", "300", "--batches", "3", "--batch-size", "64", "--workers", "0",
                   "--device", "cpu", "--json", str(out)) == 0
    rows = json.loads(out.read_text())
    assert [r["loader"] for r in rows] == list(LOADERS)
    synthetic = rows[-1]["images_per_s"]
    for r in rows:
        assert tuple(r) == KEYS and r["batch_size"] == 64 and r["device"] == "cpu"
        # two untimed warm-up batches (64, 64), then the timed three of the 300-image epoch: 64, 64 and the
        # partial 44, so the rate times the time taken must give back exactly those 172 images
        seconds = r["ms_per_batch"] * 3 / 1000
        assert r["images_per_s"] * seconds == pytest.approx(64 + 64 + 44, rel=1e-9), r
        assert r["vs_synthetic"] == pytest.approx(r["images_per_s"] / synthetic, rel=1e-12)
        # a share of all cores; CPU time ticks in 10 ms steps over a window of at least 0.25 s
        assert r["cpu_util"] is None or 0 <= r["cpu_util"] <= 110
    assert rows[-1]["vs_synthetic"] == 1.0
    assert "images/s" in capsys.readouterr().out


def test_loader_bench_reports_a_loader_that_cannot_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "nvidia.dali", None)
    out = tmp_path / "rows.json"
    assert run_cli("--images", "300", "--batches", "2", "--batch-size", "64", "--loaders", "dali,synthetic",
                   "--device", "cpu", "--json", str(out)) == 0
    dali = json.loads(out.read_text())[0]
    assert dali["loader"] == "dali" and dali["images_per_s"] is None and dali["vs_synthetic"] is None
    assert "cannot run" in capsys.readouterr().out
