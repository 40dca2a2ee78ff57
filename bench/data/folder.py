"""Image folders (train/<class>/*.jpg, test/<class>/*.jpg), as a directory or a .tar/.tar.gz/.tar.xz of one.

Decoding 60,000 JPEGs takes seconds, so the decoded arrays are cached as an .npz keyed by the source's
bytes (archive) or file list (directory); later loads read the cache in a fraction of a second."""
from __future__ import annotations

import hashlib
import io
import lzma
import multiprocessing
import os
import sys
import tarfile
import tempfile
import time
import zlib
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from bench.data.identity import fingerprint, make_identity
from bench.data.types import Dataset, Split
from bench.core.digest import file_sha256
from bench.core.errors import BenchError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz")
SPLITS = ("train", "test")
LAYOUT = "expected train/<class>/*.jpg|jpeg|png and test/<class>/*, optionally inside one top-level folder"
# Images per worker task: big enough that process hand-off costs little, and data sets smaller than
# this are decoded in-process (starting workers would cost more than it saves).
_BATCH = 1000


def is_archive(path: Path) -> bool:
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def stem(path: Path) -> str:
    """'cifar10-jpeg-q75' for cifar10-jpeg-q75.tar.xz; a directory's own name."""
    name = path.name
    for suffix in sorted(ARCHIVE_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _is_image(name: str) -> bool:
    # Dot files include macOS's "._x.jpg" resource forks, which tar carries along but are not images.
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def _decode(name: str, raw: bytes) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(raw)) as im:
            return np.asarray(im.convert("RGB"))
    except Exception as e:  # whatever PIL raises, the cause is this file
        # PIL's own text for this case names the in-memory buffer, not the file.
        why = "not a JPEG or PNG file, or damaged" if isinstance(e, UnidentifiedImageError) else str(e)
        raise BenchError(f"Cannot decode image {name}: {why}. Replace or delete that file.") from e


def _decode_batch(batch: list[tuple[str, bytes]]) -> list[np.ndarray]:
    return [_decode(name, raw) for name, raw in batch]


def _decode_all(entries, workers: int) -> dict:
    """{key: (name, HWC array)} for an iterable of (key, name, bytes), read in one pass.

    Full batches go to worker processes while this process keeps reading (for .tar.xz, decompressing
    is a third of the work). 'spawn', because forking a process that may hold torch threads can hang."""
    results, keys, batch, pool = [], [], [], None
    try:
        for key, name, raw in entries:
            keys.append((key, name))
            batch.append((name, raw))
            if len(batch) == _BATCH and workers > 1:
                pool = pool or ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
                results.append(pool.submit(_decode_batch, batch))
                batch = []
        results.append(_decode_batch(batch))
        arrays = [a for r in results for a in (r.result() if isinstance(r, Future) else r)]
        return {key: (name, a) for (key, name), a in zip(keys, arrays)}
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def _archive_entries(tf: tarfile.TarFile, path: Path, dirs: set, wrappers: set):
    """(key, name, bytes) per image member; each member's data is read as the stream passes it."""
    for member in tf:
        parts = [p for p in member.name.split("/") if p not in ("", ".")]
        if len(parts) > 1 and parts[0] not in SPLITS and parts[1] in SPLITS:
            wrappers.add(parts[0])
            parts = parts[1:]
        elif parts and parts[0] in SPLITS:
            wrappers.add("")
        if len(parts) < 2 or parts[0] not in SPLITS:
            continue
        if member.isdir() and len(parts) == 2:
            dirs.add((parts[0], parts[1]))
        elif member.isfile() and len(parts) == 3 and _is_image(parts[2]):
            dirs.add((parts[0], parts[1]))
            yield tuple(parts), f"{path}:{member.name}", tf.extractfile(member).read()


def _directory_entries(root: Path, dirs: set):
    for split in SPLITS:
        if not (root / split).is_dir():
            continue
        for class_dir in sorted(p for p in (root / split).iterdir() if p.is_dir()):
            dirs.add((split, class_dir.name))
            for f in sorted(class_dir.iterdir()):
                if f.is_file() and _is_image(f.name):
                    try:
                        raw = f.read_bytes()
                    except OSError as e:
                        raise BenchError(f"Cannot read image {f}: {e.strerror}.") from e
                    yield (split, class_dir.name, f.name), str(f), raw


