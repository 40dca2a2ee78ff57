"""Images for a GAN recipe: any data source, at the generator's size.

'cifar10' and archives load as for classifiers (bench.data.sources) and are resized if their size is not
the recipe's. A directory may be what a classifier reads (train/<class>/, test/<class>/) or a plain folder
of images of any sizes, nested or not (a user's export of LSUN bedrooms, the seed's data set): each image is
centre-cropped to a square and resized to `size` (Lanczos) as it is decoded; without train/ and test/
folders every 10th image (in name order) is held out as the test split, which the quality scores use as
their reference. Labels are the class folder's index where there is one, else 0."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from bench.core.errors import BenchError
from bench.data.folder import IMAGE_SUFFIXES, SPLITS, stem
from bench.data.identity import make_identity
from bench.data.types import Dataset, Split

HOLD_OUT_EVERY = 10


def square(im: Image.Image, size: int) -> np.ndarray:
    """Centre crop to a square, resize to size x size, RGB uint8 (H, W, 3)."""
    im = im.convert("RGB")
    w, h = im.size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    im = im.crop((left, top, left + s, top + s))
    if s != size:
        im = im.resize((size, size), Image.LANCZOS)
    return np.asarray(im, dtype=np.uint8)


def _images_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                  and not p.name.startswith("."))


def _decode(paths: list[Path], size: int) -> np.ndarray:
    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    for i, p in enumerate(paths):
        try:
            with Image.open(p) as im:
                out[i] = square(im, size)
        except Exception as e:  # whatever PIL raises, the cause is this file
            raise BenchError(f"Cannot decode image {p}: {e}. Replace or delete that file.") from e
    return out


def load_folder(root: Path, size: int) -> Dataset:
    root = Path(root)
    if all((root / s).is_dir() for s in SPLITS):
        classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
        splits = []
        for s in SPLITS:
            paths, labels = [], []
            for k, c in enumerate(classes):
                found = _images_under(root / s / c)
                paths += found
                labels += [k] * len(found)
            if not paths:
                raise BenchError(f"{root / s}: no images (.jpg, .jpeg, .png) in its class folders")
            splits.append(Split(_decode(paths, size), np.array(labels, dtype=np.int64)))
        train, test = splits
    else:
        paths = _images_under(root)
        if len(paths) < 2:
            raise BenchError(f"{root}: found {len(paths)} image(s) (.jpg, .jpeg, .png); a GAN needs a folder of "
                             f"images, either plain or as train/<class>/ and test/<class>/")
        images = _decode(paths, size)
        test_idx = np.arange(len(paths)) % HOLD_OUT_EVERY == HOLD_OUT_EVERY - 1
        if not test_idx.any():
            test_idx[-1] = True
        train = Split(images[~test_idx], np.zeros(int((~test_idx).sum()), dtype=np.int64))
        test = Split(images[test_idx], np.zeros(int(test_idx.sum()), dtype=np.int64))
        classes = ["images"]
    return Dataset(train, test, make_identity(f"imagefolder:{stem(root.resolve())}@{size}", classes, train, test))


def resize_split(split: Split, size: int) -> Split:
    """Every image to size x size (Lanczos); images are square already (CIFAR-10, decoded folders)."""
    if split.images.shape[1:3] == (size, size):
        return split
    out = np.stack([square(Image.fromarray(a), size) for a in split.images])
    return Split(out, split.labels)


def load_gan_images(source: str, size: int, *, data_dir: Path | None, base_dir: Path | None) -> Dataset:
    from bench.data.sources import load_dataset, resolve_path

    if source != "cifar10":
        path = resolve_path(source, base_dir)
        if path.is_dir():
            return load_folder(path, size)
    ds = load_dataset(source, data_dir=data_dir, base_dir=base_dir)
    if ds.train.images.shape[1:3] == (size, size):
        return ds
    train, test = resize_split(ds.train, size), resize_split(ds.test, size)
    # a resized copy is other pixels: its own name and fingerprint
    ident = make_identity(f"{ds.identity.name}@{size}", ds.identity.classes, train, test)
    return Dataset(train, test, ident)


__all__ = ["load_gan_images", "load_folder", "resize_split", "square"]
