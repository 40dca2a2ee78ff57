"""The one way the harness gets data: a source string ("cifar10" or a path) in, a Dataset out."""
from __future__ import annotations

import tarfile
from pathlib import Path

from bench.data import cifar, folder
from bench.data.cifar import default_data_dir
from bench.data.identity import make_identity
from bench.data.types import Dataset, DatasetIdentity
from bench.core.errors import BenchError

__all__ = ["load_dataset", "describe", "resolve_path", "default_data_dir"]


def resolve_path(source: str, base_dir: Path | None = None) -> Path:
    """A relative path is tried in the working directory first, then under base_dir (the repository
    root), so that recipes naming data/... work from anywhere."""
    given = Path(source).expanduser()
    candidates = [given] if given.is_absolute() else [Path.cwd() / given]
    if not given.is_absolute() and base_dir is not None and Path(base_dir) / given not in candidates:
        candidates.append(Path(base_dir) / given)
    for p in candidates:
        if p.exists():
            return p
    looked = " and ".join(str(p) for p in candidates)
    raise BenchError(f"Data source {source!r} not found (looked at {looked}). Give 'cifar10' for the official "
                     f"set, or the path of an image folder or of a .tar/.tar.gz/.tar.xz archive of one.")


def _is_cifar_layout(path: Path) -> bool:
    """The official archive starts with its cifar-10-batches-py/ folder, so its first member tells."""
    try:
        with tarfile.open(path, "r:*") as tf:
            first = tf.next()
    except (tarfile.TarError, EOFError, OSError):
        return False  # the image-folder reader reports what is wrong with it
    return first is not None and first.name.removeprefix("./").split("/")[0] == cifar.BATCH_DIR


def _cifar_dataset(name: str, path: Path) -> Dataset:
    train, test, classes = cifar.load_cifar10_archive(path)
    return Dataset(train, test, make_identity(name, classes, train, test))


def load_dataset(source: str, *, data_dir: Path | None = None, base_dir: Path | None = None,
                 progress: bool = True) -> Dataset:
    """'cifar10': the official archive from data_dir, downloaded and verified if missing.
    A path: an archive in the official layout, or an image folder / archive of one.

    A file given by path is loaded without a checksum (the user chose it); it is only *named* "cifar10"
    when its sha256 is the official one, so results on other copies cannot pass for official ones."""
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    if source == "cifar10":
        return _cifar_dataset("cifar10", cifar.fetch_cifar10(data_dir, progress=progress))
    path = resolve_path(source, base_dir)
    if path.is_file() and _is_cifar_layout(path):
        official = cifar.file_digests(path)[1] == cifar.OFFICIAL_SHA256
        return _cifar_dataset("cifar10" if official else f"cifar10-format:{path.name}", path)
    if not (path.is_dir() or folder.is_archive(path)):
        raise BenchError(f"Data source {path} is neither a directory nor a .tar/.tar.gz/.tar.xz archive; "
                         f"{folder.LAYOUT}.")
    return folder.load_image_folder(path, cache_dir=data_dir / "decoded", progress=progress)


def describe(identity: DatasetIdentity) -> dict:
    """JSON-ready summary, the same fields `bench data info` prints."""
    per_class = {
        split: dict(zip(identity.classes, counts))
        for split, counts in (("train", identity.train_per_class), ("test", identity.test_per_class))
    }
    return {
        "name": identity.name,
        "fingerprint": identity.fingerprint,
        "classes": list(identity.classes),
        "counts": {"train": identity.train_count, "test": identity.test_count},
        "per_class": per_class,
    }