def _assemble(path: Path, decoded: dict, dirs: set) -> tuple[Split, Split, list[str]]:
    if not decoded:
        raise BenchError(f"No images found in {path}: {LAYOUT}.")
    classes = {s: sorted({c for split, c in dirs if split == s}) for s in SPLITS}
    for s in SPLITS:
        if not classes[s]:
            raise BenchError(f"{path} has no {s}/ images: {LAYOUT}.")
    if classes["test"] != classes["train"]:
        raise BenchError(f"{path}: test classes {classes['test']} differ from train classes "
                         f"{classes['train']}; both splits need the same class folders.")
    # Train first, then class by class, files by name within a class.
    keys = sorted(decoded, key=lambda k: (SPLITS.index(k[0]), k[1], k[2]))
    first_name, first = decoded[keys[0]]
    for key in keys:
        name, a = decoded[key]
        if a.shape != first.shape:
            raise BenchError(f"Image {name} is {a.shape[1]}x{a.shape[0]} but {first_name} is "
                             f"{first.shape[1]}x{first.shape[0]}; all images must have one size.")
    empty = sorted(f"{s}/{c}" for s, c in dirs - {k[:2] for k in keys})
    if empty:
        raise BenchError(f"{path}: class folder(s) {', '.join(empty)} hold no images; add images or remove them.")
    index = {c: i for i, c in enumerate(classes["train"])}
    splits = []
    for s in SPLITS:
        ks = [k for k in keys if k[0] == s]
        splits.append(Split(np.stack([decoded[k][1] for k in ks]),
                            np.array([index[k[1]] for k in ks], dtype=np.int64)))
    return splits[0], splits[1], classes["train"]


def decode_image_folder(path: Path, workers: int | None = None) -> tuple[Split, Split, list[str]]:
    """(train, test, classes) decoded from a directory or tar archive, without using the cache."""
    path = Path(path)
    workers = min(2, os.cpu_count() or 1) if workers is None else workers
    dirs, wrappers = set(), set()
    if path.is_dir():
        if not any((path / s).is_dir() for s in SPLITS):
            raise BenchError(f"No images found in {path}: {LAYOUT}.")
        decoded = _decode_all(_directory_entries(path, dirs), workers)
    else:
        try:
            with tarfile.open(path, "r:*") as tf:
                decoded = _decode_all(_archive_entries(tf, path, dirs, wrappers), workers)
        except (tarfile.TarError, EOFError, lzma.LZMAError, zlib.error, OSError) as e:
            raise BenchError(f"{path} is truncated or corrupt ({e}). Download or copy it again.") from e
        if len(wrappers) > 1:
            tops = ", ".join(repr(w or "(none)") for w in sorted(wrappers))
            raise BenchError(f"{path} holds train/ and test/ under several top-level folders ({tops}); "
                             f"{LAYOUT}.")
    return _assemble(path, decoded, dirs)


def _cache_key(path: Path) -> str:
    h = hashlib.sha256()
    if path.is_dir():
        # Hashing every image would cost about as much as decoding them; name, size and mtime catch edits.
        for f in sorted(p for s in SPLITS for p in (path / s).rglob("*") if p.is_file()):
            st = f.stat()
            h.update(f"{f.relative_to(path).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return "dir-" + h.hexdigest()
    return file_sha256(path)


def _read_cache(cache: Path):
    try:
        with np.load(cache, allow_pickle=False) as z:
            train = Split(z["train_images"], z["train_labels"])
            test = Split(z["test_images"], z["test_labels"])
            return train, test, [str(c) for c in z["classes"]], str(z["fingerprint"])
    except Exception:  # missing, truncated, or from another layout: decoding again fixes all of them
        return None


def _write_cache(cache: Path, train: Split, test: Split, classes: list[str], fp: str) -> None:
    """Temp file + os.replace, so a crash or a parallel run never leaves a half-written cache behind."""
    tmp = None
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache.parent, prefix=cache.stem, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, train_images=train.images, train_labels=train.labels, test_images=test.images,
                     test_labels=test.labels, classes=np.array(classes), fingerprint=np.array(fp))
        os.replace(tmp, cache)
    except OSError as e:  # a read-only or full cache only costs speed, never the run
        print(f"warning: could not write the decode cache {cache}: {e}", file=sys.stderr)
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)


def load_image_folder(path: Path, cache_dir: Path | None = None, progress: bool = True) -> Dataset:
    """Dataset named 'imagefolder:<stem>', from `cache_dir/<key>.npz` when that is present and loads."""
    path = Path(path)
    cache = Path(cache_dir) / f"{_cache_key(path)}.npz" if cache_dir is not None else None
    hit = _read_cache(cache) if cache is not None and cache.exists() else None
    if hit is not None:
        train, test, classes, fp = hit
    else:
        start = time.perf_counter()
        if progress:
            print(f"Decoding {path} (first use; later loads read the cache)...", file=sys.stderr, flush=True)
        train, test, classes = decode_image_folder(path)
        fp = fingerprint(train, test)
        if cache is not None:
            _write_cache(cache, train, test, classes, fp)
        if progress:
            print(f"Decoded {len(train) + len(test)} images in {time.perf_counter() - start:.1f} s.",
                  file=sys.stderr)
    return Dataset(train, test, make_identity(f"imagefolder:{stem(path.resolve())}", classes, train, test, fp))
